from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from triage.management.commands.forget import command_actor
from triage.privacy.retention import RetentionError, parse_duration, prune


class Command(BaseCommand):
    help = (
        "Apply retention: items received before the cutoff that are routed or resolved (never "
        "one still in review) lose their text, metadata, embeddings, training examples and "
        "predictions (except those audit verdicts rest on); their event payloads are scrubbed. "
        "The rows stay as tombstones. Prints what it did and logs it in the audit log."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            required=True,
            metavar="DURATION",
            help="received longer ago than this: days or weeks, e.g. 180d or 26w",
        )

    def handle(self, *args: Any, older_than: str, **options: Any) -> None:
        try:
            report = prune(older_than=parse_duration(older_than), actor=command_actor())
        except RetentionError as exc:
            raise CommandError(str(exc)) from None
        for line in report.lines():
            self.stdout.write(line)
