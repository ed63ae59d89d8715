"""Webhook delivery: destinations, timeouts, retries, the sweep."""

from __future__ import annotations

from triage.conf.fields import Setting, as_bool, as_int

WEBHOOK_ALLOW_PRIVATE = Setting(
    "TRIAGE_WEBHOOK_ALLOW_PRIVATE",
    lambda c: "on" if c.debug else "off",
    as_bool,
    "on/off",
    "Let webhooks reach private, loopback or link-local addresses (and plain http to them).",
    shown="on with `DEBUG`, else off",
)
WEBHOOK_TIMEOUT_SECONDS = Setting(
    "TRIAGE_WEBHOOK_TIMEOUT_SECONDS",
    "10",
    as_int,
    "seconds",
    "Time one delivery attempt may take (connect, send, first byte and the answer).",
)
WEBHOOK_RETRY_BASE_SECONDS = Setting(
    "TRIAGE_WEBHOOK_RETRY_BASE_SECONDS",
    "30",
    as_int,
    "seconds",
    "Delay before the first retry; it doubles with each attempt (jittered).",
)
WEBHOOK_RETRY_CAP_SECONDS = Setting(
    "TRIAGE_WEBHOOK_RETRY_CAP_SECONDS", "7200", as_int, "seconds", "Longest delay between retries."
)
WEBHOOK_RETRY_WINDOW_SECONDS = Setting(
    "TRIAGE_WEBHOOK_RETRY_WINDOW_SECONDS",
    "86400",
    as_int,
    "seconds",
    "How long a failing delivery is retried.",
)
WEBHOOK_SWEEP_GRACE_SECONDS = Setting(
    "TRIAGE_WEBHOOK_SWEEP_GRACE_SECONDS",
    "120",
    as_int,
    "seconds",
    "How long past due a delivery must be before the sweep queues it again.",
)
