"""Prometheus metrics: the domain's figures, read from the database at scrape time.

Reading at scrape time (a custom collector) rather than counting in each process
means every web process answers the same figures, whichever Celery worker did the
work, and nothing is lost on a restart. Items, predictions and reviews are read from
their tallies (triage.monitoring.tallies: one row per key, written with the rows), so a
scrape costs the same at any table size. Counts of things that happened are exposed as
counters (a tally's n + gone, which only grows: retention's deletes and changed
decisions do not take it back); figures that go up and down (items by status, queue,
deliveries, live precision) as gauges.
The classify latency is measured where it happens (triage.monitoring.instruments).
"""

import os
from collections.abc import Iterator

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from triage.actions.models import Delivery
from triage.models import Item, ModelVersion, ReviewTask
from triage.monitoring.instruments import PROCESS_INSTRUMENTS
from triage.monitoring.live import Span, live_report
from triage.monitoring.models import Tally
from triage.monitoring.tallies import ItemState, item_states, totals

# The label for figures over every category (slugs cannot contain parentheses).
ALL_CATEGORIES = "(all)"


class DomainCollector(Collector):
    """Items, decisions, the review queue, deliveries, the champion and live precision."""

    def collect(self) -> Iterator[Metric]:
        states = item_states()  # read once: items by status and by who decided them
        yield from self._items(states)
        yield from self._decisions(states)
        yield from self._queue()
        yield from self._deliveries()
        yield from self._champion()
        yield from self._live()

    def _items(self, states: list[tuple[ItemState, int]]) -> Iterator[Metric]:
        ingested = CounterMetricFamily(
            "triage_items_ingested",
            "Items ingested, by source (api, import).",
            labels=["source"],
        )
        by_status = GaugeMetricFamily(
            "triage_items", "Items by their current status.", labels=["status"]
        )
        received = totals(Tally.Kind.RECEIVED)
        for (_, source), (n, gone) in sorted(received.items()):
            ingested.add_metric([source], n + gone)  # gone: only a reconcile's repair
        statuses: dict[str, int] = {s: 0 for s in Item.Status.values}
        for state, n in states:
            statuses[state.status] = statuses.get(state.status, 0) + n
        for status, n in sorted(statuses.items()):
            by_status.add_metric([status], n)
        yield ingested
        yield by_status

    def _decisions(self, states: list[tuple[ItemState, int]]) -> Iterator[Metric]:
        predicted = CounterMetricFamily(
            "triage_predictions",
            "Predictions by the model's category and route (auto: acted on; review: to people).",
            labels=["category", "route"],
        )
        # n + gone: predictions made, those retention deleted since included (monotonic).
        for (slug, route), (n, gone) in sorted(totals(Tally.Kind.PREDICTION).items()):
            predicted.add_metric([slug, route], n + gone)
        yield predicted

        # Who decided each item's current category: an auto-route (model or rule) or a person.
        decided = GaugeMetricFamily(
            "triage_items_decided",
            "Items by their final category and who decided it (model, rule or user).",
            labels=["category", "decided_by"],
        )
        decided_by: dict[tuple[str, str], int] = {}
        for state, n in states:
            if state.category and n:
                label = (state.category, "other" if state.decider == "none" else state.decider)
                decided_by[label] = decided_by.get(label, 0) + n
        for (slug, who), n in sorted(decided_by.items()):
            decided.add_metric([slug, who], n)
        yield decided

        reviewed = CounterMetricFamily(
            "triage_reviews",
            "Analysts' decisions, by the category chosen and whether the model agreed "
            "(a decision changed within the undo window counts under both).",
            labels=["category", "agreed_with_model"],
        )
        for (slug, agreed), (n, gone) in sorted(totals(Tally.Kind.REVIEW).items()):
            reviewed.add_metric([slug, agreed], n + gone)
        yield reviewed

    def _queue(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "triage_review_queue_depth", "Open review tasks, by reason.", labels=["reason"]
        )
        counts = {reason: n for (_, reason), (n, _gone) in totals(Tally.Kind.TASK).items()}
        for reason in ReviewTask.Reason.values:
            depth.add_metric([reason], counts.get(reason, 0))
        yield depth
        # One probe of reviewtask_open_created_idx.
        open_tasks = ReviewTask.objects.order_by().filter(completed_at__isnull=True)
        oldest = open_tasks.aggregate(at=Min("created_at"))["at"]
        yield GaugeMetricFamily(
            "triage_review_queue_oldest_age_seconds",
            "Age of the oldest open review task (0 when the queue is empty).",
            value=(timezone.now() - oldest).total_seconds() if oldest else 0.0,
        )

    def _deliveries(self) -> Iterator[Metric]:
        deliveries = GaugeMetricFamily(
            "triage_webhook_deliveries",
            "Webhook deliveries by state; `failed` ones gave up after the retry window.",
            labels=["state"],
        )
        counts = dict(Delivery.objects.order_by().values_list("state").annotate(n=Count("id")))
        for state in Delivery.State.values:
            deliveries.add_metric([state], counts.get(state, 0))
        yield deliveries

    def _champion(self) -> Iterator[Metric]:
        champion = ModelVersion.objects.champion()
        yield GaugeMetricFamily(
            "triage_champion_version",
            "The serving model version's id (0 before the first model: zero-shot).",
            value=champion.pk if champion else 0,
        )
        info = GaugeMetricFamily(
            "triage_champion_info", "The serving model version.", labels=["version", "kind"]
        )
        if champion is not None:
            info.add_metric([str(champion.pk), champion.kind], 1)
        yield info

    def _live(self) -> Iterator[Metric]:
        report = live_report()
        labels = ["category", "span"]
        precision = GaugeMetricFamily(
            "triage_live_precision",
            "Precision of auto-actions measured by blind audits (weighted estimate); "
            "span since_change: since the last model or threshold change; window: the "
            "rolling window. Absent while nothing is audited.",
            labels=labels,
        )
        lower = GaugeMetricFamily(
            "triage_live_precision_lower", "Lower end of its 95% exact interval.", labels=labels
        )
        upper = GaugeMetricFamily(
            "triage_live_precision_upper", "Upper end of its 95% exact interval.", labels=labels
        )
        audited = GaugeMetricFamily(
            "triage_live_audited", "Audit verdicts behind the live precision.", labels=labels
        )
        target = GaugeMetricFamily(
            "triage_target_precision",
            "The target precision a category is watched against.",
            labels=["category"],
        )
        suspended = GaugeMetricFamily(
            "triage_category_suspended",
            "1 while the drift watch has suspended the category's auto-actions.",
            labels=["category"],
        )
        alarm = GaugeMetricFamily(
            "triage_category_alarm",
            "1 while the category is in alarm: its audited interval since the change lies "
            "wholly below its target, or its drift statistic has passed half its threshold "
            "(the cockpit's red row).",
            labels=["category"],
        )
        statistic = GaugeMetricFamily(
            "triage_drift_statistic_ratio",
            "The drift watch's statistic over its threshold (1 suspends).",
            labels=["category"],
        )

        def add(slug: str, span_name: str, span: Span) -> None:
            estimate = span.precision
            audited.add_metric([slug, span_name], estimate.audited)
            if estimate.precision is not None:
                precision.add_metric([slug, span_name], estimate.precision)
                lower.add_metric([slug, span_name], estimate.lower)
                upper.add_metric([slug, span_name], estimate.upper)

        for category in report.categories:
            add(category.slug, "since_change", category.since_change)
            add(category.slug, "window", category.window)
            if category.target is not None:
                target.add_metric([category.slug], category.target)
            suspended.add_metric([category.slug], int(category.drift["state"] == "suspended"))
            alarm.add_metric([category.slug], int(category.alarm["on"]))
            if category.drift.get("design"):
                statistic.add_metric([category.slug], category.drift["fraction"])
        add(ALL_CATEGORIES, "since_change", report.overall_since_change)
        add(ALL_CATEGORIES, "window", report.overall_window)
        yield from (precision, lower, upper, audited, target, suspended, alarm, statistic)


def scrape_registry() -> CollectorRegistry:
    """What one scrape answers: the domain figures and the process instruments.

    In multiprocess mode (PROMETHEUS_MULTIPROC_DIR) the instruments are read from the
    files every process on the host writes; otherwise from this process.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DomainCollector())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        for instrument in PROCESS_INSTRUMENTS:
            registry.register(instrument)
    return registry
