"""Exports: items, reviews or training examples as CSV or JSON Lines, streamed.

Rows come from a server-side cursor (QuerySet.iterator) in chunks and leave as text
chunks, so memory stays flat however many rows there are (benchmarks/workspace.py
measures it at 1,000,000). The training set of a model version is rebuilt from its
snapshot and checked against the snapshot's digest before the first byte is written.
"""

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet

from triage.models import Category, Item, ModelVersion, Review
from triage.training.models import TrainingExample
from triage.training.snapshot import SnapshotUnavailable, trained_on_queryset

CHUNK_ROWS = 5000
FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


class ExportError(Exception):
    """Bad export parameters; the message names what was wrong."""

    def __init__(self, message: str, *, field: str) -> None:
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class Dataset:
    columns: tuple[tuple[str, str], ...]  # (column name, ORM lookup)
    rows: Callable[[ModelVersion | None], QuerySet[Any]]
    json_columns: tuple[str, ...] = ()
    time_columns: tuple[str, ...] = ("created_at",)


def _items(version: ModelVersion | None) -> QuerySet[Any]:
    return Item.objects.order_by("pk")


def _reviews(version: ModelVersion | None) -> QuerySet[Any]:
    return Review.objects.order_by("pk")


def _training(version: ModelVersion | None) -> QuerySet[Any]:
    if version is not None:
        return trained_on_queryset(version)
    # What the next snapshot would take, before its minimum-per-category check.
    active = Category.objects.filter(is_active=True).values("pk")
    return TrainingExample.objects.trusted().filter(category__in=active).order_by("pk")


DATASETS = {
    "items": Dataset(
        columns=(
            ("external_id", "external_id"),
            ("text", "text"),
            ("metadata", "metadata"),
            ("source", "source"),
            ("status", "status"),
            ("received_at", "received_at"),
            ("final_category", "final_category__slug"),
            ("decided_by", "decided_by"),
            ("decided_at", "decided_at"),
        ),
        rows=_items,
        json_columns=("metadata",),
        time_columns=("received_at", "decided_at"),
    ),
    "reviews": Dataset(
        columns=(
            ("review_id", "pk"),
            ("external_id", "item__external_id"),
            ("reviewer", "reviewer__username"),
            ("category", "category__slug"),
            ("task_reason", "task__reason"),
            ("agreed_with_model", "agreed_with_model"),
            ("model_confidence", "model_confidence"),
            ("bulk", "bulk"),
            ("seconds_spent", "seconds_spent"),
            ("created_at", "created_at"),
        ),
        rows=_reviews,
    ),
    "training": Dataset(
        columns=(
            ("example_id", "pk"),
            ("external_id", "item__external_id"),
            ("text", "text"),
            ("category", "category__slug"),
            ("source", "source"),
            ("split", "split"),
            ("created_at", "created_at"),
        ),
        rows=_training,
    ),
}


@dataclass(frozen=True)
class Export:
    dataset: str
    format: str
    content_type: str
    filename: str
    chunks: Iterator[str]


def start_export(*, dataset: str, format: str, model_version: int | None = None) -> Export:
    """Check the parameters (and a version's snapshot) now; stream the rows when iterated."""
    if dataset not in DATASETS:
        raise ExportError(
            f"unknown dataset {dataset!r}: choose one of {', '.join(sorted(DATASETS))}",
            field="dataset",
        )
    if format not in FORMATS:
        raise ExportError(
            f"unknown format {format!r}: choose one of {', '.join(FORMATS)}", field="format"
        )
    version = None
    if model_version is not None:
        if dataset != "training":
            raise ExportError(
                "model_version applies to the training dataset only", field="model_version"
            )
        version = ModelVersion.objects.filter(pk=model_version).first()
        if version is None:
            raise ExportError(f"no model version {model_version}", field="model_version")
    spec = DATASETS[dataset]
    try:
        rows = spec.rows(version)
    except SnapshotUnavailable as exc:
        raise ExportError(str(exc), field="model_version") from exc
    suffix = f"-v{version.pk}" if version else ""
    return Export(
        dataset=dataset,
        format=format,
        content_type=FORMATS[format],
        filename=f"{dataset}{suffix}.{format}",
        chunks=_stream(spec, rows, format),
    )


def _stream(spec: Dataset, rows: QuerySet[Any], format: str) -> Iterator[str]:
    names = [name for name, _ in spec.columns]
    values = rows.values_list(*(lookup for _, lookup in spec.columns)).iterator(
        chunk_size=CHUNK_ROWS
    )
    json_at = [names.index(name) for name in spec.json_columns]
    time_at = [names.index(name) for name in spec.time_columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if format == "csv":
        writer.writerow(names)
    pending = 0
    for row in values:
        cells = list(row)
        for i in time_at:
            if cells[i] is not None:
                cells[i] = cells[i].isoformat()
        if format == "csv":
            for i in json_at:
                cells[i] = json.dumps(cells[i], ensure_ascii=False)
            writer.writerow(cells)
        else:
            record = dict(zip(names, cells, strict=True))
            buffer.write(json.dumps(record, cls=DjangoJSONEncoder, ensure_ascii=False) + "\n")
        pending += 1
        if pending == CHUNK_ROWS:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    if buffer.tell():
        yield buffer.getvalue()
