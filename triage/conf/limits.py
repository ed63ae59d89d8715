"""What ingest and a request accept."""

from __future__ import annotations

from triage.conf.fields import Setting, as_int

MAX_TEXT_CHARS = Setting(
    "TRIAGE_MAX_TEXT_CHARS", "200000", as_int, "characters", "Longest text ingest accepts."
)
MAX_METADATA_BYTES = Setting(
    "TRIAGE_MAX_METADATA_BYTES",
    "16384",
    as_int,
    "bytes",
    "Largest `metadata` ingest accepts, as compact UTF-8 JSON.",
)
MAX_METADATA_DEPTH = Setting(
    "TRIAGE_MAX_METADATA_DEPTH",
    "32",
    as_int,
    "levels",
    "Deepest nesting of objects and lists in `metadata` ingest accepts (the object "
    "itself is level 1); deeper is refused with a 400 naming the field.",
)
INGEST_COPY_MIN = Setting(
    "TRIAGE_INGEST_COPY_MIN",
    "100",
    as_int,
    "items",
    "On PostgreSQL, an ingest batch of at least this many items is stored with one COPY "
    "into a staging table and one INSERT … SELECT (same answers, a fraction of the ORM's "
    "cost per item); smaller batches, and SQLite, use the ORM. 0: never.",
)
MAX_BODY_BYTES = Setting(
    "TRIAGE_MAX_BODY_BYTES",
    "2621440",
    as_int,
    "bytes",
    "Largest request "
    "body (Django's `DATA_UPLOAD_MAX_MEMORY_SIZE`); a bigger API body gets a JSON 413.",
)
