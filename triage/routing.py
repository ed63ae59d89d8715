"""The routing policy: a pure function from (prediction, policy) to a decision.

No database, no model: everything it needs is passed in, so the rules can be
read here in one place and tested with plain tables.
"""

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Route(StrEnum):
    AUTO = "auto"
    REVIEW = "review"


class Reason(StrEnum):
    ABOVE_THRESHOLD = "above_threshold"
    BELOW_THRESHOLD = "below_threshold"
    AUDIT_SAMPLE = "audit_sample"
    COLD_START = "cold_start"
    # A target precision the category cannot reach on held-out data: never auto-act.
    TARGET_UNREACHABLE = "target_unreachable"
    # The drift watch found live precision below target: a person decides until a new
    # model is promoted or an admin resumes the category.
    SUSPENDED = "suspended"


class Mode(StrEnum):
    THRESHOLD = "threshold"
    TARGET_PRECISION = "target_precision"


@dataclass(frozen=True)
class ScoredItem:
    """The model's top label for one item, with its calibrated confidence."""

    label: str
    confidence: float
    # Cold start: no trained model yet, the label comes from zero-shot similarity.
    cold_start: bool = False


@dataclass(frozen=True)
class Rule:
    """How one category is routed.

    threshold None means the category never auto-acts (its target precision
    cannot be shown on held-out data); note says why, for the admin.
    """

    threshold: float | None
    mode: Mode = Mode.THRESHOLD
    target: float | None = None
    lower_bound: float | None = None
    note: str = ""


@dataclass(frozen=True)
class Policy:
    """Everything routing needs, already computed from the database.

    audit_rates holds per-category audit probabilities (stratified sampling with a
    floor, see triage.monitoring.audits); a category without one uses audit_rate.
    suspended holds the categories the drift watch has stopped from auto-acting.
    """

    default: Rule
    rules: Mapping[str, Rule] = field(default_factory=dict)
    audit_rate: float = 0.0
    audit_rates: Mapping[str, float] = field(default_factory=dict)
    suspended: frozenset[str] = frozenset()

    def rule_for(self, label: str) -> Rule:
        return self.rules.get(label, self.default)

    def audit_rate_for(self, label: str) -> float:
        return self.audit_rates.get(label, self.audit_rate)


@dataclass(frozen=True)
class Decision:
    """Where an item goes and why.

    route AUTO with audit=True means: act on the model's label now, and also
    ask a person, so the precision of automatic actions is measured for real.
    audit_probability is the chance this item had of being audited (its
    category's audit rate), kept so live precision can weight by its inverse.
    """

    route: Route
    reason: Reason
    threshold: float | None
    audit: bool = False
    mode: Mode | None = None
    lower_bound: float | None = None
    audit_probability: float | None = None


def audit_draw(external_id: str) -> float:
    """A stable number in [0, 1) per item, so a re-run makes the same audit choice."""
    digest = hashlib.sha256(b"audit:" + external_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def decide(scored: ScoredItem, policy: Policy, *, draw: float) -> Decision:
    """Route one item. `draw` is the item's audit_draw()."""
    if scored.cold_start:
        return Decision(Route.REVIEW, Reason.COLD_START, threshold=None)
    rule = policy.rule_for(scored.label)

    def decision(
        route: Route, reason: Reason, audit: bool = False, probability: float | None = None
    ) -> Decision:
        return Decision(
            route, reason, rule.threshold, audit, rule.mode, rule.lower_bound, probability
        )

    if scored.label in policy.suspended:
        return decision(Route.REVIEW, Reason.SUSPENDED)
    if rule.threshold is None:
        return decision(Route.REVIEW, Reason.TARGET_UNREACHABLE)
    if scored.confidence < rule.threshold:
        return decision(Route.REVIEW, Reason.BELOW_THRESHOLD)
    rate = policy.audit_rate_for(scored.label)
    if draw < rate:
        return decision(Route.AUTO, Reason.AUDIT_SAMPLE, audit=True, probability=rate)
    return decision(Route.AUTO, Reason.ABOVE_THRESHOLD)
