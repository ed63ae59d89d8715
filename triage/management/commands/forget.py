import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from triage.privacy.forget import ForgetError, forget_items


def command_actor() -> str:
    """Who ran a command, for the audit log: the operating-system user."""
    try:
        return f"command:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (a bare container)
        return "command"


class Command(BaseCommand):
    help = (
        "Forget items: remove their text and metadata from every table (the item, embeddings, "
        "training examples, event payloads, delivery answers) and leave a tombstone. Logged in "
        "the audit log with the external id, never the text. All or nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("external_ids", nargs="+", metavar="EXTERNAL_ID")

    def handle(self, *args: Any, external_ids: list[str], **options: Any) -> None:
        try:
            forgotten = forget_items(external_ids=external_ids, actor=command_actor())
        except ForgetError as exc:
            raise CommandError(str(exc)) from None
        for item in forgotten:
            self.stdout.write(item.summary())
