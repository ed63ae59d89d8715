"""Import items from CSV or JSONL.

Labelled rows become history (resolved items plus training examples);
unlabelled rows are ingested exactly as the API ingests them. The whole file is
checked first: with any bad row nothing is written, unless --skip-invalid.
"""

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils.text import slugify
from tqdm import tqdm

from triage.api import ingest
from triage.api.intake import ItemIn, parse_item
from triage.models import Category, Item

CHUNK = 500
SHOW_ERRORS = 20


def read_rows(path: Path) -> Iterator[tuple[int, object]]:
    """(line number, raw row) pairs; a row that cannot be read is a str error."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        # The csv module's own limit (131,072 characters a field) is below the longest
        # text ingest accepts; one over ours is read whole and refused by parse_item,
        # naming the field. Anything longer still is a csv.Error, reported below.
        csv.field_size_limit(
            max(settings.TRIAGE_MAX_TEXT_CHARS, settings.TRIAGE_MAX_METADATA_BYTES) + 1
        )
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            missing = {"external_id", "text"} - set(reader.fieldnames or [])
            if missing:
                raise CommandError(
                    f"{path}: the CSV header lacks {', '.join(sorted(missing))} "
                    f"(found: {', '.join(reader.fieldnames or []) or 'no header'})"
                )
            extra = [
                f for f in reader.fieldnames or [] if f not in {"external_id", "text", "label"}
            ]
            for row in _csv_rows(path, reader):
                if None in row:
                    yield reader.line_num, "has more fields than the header"
                    continue
                item: dict[str, Any] = {k: row[k] for k in ("external_id", "text") if k in row}
                if row.get("label"):
                    item["label"] = row["label"]
                if extra:
                    item["metadata"] = {k: row[k] for k in extra}
                yield reader.line_num, item
    elif suffix in {".jsonl", ".ndjson"}:
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as exc:
                    yield number, f"is not valid JSON: {exc.msg}"
                except RecursionError:
                    yield number, "is not valid JSON: nested too deeply"
    else:
        raise CommandError(f"{path}: unknown file type {suffix or '(none)'}; use .csv or .jsonl")


def _csv_rows(path: Path, reader: "csv.DictReader[str]") -> Iterator[dict[str, Any]]:
    try:
        yield from reader
    except csv.Error as exc:
        # line_num counts the lines read before the one that failed.
        raise CommandError(f"{path}, line {reader.line_num + 1}: {exc}") from None


class Command(BaseCommand):
    help = "Import items from a CSV or JSONL file with external_id, text and optional label."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--create-categories",
            action="store_true",
            help="create categories for unknown labels instead of failing",
        )
        parser.add_argument(
            "--skip-invalid",
            action="store_true",
            help="import the good rows and list the skipped ones",
        )

    def handle(self, *args: Any, file: Path, **options: Any) -> None:
        try:
            if not file.is_file():
                raise CommandError(f"{file}: no such file")
            rows = list(read_rows(file))
        except UnicodeDecodeError as exc:
            raise CommandError(
                f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from exc
        except OSError as exc:  # a name too long, no permission to read...
            raise CommandError(f"{file}: cannot read it ({exc.strerror})") from exc

        errors: list[tuple[int, str]] = []
        parsed: list[tuple[int, ItemIn]] = []
        for line, raw in rows:
            if isinstance(raw, str):
                errors.append((line, raw))
                continue
            result = parse_item(raw, line, allow_label=True)
            if isinstance(result, list):
                errors.extend((line, f"{e.field} {e.message}") for e in result)
            else:
                parsed.append((line, result))

        known = set(Category.objects.values_list("slug", flat=True))
        unknown = sorted({i.label for _, i in parsed if i.label and i.label not in known})
        if unknown and options["create_categories"]:
            bad = [label for label in unknown if slugify(label) != label]
            for line, item in parsed:
                if item.label in bad:
                    errors.append((line, f"label {item.label!r} is not a valid category slug"))
        elif unknown:
            for line, item in parsed:
                if item.label in unknown:
                    errors.append(
                        (line, f"unknown label {item.label!r} (use --create-categories to add it)")
                    )
        bad_lines = {line for line, _ in errors}
        conflicts = ingest.find_conflicts([i for line, i in parsed if line not in bad_lines])
        good = [(line, i) for line, i in parsed if line not in bad_lines]
        for index, external_id in conflicts:
            errors.append(
                (good[index][0], f"external_id {external_id!r} already exists with different text")
            )
        bad_lines = {line for line, _ in errors}
        errors.sort()

        if errors and not options["skip_invalid"]:
            shown = "\n".join(f"  line {line}: {message}" for line, message in errors[:SHOW_ERRORS])
            more = (
                f"\n  … and {len(errors) - SHOW_ERRORS} more" if len(errors) > SHOW_ERRORS else ""
            )
            raise CommandError(
                f"{file}: {len(bad_lines)} bad row(s); nothing was imported "
                f"(--skip-invalid imports the good rows):\n{shown}{more}"
            )

        items = [i for line, i in parsed if line not in bad_lines]
        created_categories = sorted({i.label for i in items if i.label and i.label not in known})
        summary = {"history": 0, "queued": 0, "existing": 0}
        try:
            with transaction.atomic():
                for slug in created_categories:
                    Category.objects.create(slug=slug, name=slug.replace("_", " ").capitalize())
                categories = {c.slug: c for c in Category.objects.all()}
                with tqdm(total=len(items), unit="row", disable=options["verbosity"] < 1) as bar:
                    for start in range(0, len(items), CHUNK):
                        chunk = items[start : start + CHUNK]
                        labelled = [i for i in chunk if i.label]
                        unlabelled = [i for i in chunk if not i.label]
                        if labelled:
                            history = ingest.import_history(items=labelled, categories=categories)
                            summary["history"] += len(history.created_ids)
                            summary["existing"] += len(history.existing_ids)
                        if unlabelled:
                            fresh = ingest.ingest_items(items=unlabelled, source=Item.Source.IMPORT)
                            summary["queued"] += len(fresh.created_ids)
                            summary["existing"] += len(fresh.existing_ids)
                        bar.update(len(chunk))

        except ingest.NotConfigured as exc:
            raise CommandError(f"{exc}; nothing was imported") from exc

        if errors:
            self.stderr.write(f"Skipped {len(bad_lines)} bad row(s):")
            for line, message in errors:
                self.stderr.write(f"  line {line}: {message}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {file}: {summary['history']} labelled row(s) as history, "
                f"{summary['queued']} queued for classification, "
                f"{summary['existing']} already present, {len(bad_lines)} skipped"
                + (
                    f"; created categories: {', '.join(created_categories)}"
                    if created_categories
                    else ""
                )
            )
        )
