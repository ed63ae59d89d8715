"""Personal data: masking, phone regions, retention."""

from __future__ import annotations

from triage.conf.fields import Setting, Values, as_bool, as_int, as_regions, min_retention_days
from triage.conf.loop import LIVE_WINDOW_DAYS


def _retention(name: str, days: int, earlier: Values) -> str | None:
    shortest = min_retention_days(earlier[LIVE_WINDOW_DAYS])
    return None if not days or days >= shortest else (
        f"{name}={days}: the shortest retention is {shortest} days "
        "(0 or unset keeps texts until forgotten)"
    )  # fmt: skip


MASK_FOR_ANALYSTS = Setting(
    "TRIAGE_MASK_FOR_ANALYSTS",
    "on",
    as_bool,
    "on/off",
    "Mask e-mail "
    "addresses, phone numbers, card numbers, IBANs and the admins' patterns on the card.",
)
MASK_TRAINING = Setting(
    "TRIAGE_MASK_TRAINING",
    "off",
    as_bool,
    "on/off",
    "Store training examples' text masked (when the example is written).",
)
PHONE_REGIONS = Setting(
    "TRIAGE_PHONE_REGIONS",
    "US",
    as_regions,
    "regions",
    "Regions (ISO 3166, "
    "comma-separated) whose national phone numbers are found; `+` numbers are found anyway.",
)
RETENTION_DAYS = Setting(
    "TRIAGE_RETENTION_DAYS",
    "0",
    as_int,
    "days",
    "Prune daily the texts, "
    "metadata, embeddings and predictions of decided items older than this; at least "
    "`TRIAGE_MIN_RETENTION_DAYS`.",
    shown="`0` (keep)",
    check=_retention,
)
