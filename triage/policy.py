"""From the admin's settings and the champion's held-out predictions to routing rules.

A raw threshold is used as it is. A target precision becomes, per category,
the lowest threshold at which the 95% lower confidence bound of precision on
the champion's held-out predictions reaches the target (triage.thresholds).
The held-out predictions are stored with each model version, so thresholds
follow the model: a new champion gets thresholds derived from its own
predictions, and changing a target re-derives them at once.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import routing
from .models import Category, ModelVersion, RoutingPolicy
from .thresholds import derive_threshold

CONFIDENCE_LEVEL = 0.95


@dataclass(frozen=True)
class HoldoutPredictions:
    """A model's calibrated predictions on the held-out examples.

    truth is -1 where the true category is one the model cannot predict.
    """

    labels: tuple[str, ...]
    predicted: np.ndarray
    confidence: np.ndarray
    truth: np.ndarray

    @classmethod
    def from_scores(
        cls, labels: Sequence[str], probs: np.ndarray, true_labels: Sequence[str]
    ) -> "HoldoutPredictions":
        index = {label: i for i, label in enumerate(labels)}
        return cls(
            labels=tuple(labels),
            predicted=probs.argmax(axis=1),
            confidence=probs.max(axis=1),
            truth=np.array([index.get(t, -1) for t in true_labels], dtype=int),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "predicted": self.predicted.tolist(),
            "confidence": [round(float(c), 6) for c in self.confidence],
            "truth": self.truth.tolist(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "HoldoutPredictions | None":
        if not data.get("labels"):
            return None
        return cls(
            labels=tuple(data["labels"]),
            predicted=np.array(data["predicted"], dtype=int),
            confidence=np.array(data["confidence"], dtype=float),
            truth=np.array(data["truth"], dtype=int),
        )

    def for_category(self, slug: str) -> tuple[np.ndarray, np.ndarray]:
        """Confidences of predictions of this category, and whether each was right."""
        if slug not in self.labels:
            return np.zeros(0), np.zeros(0, dtype=bool)
        k = self.labels.index(slug)
        chosen = self.predicted == k
        return self.confidence[chosen], self.truth[chosen] == k


@dataclass(frozen=True)
class RuleReport:
    """A category's rule, with what it would have done on the held-out set."""

    slug: str
    rule: routing.Rule
    coverage: float | None  # share of this category's held-out predictions automated
    precision: float | None  # their precision


def category_rule(
    slug: str,
    *,
    target: float | None,
    threshold: float,
    holdout: HoldoutPredictions | None,
    min_support: int,
) -> RuleReport:
    confidences, correct = (
        holdout.for_category(slug) if holdout else (np.zeros(0), np.zeros(0, dtype=bool))
    )
    if target is None:
        chosen = confidences >= threshold
        return RuleReport(
            slug,
            routing.Rule(threshold, routing.Mode.THRESHOLD),
            coverage=float(chosen.mean()) if len(chosen) else None,
            precision=float(correct[chosen].mean()) if chosen.any() else None,
        )
    if holdout is None:
        note = "no held-out predictions for this model: cannot derive a threshold"
        rule = routing.Rule(None, routing.Mode.TARGET_PRECISION, target, note=note)
        return RuleReport(slug, rule, coverage=None, precision=None)
    result = derive_threshold(
        confidences,
        correct,
        target_precision=target,
        confidence_level=CONFIDENCE_LEVEL,
        min_support=min_support,
    )
    rule = routing.Rule(
        result.threshold,
        routing.Mode.TARGET_PRECISION,
        target,
        lower_bound=result.lower_bound,
        note=result.reason,
    )
    return RuleReport(slug, rule, coverage=result.coverage, precision=result.precision)


def rule_for_category(
    category: Category, *, policy: RoutingPolicy, holdout: HoldoutPredictions | None
) -> RuleReport:
    """The first setting that is set decides: category target, category threshold,
    global target, global threshold."""
    if category.target_precision is not None:
        target = category.target_precision
    elif category.threshold is not None:
        target = None
    else:
        target = policy.target_precision
    return category_rule(
        category.slug,
        target=target,
        threshold=category.threshold
        if category.threshold is not None
        else policy.default_threshold,
        holdout=holdout,
        min_support=policy.min_support,
    )


def rule_reports(version: ModelVersion | None) -> list[RuleReport]:
    """Every active category's rule under the current policy and this model version."""
    policy = RoutingPolicy.current()
    holdout = HoldoutPredictions.from_json(version.holdout) if version else None
    return [
        rule_for_category(category, policy=policy, holdout=holdout)
        for category in Category.objects.filter(is_active=True)
    ]


def routing_policy(version: ModelVersion | None) -> routing.Policy:
    """The pure routing policy for items scored by this version."""
    policy = RoutingPolicy.current()
    return routing.Policy(
        default=routing.Rule(policy.default_threshold),
        rules={report.slug: report.rule for report in rule_reports(version)},
        audit_rate=policy.audit_rate,
    )


def thresholds_snapshot(version: ModelVersion) -> dict[str, Any]:
    """The rules derived for a version, as stored on it for the record."""
    return {
        r.slug: {
            "mode": r.rule.mode.value,
            "target": r.rule.target,
            "threshold": r.rule.threshold,
            "lower_bound": r.rule.lower_bound,
            "coverage": r.coverage,
            "precision": r.precision,
            "note": r.rule.note,
        }
        for r in rule_reports(version)
    }


@dataclass(frozen=True)
class Automation:
    """What a target precision would automate on held-out predictions."""

    target: float
    coverage: float  # share of all held-out items automated
    precision: float | None  # precision of those automated items
    per_category: dict[str, RuleReport]


def automation_at(
    holdout: HoldoutPredictions, target: float, *, min_support: int = 30
) -> Automation:
    reports = {
        slug: category_rule(
            slug, target=target, threshold=1.0, holdout=holdout, min_support=min_support
        )
        for slug in holdout.labels
    }
    chosen = np.zeros(len(holdout.confidence), dtype=bool)
    for k, slug in enumerate(holdout.labels):
        threshold = reports[slug].rule.threshold
        if threshold is not None:
            chosen |= (holdout.predicted == k) & (holdout.confidence >= threshold)
    correct = holdout.predicted == holdout.truth
    return Automation(
        target=target,
        coverage=float(chosen.mean()) if len(chosen) else 0.0,
        precision=float(correct[chosen].mean()) if chosen.any() else None,
        per_category=reports,
    )
