"""The analysts' tools and trust in them: similar items, bulk, second reviews, quarantine."""

from __future__ import annotations

from triage.conf.fields import Setting, as_float, as_int, as_path

SIMILAR_REFRESH_SECONDS = Setting(
    "TRIAGE_SIMILAR_REFRESH_SECONDS",
    "30",
    as_int,
    "seconds",
    "How often each web process looks for a newer similar-items file and reads the rows "
    "newer than the one it maps.",
)
SIMILAR_REBUILD_SECONDS = Setting(
    "TRIAGE_SIMILAR_REBUILD_SECONDS",
    "600",
    as_int,
    "seconds",
    "How often a worker rebuilds the similar-items files whole (Celery beat), dropping "
    "items forgotten or reopened.",
)
SIMILAR_INDEX_DIR = Setting(
    "TRIAGE_SIMILAR_INDEX_DIR",
    lambda c: str(c.base_dir / "var" / "similar"),
    as_path,
    "path",
    "Where the similar-items files are kept, mapped by every web process of a host; "
    "workers write them, so it must be shared with them, as TRIAGE_ARTIFACT_DIR is.",
    shown="`var/similar` in the checkout",
)
SIMILAR_EXACT_MAX = Setting(
    "TRIAGE_SIMILAR_EXACT_MAX",
    "20000",
    as_int,
    "rows",
    "Up to this many rows the similar-items search is exact; beyond, a FAISS inverted file.",
)
SIMILAR_NPROBE = Setting(
    "TRIAGE_SIMILAR_NPROBE",
    "32",
    as_int,
    "lists",
    "Lists of that inverted file (about √n of them) each search scans, the nearest first.",
)
BULK_LIMIT = Setting(
    "TRIAGE_BULK_LIMIT", "50", as_int, "tasks", "Most open tasks one bulk decision may cover."
)
BULK_SIMILARITY_FLOOR = Setting(
    "TRIAGE_BULK_SIMILARITY_FLOOR",
    "0.8",
    as_float,
    "cosine",
    "The bulk panel offers only open tasks at least this similar to the card's item.",
)
SECOND_REVIEW_SHARE = Setting(
    "TRIAGE_SECOND_REVIEW_SHARE",
    "0.05",
    as_float,
    "share",
    "Share of ordinary decisions that get a blind second review (confident overturns all do).",
)
SECOND_REVIEW_BULK_SHARE = Setting(
    "TRIAGE_SECOND_REVIEW_BULK_SHARE",
    "0.2",
    as_float,
    "share",
    "Share of bulk decisions that get a blind second review.",
)
QUARANTINE_AGREEMENT_FLOOR = Setting(
    "TRIAGE_QUARANTINE_AGREEMENT_FLOOR",
    "0.8",
    as_float,
    "share",
    "Quarantine an analyst whose agreement with second reviews is shown to be below this.",
)
QUARANTINE_OVERTURN_RATIO = Setting(
    "TRIAGE_QUARANTINE_OVERTURN_RATIO",
    "3",
    as_float,
    "ratio",
    "Quarantine an analyst whose confident-overturn rate is shown to be above this times the "
    "peers' upper bound.",
)
QUARANTINE_ALPHA = Setting(
    "TRIAGE_QUARANTINE_ALPHA",
    "0.01",
    as_float,
    "level",
    "Chance that an honest analyst is ever quarantined, over all looks (anytime-valid).",
)
QUALITY_WINDOW_DAYS = Setting(
    "TRIAGE_QUALITY_WINDOW_DAYS",
    "30",
    as_int,
    "days",
    "Days of decisions that reviewers' quality figures look at (quarantine: since the last one).",
)
