"""Measurements taken inside a process as work happens (Prometheus histograms).

Kept apart from the scrape-time collector (triage.monitoring.prometheus) so the
classify service can import it without importing the models it reads.

Each process keeps its own values. With several processes (gunicorn workers, Celery
workers) set PROMETHEUS_MULTIPROC_DIR to an empty directory shared by all of them on
the host, before they start: prometheus_client then writes each process's values
there and /metrics adds them up. Without it, /metrics shows only the values of the
web process that answers the scrape (everything, in the embedded mode where tasks
run in-process).
"""

from prometheus_client import Counter, Histogram

# Not registered globally: the scrape view builds its registry per request (see
# triage.monitoring.prometheus.scrape_registry), so tests and multiprocess mode agree.
CLASSIFY_SECONDS = Histogram(
    "triage_classify_seconds",
    "Wall time of one classify call (scoring with the champion and routing), per batch.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=None,
)
CLASSIFIED_ITEMS = Counter(
    "triage_classified_items",
    "Items scored and routed by the classify service in this process.",
    registry=None,
)
PROCESS_INSTRUMENTS = (CLASSIFY_SECONDS, CLASSIFIED_ITEMS)


def observe_classify(*, seconds: float, items: int) -> None:
    CLASSIFY_SECONDS.observe(seconds)
    CLASSIFIED_ITEMS.inc(items)
