"""What a category's rule would do, before it is saved: the what-if preview.

Every figure comes from the code routing itself uses: triage.policy.category_rule
derives (or applies) the threshold exactly as it will serve, and triage.thresholds
gives the bound and the risk-coverage curve. So the preview and the saved rule
cannot disagree (tests/cockpit/test_preview.py holds them equal).
"""

from dataclasses import dataclass

from .. import thresholds
from ..models import Category, ModelVersion, RoutingPolicy
from ..policy import CONFIDENCE_LEVEL, HoldoutPredictions, RuleReport, category_rule


@dataclass(frozen=True)
class Setting:
    """What the admin is trying: a target precision, or a raw threshold (target None)."""

    target: float | None
    threshold: float | None

    @classmethod
    def of(cls, category: Category, policy: RoutingPolicy) -> "Setting":
        """The category's setting as saved, resolved the way routing resolves it."""
        if category.target_precision is not None:
            return cls(category.target_precision, None)
        if category.threshold is not None:
            return cls(None, category.threshold)
        if policy.target_precision is not None:
            return cls(policy.target_precision, None)
        return cls(None, policy.default_threshold)


@dataclass(frozen=True)
class Preview:
    slug: str
    setting: Setting
    report: RuleReport
    evidence: int  # the champion's evidence items predicted as this category
    support: int  # of those, how many the rule would automate
    certified_bound: float | None  # lower confidence bound on their precision
    curve: list[thresholds.CoveragePoint]
    has_model: bool
    min_support: int

    @property
    def threshold(self) -> float | None:
        return self.report.rule.threshold

    @property
    def coverage(self) -> float | None:
        return self.report.coverage

    @property
    def expected_precision(self) -> float | None:
        return self.report.precision

    @property
    def certifiable(self) -> bool:
        return self.report.rule.threshold is not None

    @property
    def needs(self) -> str:
        """What evidence would make an uncertifiable target certifiable."""
        if self.certifiable or self.setting.target is None:
            return ""
        if self.evidence < self.min_support:
            return (
                f"Needs at least {self.min_support} held-out predictions of this category to "
                f"certify anything; has {self.evidence}. Reviews of this category add them."
            )
        return (
            f"On {self.evidence} held-out predictions no threshold reaches the target: more "
            "reviewed examples of this category (a tighter bound) or a more accurate model "
            "would make it certifiable, or choose a lower target."
        )

    @property
    def reason(self) -> str:
        rule = self.report.rule
        if not self.has_model:
            return "no model yet: every item goes to review (cold start)"
        if rule.target is not None:
            return rule.note
        return (
            "a raw threshold promises no precision: on the evidence it automates "
            f"{_pct(self.coverage)} with {_pct(self.expected_precision)} observed precision, "
            f"at least {_pct(self.certified_bound)} at {CONFIDENCE_LEVEL:.0%} confidence"
        )


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def preview(
    category: Category,
    setting: Setting,
    *,
    champion: ModelVersion | None,
    policy: RoutingPolicy,
    curve_points: int = 24,
) -> Preview:
    holdout = HoldoutPredictions.from_json(champion.holdout) if champion else None
    report = category_rule(
        category.slug,
        target=setting.target,
        threshold=setting.threshold if setting.threshold is not None else policy.default_threshold,
        holdout=holdout,
        min_support=policy.min_support,
    )
    if holdout is None:
        return Preview(
            category.slug,
            setting,
            report,
            0,
            0,
            None,
            [],
            has_model=champion is not None,
            min_support=policy.min_support,
        )
    confidences, correct = holdout.for_category(category.slug)
    threshold = report.rule.threshold
    chosen = confidences >= threshold if threshold is not None else confidences > 1.0
    support = int(chosen.sum())
    if report.rule.lower_bound is not None:
        bound: float | None = report.rule.lower_bound
    elif support:
        bound = thresholds.wilson_lower_bound(int(correct[chosen].sum()), support, CONFIDENCE_LEVEL)
    else:
        bound = None
    return Preview(
        slug=category.slug,
        setting=setting,
        report=report,
        evidence=len(confidences),
        support=support,
        certified_bound=bound,
        curve=thresholds.risk_coverage_curve(
            confidences, correct, confidence_level=CONFIDENCE_LEVEL, points=curve_points
        ),
        has_model=True,
        min_support=policy.min_support,
    )
