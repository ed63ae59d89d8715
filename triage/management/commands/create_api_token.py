from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from triage.models import ApiToken, AuditLog, snapshot
from triage.models.text import unstorable_string

# Logged for a token: never its hash, only which token it is and what it may do.
AUDIT_FIELDS = ["name", "prefix", "scopes", "created_at", "revoked_at"]


class Command(BaseCommand):
    help = (
        "Create an API token and print it once (only its hash is kept). Scopes: "
        + ", ".join(ApiToken.Scope.values)
        + f"; default {', '.join(ApiToken.DEFAULT_SCOPES)}."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="who or what will use the token, e.g. 'zendesk-bridge'")
        parser.add_argument(
            "--scope",
            action="append",
            dest="scopes",
            metavar="SCOPE",
            help=(
                "what the token may call, repeatable or comma-separated: "
                f"{', '.join(ApiToken.Scope.values)} "
                f"(default: {', '.join(ApiToken.DEFAULT_SCOPES)})"
            ),
        )

    def handle(self, *args: Any, name: str, scopes: list[str] | None, **options: Any) -> None:
        name = name.strip()
        if not name:
            raise CommandError("NAME must not be empty")
        if problem := unstorable_string(name):
            raise CommandError(f"NAME {problem}")
        limit = ApiToken._meta.get_field("name").max_length or 0
        if len(name) > limit:
            raise CommandError(f"NAME is {len(name)} characters; the limit is {limit} characters")
        wanted = None
        if scopes is not None:
            wanted = [s for value in scopes for s in value.split(",") if s.strip()]
            if not wanted:
                raise CommandError("--scope is empty; give at least one scope")
            try:
                wanted = ApiToken.clean_scopes(wanted)
            except ValidationError as exc:
                raise CommandError(f"--scope: {exc.messages[0]}") from None
        with transaction.atomic():
            if ApiToken.objects.filter(name=name).exists():
                raise CommandError(
                    f"a token named {name!r} already exists; revoke it or pick a new name"
                )
            issued, token = ApiToken.issue(name, scopes=wanted)
            AuditLog.record_change(
                actor="command",
                action="token",
                target=f"apitoken:{issued}",
                before=None,
                after=snapshot(issued, AUDIT_FIELDS),
            )
        self.stdout.write(token)
        self.stderr.write(
            f"Token {name!r} created with scopes {', '.join(issued.scopes)}. "
            "Store it now: it cannot be shown again."
        )
