"""Live precision, automation and drift state per category: the verified promise.

Figures come from completed audits (AuditSample verdicts), weighted by each
audit's inverse probability (triage.monitoring.precision), over two spans:
since the last model or threshold change (the current promise), and over a
rolling window (TRIAGE_LIVE_WINDOW_DAYS).
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Max
from django.utils import timezone

from triage.models import AuditLog, Category, ModelVersion, Prediction, RoutingPolicy
from triage.monitoring.audits import audit_rates
from triage.monitoring.models import AuditSample, CategoryWatch
from triage.monitoring.precision import PrecisionEstimate, one_sided_lower, weighted_precision
from triage.monitoring.watch import design_for

# Audit-log actions that change what an auto-action means: a new champion or a threshold.
CHANGE_ACTIONS = ("promote", "rollback", "policy", "category")


def last_change_at() -> datetime | None:
    logged = AuditLog.objects.filter(action__in=CHANGE_ACTIONS).aggregate(at=Max("at"))["at"]
    champion = ModelVersion.objects.champion()
    promoted = champion.promoted_at if champion else None
    return max((t for t in (logged, promoted) if t is not None), default=None)


@dataclass(frozen=True)
class Automation:
    auto: int
    total: int

    @property
    def rate(self) -> float | None:
        return self.auto / self.total if self.total else None

    def as_json(self) -> dict[str, Any]:
        rate = self.rate
        return {
            "auto": self.auto,
            "total": self.total,
            "rate": None if rate is None else round(rate, 4),
        }


@dataclass(frozen=True)
class Span:
    precision: PrecisionEstimate
    automation: Automation

    def as_json(self) -> dict[str, Any]:
        return self.precision.as_json() | {"automation": self.automation.as_json()}


@dataclass(frozen=True)
class CategoryLive:
    slug: str
    target: float | None
    audit_rate: float
    since_change: Span
    window: Span
    drift: dict[str, Any]
    check: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "audit_rate": round(self.audit_rate, 4),
            "since_change": self.since_change.as_json(),
            "window": self.window.as_json(),
            "drift": self.drift,
            "audit_certification": self.check,
        }


def audit_certification(
    estimate: PrecisionEstimate, *, target: float | None, delta: float, min_support: int
) -> dict[str, Any]:
    """The certified promise checked on audits: a random sample of live auto-actions.

    Certification rests on labelled history; audits since the last change are a
    random sample of the auto-actions the current threshold actually takes. With
    at least min_support of them, the exact one-sided lower bound at 1 − δ must
    reach the target for the promise to count as verified on live traffic.
    """
    lower = one_sided_lower(estimate, delta=delta)
    enough = estimate.audited >= min_support
    verified = None if target is None or not enough else lower >= target
    return {
        "audited": estimate.audited,
        "min_support": min_support,
        "delta": delta,
        "lower_bound": round(lower, 4),
        "verified": verified,
    }


@dataclass(frozen=True)
class LiveReport:
    since: datetime | None
    window_from: datetime
    categories: list[CategoryLive]
    overall_since_change: Span
    overall_window: Span

    @property
    def suspended(self) -> list[str]:
        return [c.slug for c in self.categories if c.drift["state"] == "suspended"]

    def as_json(self) -> dict[str, Any]:
        return {
            "since_change": self.since.isoformat() if self.since else None,
            "window_days": settings.TRIAGE_LIVE_WINDOW_DAYS,
            "window_from": self.window_from.isoformat(),
            "overall": {
                "since_change": self.overall_since_change.as_json(),
                "window": self.overall_window.as_json(),
            },
            "categories": {c.slug: c.as_json() for c in self.categories},
            "suspended": self.suspended,
        }


def _spans(start: datetime | None) -> tuple[dict[str, Span], Span]:
    samples = AuditSample.objects.filter(audited_at__isnull=False)
    predictions = Prediction.objects.all()
    if start is not None:
        samples = samples.filter(sampled_at__gte=start)
        predictions = predictions.filter(created_at__gte=start)
    verdicts: dict[str, tuple[list[bool], list[float]]] = defaultdict(lambda: ([], []))
    for slug, correct, probability in samples.values_list(
        "category__slug", "correct", "probability"
    ):
        verdicts[slug][0].append(bool(correct))
        verdicts[slug][1].append(probability)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"auto": 0, "review": 0})
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


def _drift_state(
    watch: CategoryWatch | None, category: Category, policy: RoutingPolicy
) -> dict[str, Any]:
    design = design_for(category, policy=policy)
    state = {
        "state": "off" if design is None else "watching",
        "method": "bernoulli-cusum e-detector",
        "statistic": round(watch.statistic, 4) if watch else 0.0,
        "audited": watch.outcomes if watch else 0,
        "watch_from": watch.watch_from.isoformat() if watch else None,
        "design": design.as_json() if design else None,
        "suspended_at": None,
        "suspension": None,
    }
    if design is None:
        state["note"] = "no target precision: nothing to watch against"
    if watch is not None and watch.suspended_at is not None:
        state |= {
            "state": "suspended",
            "suspended_at": watch.suspended_at.isoformat(),
            "suspension": watch.suspension,
        }
    return state


def live_report(*, now: datetime | None = None) -> LiveReport:
    now = now or timezone.now()
    policy = RoutingPolicy.current()
    since = last_change_at()
    window_from = now - timedelta(days=settings.TRIAGE_LIVE_WINDOW_DAYS)
    per_since, overall_since = _spans(since)
    per_window, overall_window = _spans(window_from)
    rates = audit_rates(policy=policy, now=now)
    watches = {w.category_id: w for w in CategoryWatch.objects.all()}
    empty = Span(weighted_precision([], probabilities=[]), Automation(0, 0))
    categories = [
        CategoryLive(
            slug=category.slug,
            target=design.target if (design := design_for(category, policy=policy)) else None,
            audit_rate=rates.get(category.slug, policy.audit_rate),
            since_change=per_since.get(category.slug, empty),
            window=per_window.get(category.slug, empty),
            drift=_drift_state(watches.get(category.pk), category, policy),
            check=audit_certification(
                per_since.get(category.slug, empty).precision,
                target=design.target if design else None,
                delta=policy.delta,
                min_support=policy.min_support,
            ),
        )
        for category in Category.objects.filter(is_active=True)
    ]
    return LiveReport(since, window_from, categories, overall_since, overall_window)


def _fmt(span: Span) -> str:
    p = span.precision
    if p.precision is None:
        return "—"
    return f"{p.precision:.1%} [{p.lower:.1%}, {p.upper:.1%}] n={p.audited}"


def live_table(report: LiveReport) -> list[str]:
    """The live figures as text lines, for `manage.py policy`."""
    since = f"{report.since:%Y-%m-%d %H:%M}" if report.since else "the start"
    lines = [
        f"live precision of auto-actions from blind audits (95% exact interval; since {since} "
        f"and over {settings.TRIAGE_LIVE_WINDOW_DAYS} days):",
        f"{'category':<16}{'since change':<34}{'window':<34}{'automated':>10}{'audit':>8}"
        f"  {'on audits':<13}drift",
    ]
    rows = [
        (c.slug, c.since_change, c.window, c.audit_rate, c.drift, c.check)
        for c in report.categories
    ]
    for slug, since_change, window, rate, drift, check in rows:
        verified = {True: "verified", False: "NOT verified", None: "—"}[check["verified"]]
        automated = since_change.automation.rate
        if drift["state"] == "suspended":
            watch = f"SUSPENDED: {drift['suspension'].get('reason', '')}"
        elif drift["state"] == "off":
            watch = "off (no target)"
        else:
            design = drift["design"]
            watch = f"watching ({drift['statistic']:.2f} of {design['threshold']:.2f})"
        lines.append(
            f"{slug:<16}{_fmt(since_change):<34}{_fmt(window):<34}"
            f"{'—' if automated is None else f'{automated:.1%}':>10}{rate:>8.1%}"
            f"  {verified:<13}{watch}"
        )
    overall = report.overall_since_change
    lines.append(
        f"{'overall':<16}{_fmt(overall):<34}{_fmt(report.overall_window):<34}"
        f"{'—' if overall.automation.rate is None else f'{overall.automation.rate:.1%}':>10}"
    )
    return lines
