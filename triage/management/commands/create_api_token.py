from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from triage.models import ApiToken, AuditLog, snapshot


class Command(BaseCommand):
    help = "Create an API token for the ingest API and print it once (only its hash is kept)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="who or what will use the token, e.g. 'zendesk-bridge'")

    def handle(self, *args: Any, name: str, **options: Any) -> None:
        name = name.strip()
        if not name:
            raise CommandError("NAME must not be empty")
        limit = ApiToken._meta.get_field("name").max_length or 0
        if len(name) > limit:
            raise CommandError(f"NAME is {len(name)} characters; the limit is {limit} characters")
        if ApiToken.objects.filter(name=name).exists():
            raise CommandError(
                f"a token named {name!r} already exists; revoke it or pick a new name"
            )
        issued, token = ApiToken.issue(name)
        AuditLog.record_change(
            actor="command",
            action="token",
            target=f"apitoken:{issued}",
            before=None,
            after=snapshot(issued, ["name", "prefix", "created_at", "revoked_at"]),
        )
        self.stdout.write(token)
        self.stderr.write(f"Token {name!r} created. Store it now: it cannot be shown again.")
