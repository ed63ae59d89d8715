"""The loop: the review queue, audits, live precision, classification's recovery, training."""

from __future__ import annotations

from triage.conf.fields import Setting, Values, as_float, as_int, as_text


def _at_least_three(name: str, crashes: int, earlier: Values) -> str | None:
    return None if crashes >= 3 else (
        f"{name}={crashes} is under 3: an item must be able to die in its batch, in a group "
        "and alone before it is given up on, or the innocent items beside it would be sent "
        "to review with it"
    )  # fmt: skip


def _not_negative(name: str, count: int, earlier: Values) -> str | None:
    return None if count >= 0 else f"{name}={count} is below 0 (0 turns it off)"


def _a_share(name: str, share: float, earlier: Values) -> str | None:
    return None if 0 <= share <= 1 else f"{name}={share:g} is outside [0, 1]"


LEASE_SECONDS = Setting(
    "TRIAGE_LEASE_SECONDS",
    "600",
    as_int,
    "seconds",
    "How long an analyst's claim on a review task lasts; the open card renews it.",
)
SKIP_COOLDOWN_SECONDS = Setting(
    "TRIAGE_SKIP_COOLDOWN_SECONDS",
    "1800",
    as_int,
    "seconds",
    "How long a skipped task stays away from the analyst who skipped it.",
)
UNDO_SECONDS = Setting(
    "TRIAGE_UNDO_SECONDS",
    "600",
    as_int,
    "seconds",
    "How long analysts may change their own decisions.",
)
QUEUE_POLL_SECONDS = Setting(
    "TRIAGE_QUEUE_POLL_SECONDS",
    "10",
    as_int,
    "seconds",
    "How often the empty queue checks for new work.",
)
AUDIT_SHARE = Setting(
    "TRIAGE_AUDIT_SHARE",
    "0.25",
    as_float,
    "share",
    "Share of claims that take an audit task first while audits wait.",
)
AUDIT_KEY = Setting(
    "TRIAGE_AUDIT_KEY",
    "",
    as_text,
    "secret",
    "Key of the audit draw (an HMAC of each item's external id), so whoever chooses ids "
    "cannot choose audits; empty: derived from `SECRET_KEY`. Set it to keep the draw "
    "across a `SECRET_KEY` rotation.",
    shown="derived from `SECRET_KEY`",
)
LIVE_WINDOW_DAYS = Setting(
    "TRIAGE_LIVE_WINDOW_DAYS",
    "28",
    as_int,
    "days",
    'Rolling window of live precision, beside "since the last model or threshold change".',
)
STUCK_AFTER_SECONDS = Setting(
    "TRIAGE_STUCK_AFTER_SECONDS",
    "120",
    as_int,
    "seconds",
    "An item still unclassified this long after ingest is re-queued by the sweep.",
)
STUCK_MAX_ATTEMPTS = Setting(
    "TRIAGE_STUCK_MAX_ATTEMPTS",
    "5",
    as_int,
    "attempts",
    "Re-queues (each waiting twice as long as the last) before an item goes to review unscored.",
)
CLASSIFY_MAX_CRASHES = Setting(
    "TRIAGE_CLASSIFY_MAX_CRASHES",
    "3",
    as_int,
    "crashes",
    "Starts of an item's classification that never finished (its worker died) before it goes "
    "to review unscored: in its batch, in a small group, then alone.",
    check=_at_least_three,
)
CLASSIFY_CHUNK = Setting(
    "TRIAGE_CLASSIFY_CHUNK",
    "1000",
    as_int,
    "items",
    "Items per classify task: bigger chunks embed faster, smaller ones finish sooner.",
)
MIN_EXAMPLES_PER_CATEGORY = Setting(
    "TRIAGE_MIN_EXAMPLES_PER_CATEGORY",
    "5",
    as_int,
    "examples",
    "Active training examples a category needs to be trained on; a retrain needs two such "
    "categories.",
)
RETRAIN_AFTER_LABELS = Setting(
    "TRIAGE_RETRAIN_AFTER_LABELS",
    "100",
    as_int,
    "labels",
    "Retrain in the background each time this many new trusted labels (reviews and audits "
    "not held by quarantine) have arrived since the champion was trained, besides the nightly "
    "retrain; 0: nightly only. The gate decides as ever.",
    check=_not_negative,
)
QUEUE_OLDEST_SHARE = Setting(
    "TRIAGE_QUEUE_OLDEST_SHARE",
    "0.25",
    as_float,
    "share",
    'With the policy\'s queue order "smallest margin first", the share of claims that take '
    "the oldest task instead, so no task waits forever.",
    check=_a_share,
)
