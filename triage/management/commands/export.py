import os
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from triage.api.export import DATASETS, FORMATS, ExportError, start_export


class Command(BaseCommand):
    help = (
        "Export items, reviews or training examples as CSV or JSON Lines, streamed "
        "(--model-version N: exactly the examples that version trained on)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", required=True, help=", ".join(sorted(DATASETS)))
        parser.add_argument("--format", default="csv", help=", ".join(FORMATS))
        parser.add_argument("--model-version", type=int, default=None)
        parser.add_argument("--output", default="-", help="a file; '-' (default) is stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            export = start_export(
                dataset=options["dataset"],
                format=options["format"],
                model_version=options["model_version"],
            )
        except ExportError as exc:
            raise CommandError(f"--{exc.field.replace('_', '-')}: {exc}") from exc
        if options["output"] == "-":
            for chunk in export.chunks:
                self.stdout.write(chunk, ending="")
            return
        target = Path(options["output"])
        # Written aside and renamed at the end: a failed export leaves no half a file.
        partial = target.with_name(target.name + ".partial")
        try:
            with partial.open("w", encoding="utf-8", newline="") as fh:
                for chunk in export.chunks:
                    fh.write(chunk)
            os.replace(partial, target)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise CommandError(f"--output: cannot write {target}: {exc}") from exc
