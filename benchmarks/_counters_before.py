"""The counting path before the tallies (issue 20), kept outside the product as the
baseline of benchmarks/_scale_counters.py: the same queries, patched in for a run.

- old_audit_rates: the 7-day AUTO volume per category counted in the predictions table
  on every classify call;
- old _items/_decisions of the Prometheus collector: whole-table counts per scrape;
- old_spans: live automation counted in the predictions table from each start.
"""

from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from unittest import mock

from django.db.models import Case, CharField, Count, Q, Value, When
from django.utils import timezone
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from triage.models import Category, Item, Prediction, Review, RoutingPolicy
from triage.monitoring.audits import FLOOR_PERIOD, audit_rate_for
from triage.monitoring.live import Automation, Span
from triage.monitoring.models import AuditSample
from triage.monitoring.precision import PrecisionEstimate, weighted_precision


def old_audit_rates(*, policy: RoutingPolicy, now: datetime | None = None) -> dict[str, float]:
    now = now or timezone.now()
    volumes = dict(
        Prediction.objects.filter(route=Prediction.Route.AUTO, created_at__gte=now - FLOOR_PERIOD)
        .values_list("label__slug")
        .annotate(n=Count("id"))
        .values_list("label__slug", "n")
    )
    return {
        slug: audit_rate_for(
            base_rate=policy.audit_rate,
            floor=policy.audit_floor,
            weekly_volume=volumes.get(slug, 0),
        )
        for slug in Category.objects.filter(is_active=True).values_list("slug", flat=True)
    }


def old_spans(
    start: datetime | None, *, starts: dict[str, datetime] | None = None
) -> tuple[dict[str, Span], Span]:
    """Per category and overall, from `start`, or from each category's own start."""
    starts = starts or {}
    earliest = min([start, *starts.values()], key=lambda t: t.timestamp() if t else 0)
    samples = AuditSample.objects.filter(audited_at__isnull=False, held=False)
    predictions = Prediction.objects.all()
    if earliest is not None:
        samples = samples.filter(sampled_at__gte=earliest)
        predictions = predictions.filter(created_at__gte=earliest)

    def counts_from(slug: str, at: datetime) -> bool:
        begin = starts.get(slug, start)
        return begin is None or at >= begin

    verdicts: dict[str, tuple[list[bool], list[float]]] = defaultdict(lambda: ([], []))
    for slug, correct, probability, at in samples.values_list(
        "category__slug", "correct", "probability", "sampled_at"
    ):
        if counts_from(slug, at):
            verdicts[slug][0].append(bool(correct))
            verdicts[slug][1].append(probability)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"auto": 0, "review": 0})
    if starts:
        # Each category from its own start, counted in the database (one grouped query).
        own = Q()
        for slug, begin in starts.items():
            own |= Q(label__slug=slug, created_at__gte=begin)
        others = ~Q(label__slug__in=list(starts))
        if start is not None:
            others &= Q(created_at__gte=start)
        predictions = predictions.filter(own | others)
    for slug, route, n in (
        predictions.values_list("label__slug", "route")
        .annotate(n=Count("id"))
        .values_list("label__slug", "route", "n")
    ):
        counts[slug][route] += n

    def precision(slug: str) -> PrecisionEstimate:
        correct, probability = verdicts.get(slug, ([], []))
        return weighted_precision(correct, probabilities=probability)

    per = {
        slug: Span(
            precision(slug),
            Automation(counts[slug]["auto"], counts[slug]["auto"] + counts[slug]["review"]),
        )
        for slug in set(verdicts) | set(counts)
    }
    all_correct = [c for correct, _ in verdicts.values() for c in correct]
    all_probability = [p for _, probability in verdicts.values() for p in probability]
    overall = Span(
        weighted_precision(all_correct, probabilities=all_probability),
        Automation(
            sum(c["auto"] for c in counts.values()),
            sum(c["auto"] + c["review"] for c in counts.values()),
        ),
    )
    return per, overall


def _items(self) -> Iterator[Metric]:
    ingested = CounterMetricFamily(
        "triage_items_ingested",
        "Items ingested, by source (api, import).",
        labels=["source"],
    )
    by_status = GaugeMetricFamily(
        "triage_items", "Items by their current status.", labels=["status"]
    )
    sources: dict[str, int] = {}
    statuses: dict[str, int] = {s: 0 for s in Item.Status.values}
    for source, status, n in (
        Item.objects.order_by().values_list("source", "status").annotate(n=Count("id"))
    ):
        sources[source] = sources.get(source, 0) + n
        statuses[status] = statuses.get(status, 0) + n
    for source, n in sorted(sources.items()):
        ingested.add_metric([source], n)
    for status, n in sorted(statuses.items()):
        by_status.add_metric([status], n)
    yield ingested
    yield by_status


def _decisions(self) -> Iterator[Metric]:
    predicted = CounterMetricFamily(
        "triage_predictions",
        "Predictions by the model's category and route (auto: acted on; review: to people).",
        labels=["category", "route"],
    )
    for slug, route, n in (
        Prediction.objects.order_by().values_list("label__slug", "route").annotate(n=Count("id"))
    ):
        predicted.add_metric([slug, route], n)
    yield predicted

    # Who decided each item's current category: an auto-route (model or rule) or a person.
    decided = GaugeMetricFamily(
        "triage_items_decided",
        "Items by their final category and who decided it (model, rule or user).",
        labels=["category", "decided_by"],
    )
    decider = Case(
        When(decided_by__startswith="model", then=Value("model")),
        When(decided_by__startswith="rule:", then=Value("rule")),
        When(decided_by__startswith="user:", then=Value("user")),
        default=Value("other"),
        output_field=CharField(),
    )
    for slug, who, n in (
        Item.objects.order_by()
        .filter(final_category__isnull=False)
        .annotate(who=decider)
        .values_list("final_category__slug", "who")
        .annotate(n=Count("id"))
    ):
        decided.add_metric([slug, who], n)
    yield decided

    reviewed = CounterMetricFamily(
        "triage_reviews",
        "Analysts' decisions, by the category chosen and whether the model agreed.",
        labels=["category", "agreed_with_model"],
    )
    agreed_label = {True: "yes", False: "no", None: "no_suggestion"}
    for slug, agreed, n in (
        Review.objects.order_by()
        .values_list("category__slug", "agreed_with_model")
        .annotate(n=Count("id"))
    ):
        reviewed.add_metric([slug, agreed_label[agreed]], n)
    yield reviewed


@contextmanager
def counting_path() -> Iterator[None]:
    """Within it, classification and /metrics count as they did before the tallies."""
    from triage.monitoring import audits, live
    from triage.monitoring.prometheus import DomainCollector

    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(audits, "audit_rates", old_audit_rates))
        stack.enter_context(mock.patch.object(live, "audit_rates", old_audit_rates))
        stack.enter_context(mock.patch.object(live, "_spans", old_spans))
        stack.enter_context(mock.patch.object(DomainCollector, "_items", _items))
        stack.enter_context(mock.patch.object(DomainCollector, "_decisions", _decisions))
        yield
