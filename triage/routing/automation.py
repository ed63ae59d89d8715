"""What a set of rules would automate on evidence: the share of items and its precision.

Reading the trade-off (the cockpit, the gate's comparison, evaluation), not deciding: the
rules themselves come from triage.routing.derive.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from triage.models import RoutingPolicy
from triage.routing.certify import DEFAULT_DELTA
from triage.routing.derive import RuleReport, Settings, derive_rules, reports_for
from triage.routing.evidence import HoldoutPredictions

Mode = RoutingPolicy.Certification


@dataclass(frozen=True)
class Automation:
    """What a rule set would automate on evidence."""

    target: float | None
    coverage: float  # share of all evidence items automated
    precision: float | None  # precision of those automated items
    per_category: dict[str, RuleReport]


def automation_of(holdout: HoldoutPredictions, reports: Sequence[RuleReport]) -> Automation:
    """Share of the evidence these rules automate, and its precision."""
    chosen = np.zeros(len(holdout.confidence), dtype=bool)
    for report in reports:
        threshold = report.rule.threshold
        if threshold is not None and report.slug in holdout.labels:
            k = holdout.labels.index(report.slug)
            chosen |= (holdout.predicted == k) & (holdout.confidence >= threshold)
    correct = holdout.predicted == holdout.truth
    targets = {r.rule.target for r in reports}
    return Automation(
        target=targets.pop() if len(targets) == 1 else None,
        coverage=float(chosen.mean()) if len(chosen) else 0.0,
        precision=float(correct[chosen].mean()) if chosen.any() else None,
        per_category={r.slug: r for r in reports},
    )


def automation_at(
    holdout: HoldoutPredictions,
    target: float,
    *,
    min_support: int = 30,
    delta: float = DEFAULT_DELTA,
    mode: str = Mode.PER_CATEGORY,
) -> Automation:
    """What one target for every category would automate on this evidence."""
    settings = Settings(
        target=target, default_threshold=1.0, min_support=min_support, delta=delta, mode=mode
    )
    reports = derive_rules(
        dict.fromkeys(holdout.labels, target),
        thresholds=dict.fromkeys(holdout.labels, 1.0),
        holdout=holdout,
        settings=settings,
    )
    return automation_of(holdout, reports)


def automation_now(holdout: HoldoutPredictions | None) -> float | None:
    """Share of this evidence the current policy would automate (None: no evidence)."""
    if holdout is None or not len(holdout):
        return None
    return automation_of(holdout, reports_for(holdout)).coverage
