"""What a category's rule would do, before it is saved: the what-if preview.

Every figure comes from the code routing itself uses: triage.routing.derive.derive_rules
certifies (or applies) the rules of every active category exactly as they will
serve, with the tried setting in place of the saved one, so pooling and a
split delta are accounted for; triage.stats gives the bound for a raw threshold
(the bound certification uses) and triage.routing.certify the risk-coverage curve.
So the preview and the saved rule cannot disagree (tests/cockpit/test_preview.py
holds them equal).
"""

from dataclasses import dataclass

from triage.models import Category, ModelVersion, RoutingPolicy
from triage.routing import certify
from triage.routing import policy as routing
from triage.routing.derive import (
    RuleReport,
    Settings,
    category_settings,
    derive_rules,
    derived,
)
from triage.routing.frontier import why_raw_beats_target
from triage.stats import clopper_pearson_lower


@dataclass(frozen=True)
class Setting:
    """What the admin is trying: a target precision, a raw threshold (target None),
    or the global policy (inherit)."""

    target: float | None
    threshold: float | None
    inherit: bool = False

    @classmethod
    def of(cls, category: Category) -> "Setting":
        """The category's own setting as saved."""
        if category.target_precision is not None:
            return cls(category.target_precision, None)
        if category.threshold is not None:
            return cls(None, category.threshold)
        return cls(None, None, inherit=True)

    def resolved(self, policy: RoutingPolicy) -> tuple[float | None, float]:
        """(target, raw threshold) as routing resolves them (routing.resolve_setting)."""
        return routing.resolve_setting(
            target=None if self.inherit else self.target,
            threshold=None if self.inherit else self.threshold,
            global_target=policy.target_precision,
            global_threshold=policy.default_threshold,
        )


@dataclass(frozen=True)
class Preview:
    slug: str
    setting: Setting
    target: float | None  # the resolved target (None: a raw threshold)
    report: RuleReport
    certified_bound: float | None  # lower confidence bound on the automated precision
    delta: float
    curve: list[certify.CoveragePoint]
    has_model: bool
    # When a raw threshold's one-look bound clears a target that failed: why, in a sentence.
    why_raw: str = ""

    @property
    def scope_text(self) -> str:
        """Which scope the target is certified in, and at what share of delta."""
        report = self.report
        if self.target is None or not self.has_model or report.delta is None:
            return ""
        level = f"delta {report.delta:.3g}"
        if report.scope == "pooled":
            others = [s for s in report.pool if s != self.slug]
            return (
                f"Certified pooled with {', '.join(others)} (thin categories sharing this "
                f"target), at {level}: the promise covers their automatic actions together."
            )
        return f"Certified on its own evidence, at {level}."

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
    def confidence(self) -> float:
        return 1 - self.delta

    @property
    def evidence(self) -> int:
        return self.report.support

    @property
    def support(self) -> int:
        return self.report.selected

    @property
    def certifiable(self) -> bool:
        return self.report.rule.threshold is not None

    @property
    def needs(self) -> str:
        """What evidence would make an uncertifiable target certifiable."""
        if self.certifiable or self.target is None or not self.has_model:
            return ""
        if self.report.needed is not None:
            return (
                f"What would certify it: about {self.report.needed} correct predictions of "
                "this category above the threshold, as accurate as the most confident ones "
                "now. Each review of this category adds evidence at the next retrain; a "
                "lower target needs less."
            )
        return (
            "More evidence like this will not certify it: it needs a more accurate model "
            "or a lower target."
        )

    @property
    def reason(self) -> str:
        rule = self.report.rule
        if not self.has_model:
            return "no model yet: every item goes to review (cold start)"
        if self.target is not None:
            return rule.note
        return (
            "a raw threshold promises no precision: on the evidence it automates "
            f"{_pct(self.coverage)} with {_pct(self.expected_precision)} observed precision, "
            f"at least {_pct(self.certified_bound)} with {self.confidence:.0%} confidence"
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
    # The champion's evidence as cached with its derivation: not read again per preview.
    holdout = derived(champion).evidence if champion else None
    chosen = {
        c.slug: category_settings(c, policy)
        for c in Category.objects.filter(is_active=True).exclude(pk=category.pk)
    }
    chosen[category.slug] = setting.resolved(policy)
    reports = derive_rules(
        {slug: target for slug, (target, _) in chosen.items()},
        thresholds={slug: threshold for slug, (_, threshold) in chosen.items()},
        holdout=holdout,
        settings=Settings.of(policy),
    )
    report = next(r for r in reports if r.slug == category.slug)
    target = chosen[category.slug][0]
    bound = report.rule.lower_bound
    curve: list[certify.CoveragePoint] = []
    why_raw = ""
    if holdout is not None:
        confidences, correct = holdout.for_category(category.slug)
        if target is None and report.selected:
            chosen_rows = confidences >= report.rule.threshold
            bound = clopper_pearson_lower(
                int(correct[chosen_rows].sum()), int(chosen_rows.sum()), policy.delta
            )
        curve = certify.risk_coverage_curve(
            confidences, correct, delta=policy.delta, points=curve_points
        )
        why_raw = why_raw_beats_target(
            confidences, correct, report, delta=policy.delta, min_support=policy.min_support
        )
    return Preview(
        slug=category.slug,
        setting=setting,
        target=target,
        report=report,
        certified_bound=bound,
        delta=policy.delta,
        curve=curve,
        has_model=champion is not None,
        why_raw=why_raw,
    )
