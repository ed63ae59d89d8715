"""System checks of Triage's own settings (`manage.py check --deploy`)."""

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register


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
