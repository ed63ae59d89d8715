"""System checks of Triage's own settings (`manage.py check --deploy`)."""

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register
from django.db import DatabaseError, connection

from triage.models.audit_log import audit_log_exposures


@register(Tags.security, deploy=True)
def rate_limit_counts_are_shared(**kwargs: Any) -> list[CheckMessage]:
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    if settings.TRIAGE_API_RATE_LIMIT and backend.endswith("LocMemCache"):
        return [
            Warning(
                "The API rate limit counts in each process's own memory: N web processes "
                "allow about N times TRIAGE_API_RATE_LIMIT per token.",
                hint="Set TRIAGE_CACHE_URL to a Redis database (e.g. redis://host:6379/1).",
                id="triage.W001",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def audit_log_cannot_be_erased(**kwargs: Any) -> list[CheckMessage]:
    """The app's database role should not be able to TRUNCATE the audit log or switch
    its trigger off (README, "Audit log"; docs/audit-log-roles.sql)."""
    try:
        exposures = audit_log_exposures(connection)
    except DatabaseError:
        return []  # no database to ask (or no table yet): nothing to say
    if not exposures:
        return []
    return [
        Warning(
            "The app's database role can erase the audit log: it can " + "; ".join(exposures) + ".",
            hint="Run migrations as the tables' owner and the app as another role, "
            "granted as in docs/audit-log-roles.sql.",
            id="triage.W002",
        )
    ]
