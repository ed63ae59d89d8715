"""The audit log: who changed what, when, with the values before and after.

Kept apart from triage.models (which imports it, so it registers with the app)
to keep that file about the objects the loop routes.
"""

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser


class AuditLog(models.Model):
    """Who changed what, when, with the values before and after.

    Append-only: the admin offers no add, change or delete, and on PostgreSQL a
    trigger (migration 0006) refuses UPDATE and DELETE on the table itself, so an
    entry cannot be rewritten even with the application's own database role.
    """

    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=50)
    detail = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.action}"

    @classmethod
    def record(cls, *, actor: str, action: str, **detail: Any) -> "AuditLog":
        return cls.objects.create(actor=actor, action=action, detail=detail)

    @classmethod
    def record_change(
        cls,
        *,
        actor: str,
        action: str,
        target: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        **detail: Any,
    ) -> "AuditLog":
        """Log a change to `target` with the values before and after it.

        `before` is None for something created, `after` None for something
        deleted. `changed` lists the fields whose value differs, so a reader
        sees at a glance what an edit did (snapshot() builds both mappings).
        """
        old, new = dict(before or {}), dict(after or {})
        changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        return cls.record(
            actor=actor,
            action=action,
            target=target,
            before=before if before is None else old,
            after=after if after is None else new,
            changed=changed,
            **detail,
        )


def snapshot(obj: models.Model, fields: Iterable[str] | None = None) -> dict[str, Any]:
    """The stored values of a model instance's fields (foreign keys as ids), for the audit log."""
    wanted = set(fields) if fields is not None else None
    values: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        if wanted is None or field.name in wanted or field.attname in wanted:
            values[field.attname] = field.value_from_object(obj)
    return values


def actor_name(user: "AbstractBaseUser | AnonymousUser | None") -> str:
    return f"user:{user.get_username()}" if user is not None else "system"


def audit_log_exposures(connection: Any) -> list[str]:
    """What the connection's database role could do to erase the audit log (PostgreSQL):
    empty when it cannot, as in the deployment of docs/audit-log-roles.sql."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT has_table_privilege(c.oid, 'TRUNCATE'),
                   has_table_privilege(c.oid, 'UPDATE'),
                   has_table_privilege(c.oid, 'DELETE'),
                   pg_has_role(c.relowner, 'USAGE')
                       OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
                   EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid
                           AND t.tgname = 'triage_auditlog_append_only'
                           AND t.tgenabled <> 'D')
            FROM pg_class c WHERE c.oid = 'triage_auditlog'::regclass
            """
        )
        row = cursor.fetchone()
    if row is None:
        return []
    truncate, update, delete, owns, trigger_on = row
    found = [f"{what} it" for what, can in [("TRUNCATE", truncate)] if can]
    if update or delete:
        found.append("UPDATE or DELETE rows (only the trigger stops it)")
    if owns:
        found.append("disable or drop its append-only trigger (it owns the table)")
    if not trigger_on:
        found.append("change it freely: its append-only trigger is missing or disabled")
    return found
