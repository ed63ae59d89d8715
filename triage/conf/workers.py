"""Celery workers and beat: redelivery of dead workers' tasks, the sweeps, the nightly retrain."""

from __future__ import annotations

from triage.conf.fields import Setting, as_int

VISIBILITY_TIMEOUT_SECONDS = Setting(
    "TRIAGE_VISIBILITY_TIMEOUT_SECONDS",
    "300",
    as_int,
    "seconds",
    "After this a dead worker's task is handed out again; it must outlast the "
    "longest task acknowledged late (a classify chunk, a webhook attempt).",
)
BROKER_RESTORE_SECONDS = Setting(
    "TRIAGE_BROKER_RESTORE_SECONDS",
    "10",
    as_int,
    "seconds",
    "How often the broker looks for such tasks.",
)
STUCK_SWEEP_SECONDS = Setting(
    "TRIAGE_STUCK_SWEEP_SECONDS", "30", as_int, "seconds", "How often the stuck-item sweep runs."
)
RETRAIN_HOUR = Setting(
    "TRIAGE_RETRAIN_HOUR",
    "2",
    as_int,
    "hour (UTC)",
    "Hour of the nightly retrain (retention's prune runs an hour later).",
)
RETRAIN_MINUTE = Setting(
    "TRIAGE_RETRAIN_MINUTE", "0", as_int, "minute", "Minute of the nightly retrain."
)
