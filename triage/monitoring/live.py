"""Live precision, automation and drift state per category: the verified promise.

Figures come from completed audits (AuditSample verdicts), weighted by each
audit's inverse probability (triage.monitoring.precision), over two spans:
since the last change of the category's rule in force (its drift watch's segment,
triage.monitoring.segments: the current promise), and over a rolling window
(TRIAGE_LIVE_WINDOW_DAYS). A quarantined analyst's verdicts are held out of both.

A category is in alarm when its audited interval since the change lies wholly below its
target, or its drift statistic has passed half its threshold: the cockpit, /api/metrics
and Prometheus show the same state.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from triage.models import Category, RoutingPolicy
from triage.monitoring.audits import audit_rates
from triage.monitoring.models import AuditSample, CategoryWatch
from triage.monitoring.precision import PrecisionEstimate, anytime_lower, weighted_precision
from triage.monitoring.segments import last_change_at
from triage.monitoring.tallies import prediction_counts
from triage.monitoring.watch import design_for, follow_rules

__all__ = ["last_change_at", "live_report", "live_table"]


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
    since: datetime | None = None
    previous: dict[str, Any] | None = None  # the last segment's figures

    @property
    def alarm(self) -> dict[str, Any]:
        return alarm_state(self.since_change.precision, target=self.target, drift=self.drift)

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "audit_rate": round(self.audit_rate, 4),
            "since": self.since.isoformat() if self.since else None,
            "since_change": self.since_change.as_json(),
            "before_change": self.previous or None,
            "window": self.window.as_json(),
            "drift": self.drift,
            "audit_certification": self.check,
            "alarm": self.alarm,
        }


def alarm_state(
    estimate: PrecisionEstimate, *, target: float | None, drift: dict[str, Any]
) -> dict[str, Any]:
    """Whether the admin must look now, and why, with the numbers.

    Two signals, either enough: the exact 95% interval of live precision since the change
    lies wholly below the target (a collapse the watch may need a few more verdicts for),
    or the drift statistic has passed half its threshold (suspension is getting near)."""
    reasons = []
    if target is not None and estimate.precision is not None and estimate.upper < target:
        reasons.append(
            f"audited at {estimate.precision:.1%} (95% interval {estimate.lower:.1%}–"
            f"{estimate.upper:.1%}, n = {estimate.audited}), wholly below the "
            f"{target:.1%} target"
        )
    design = drift.get("design")
    fraction = drift["statistic"] / design["threshold"] if design else 0.0
    if design and fraction >= 0.5:
        reasons.append(
            f"drift statistic {drift['statistic']:.2f} of {design['threshold']:.2f} "
            f"({fraction:.0%} of the way to suspension)"
        )
    if drift["state"] == "suspended":
        reasons.append("suspended: every item goes to review")
    return {
        "on": bool(reasons),
        "reasons": reasons,
        "below_target": target is not None
        and estimate.precision is not None
        and estimate.upper < target,
        "statistic_fraction": round(min(fraction, 1.0), 4),
    }


def audit_certification(
    estimate: PrecisionEstimate, *, target: float | None, delta: float, min_support: int
) -> dict[str, Any]:
    """The live threshold certified on the audits alone: a random sample of the auto-actions
    the rule in force actually takes, weighted by each audit's sampling probability.

    Certification rests on labelled history; audits since the last change of the rule
    are the one unbiased sample of what it automates. With at least min_support of them,
    the anytime-valid lower bound at 1 − δ (precision.anytime_lower: it is read after
    every verdict) must reach the target for the threshold to count as certified on
    audits. Shown beside the evidence's certified bound; routing still follows the
    evidence (a threshold the audits cannot vouch for is what the drift watch is for).
    """
    lower = anytime_lower(estimate, delta=delta)
    enough = estimate.audited >= min_support
    verified = None if target is None or not enough else lower >= target
    return {
        "audited": estimate.audited,
        "min_support": min_support,
        "delta": delta,
        "lower_bound": round(lower, 4),
        "method": "anytime-valid mixture bound (Robbins) at the effective n",
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

    @property
    def alarms(self) -> list[str]:
        return [c.slug for c in self.categories if c.alarm["on"]]

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
            "alarms": self.alarms,
        }


def _spans(
    start: datetime | None, *, starts: dict[str, datetime] | None = None
) -> tuple[dict[str, Span], Span]:
    """Per category and overall, from `start`, or from each category's own start."""
    starts = starts or {}
    earliest = min([start, *starts.values()], key=lambda t: t.timestamp() if t else 0)
    samples = AuditSample.objects.filter(audited_at__isnull=False, held=False)
    if earliest is not None:
        samples = samples.filter(sampled_at__gte=earliest)

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
    # From the tallies, one read per distinct start: each category from its own start,
    # the others from the common one.
    for begin in {start, *starts.values()}:
        for (slug, route), n in prediction_counts(begin).items():
            if n and starts.get(slug, start) == begin:
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
        "method": "two bernoulli cusums (2x and 6x the error rate), one e-detector",
        "statistic": round(watch.statistic, 4) if watch else 0.0,
        "audited": watch.outcomes if watch else 0,
        "watch_from": watch.watch_from.isoformat() if watch else None,
        "fraction": round(min(1.0, watch.statistic / design.threshold), 4)
        if watch and design
        else 0.0,
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
    follow_rules(now=now)
    policy = RoutingPolicy.current()
    since = last_change_at()
    window_from = now - timedelta(days=settings.TRIAGE_LIVE_WINDOW_DAYS)
    watches = {w.category_id: w for w in CategoryWatch.objects.select_related("category")}
    # Each category's "since the change" is its watch's segment: the rule in force.
    starts = {w.category.slug: w.watch_from for w in watches.values()}
    per_since, overall_since = _spans(since, starts=starts)
    per_window, overall_window = _spans(window_from)
    rates = audit_rates(policy=policy, now=now)
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
            since=starts.get(category.slug, since),
            previous=(w.previous or None) if (w := watches.get(category.pk)) else None,
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
        f"  {'on audits (anytime bound)':<26}drift",
    ]
    rows = [
        (c.slug, c.since_change, c.window, c.audit_rate, c.drift, c.check)
        for c in report.categories
    ]
    for slug, since_change, window, rate, drift, check in rows:
        verified = {True: "certified", False: "NOT certified", None: "—"}[check["verified"]]
        if check["audited"]:
            verified = f"≥{check['lower_bound']:.1%} {verified}"
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
            f"  {verified:<26}{watch}"
        )
    overall = report.overall_since_change
    lines.append(
        f"{'overall':<16}{_fmt(overall):<34}{_fmt(report.overall_window):<34}"
        f"{'—' if overall.automation.rate is None else f'{overall.automation.rate:.1%}':>10}"
    )
    return lines
