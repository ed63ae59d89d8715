"""The routing policy: a pure function from (prediction, policy) to a decision.

No database, no model: everything it needs is passed in, so the rules can be
read here in one place and tested with plain tables.
"""

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import re2

from triage.stats import hash_draw


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
    # An admin's rule decided before the model (route to its category, or force review).
    RULE = "rule"
    # The model's label is a category an admin switched off: a person decides.
    CATEGORY_INACTIVE = "category_inactive"
    # Scoring failed (missing or tampered artifact, encoder error, unmapped label).
    MODEL_UNAVAILABLE = "model_unavailable"
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


def resolve_setting(
    *,
    target: float | None,
    threshold: float | None,
    global_target: float | None,
    global_threshold: float,
) -> tuple[float | None, float]:
    """(target, raw threshold) for a category: the first that is set decides, in this
    order: the category's target, its raw threshold, the global target, the global threshold.

    A target None means the raw threshold routes; with a target, the threshold is only
    carried along (the category's own, else the global one).
    """
    fallback = threshold if threshold is not None else global_threshold
    if target is not None:
        return target, fallback
    if threshold is not None:
        return None, threshold
    return global_target, global_threshold


# RE2 runs in time linear in the text whatever the pattern, so `(a+)+$` on a long text
# cannot hang classification; max_mem caps what one compiled pattern may hold.
RE2_MAX_MEM = 8 << 20


class RuleSyntaxError(ValueError):
    pass


@functools.lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Any:
    """A compiled RE2 pattern (case-insensitive); RuleSyntaxError says why it is invalid."""
    options = re2.Options()
    options.case_sensitive = False
    options.max_mem = RE2_MAX_MEM
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        message = exc.args[0] if exc.args else exc
        if isinstance(message, bytes):
            message = message.decode(errors="replace")
        raise RuleSyntaxError(str(message)) from None


@dataclass(frozen=True)
class ItemRule:
    """An admin's rule, applied before the model: the first that matches decides.

    Exactly one condition is set: keywords (any, case-insensitive substring), a
    regular expression (RE2 syntax, searched case-insensitively), or a metadata
    field whose value equals one of metadata_values (JSON equality: "1" is not 1).
    route AUTO sends the item to `category`; REVIEW forces review.
    """

    name: str
    route: Route
    category: str | None = None
    keywords: tuple[str, ...] = ()
    pattern: str = ""
    metadata_field: str = ""
    metadata_values: tuple[object, ...] = ()

    def matches(self, text: str, metadata: Mapping[str, object]) -> bool:
        if self.keywords:
            folded = text.casefold()
            return any(k.casefold() in folded for k in self.keywords if k)
        if self.pattern:
            return compile_pattern(self.pattern).search(text) is not None
        if self.metadata_field:
            if self.metadata_field not in metadata:
                return False
            value = metadata[self.metadata_field]
            return any(json_equal(value, v) for v in self.metadata_values)
        return False


def json_equal(a: object, b: object) -> bool:
    """Equality as JSON sees it: 1 == 1.0, but true is not 1 and "1" is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


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
    # Admins' rules, in order, applied before the model.
    item_rules: tuple[ItemRule, ...] = ()
    # Categories switched off: never auto-routed, by the model or by a rule.
    inactive: frozenset[str] = frozenset()

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
    # Where an AUTO decision sends the item; the rule that decided, if one did.
    category: str | None = None
    rule: str | None = None


def audit_draw(external_id: str, *, key: bytes) -> float:
    """A stable number in [0, 1) per item, so a re-run makes the same audit choice.

    Keyed with a server secret (triage.routing.draws.audit_key): an unkeyed hash of the
    id let whoever chooses external ids choose which items are audited (or never are).
    Salted too, so it is independent of the item's train/holdout split.
    """
    if not key:
        raise ValueError("the audit draw needs a non-empty key")
    return hash_draw(external_id, salt="audit:", secret=key)


def first_matching_rule(
    rules: tuple[ItemRule, ...], text: str, metadata: Mapping[str, object]
) -> ItemRule | None:
    return next((r for r in rules if r.matches(text, metadata)), None)


def decide_item(
    *,
    text: str,
    metadata: Mapping[str, object],
    scored: ScoredItem | None,
    policy: Policy,
    draw: float,
) -> Decision:
    """Route one item: the admins' rules first, then the model.

    scored None means the model could not score the item: unless a rule decides,
    a person does (reason model_unavailable).
    """
    matched = first_matching_rule(policy.item_rules, text, metadata)
    if matched is not None:
        if matched.route is Route.REVIEW:
            return Decision(Route.REVIEW, Reason.RULE, threshold=None, rule=matched.name)
        if matched.category is None or matched.category in policy.inactive:
            return Decision(
                Route.REVIEW, Reason.CATEGORY_INACTIVE, threshold=None, rule=matched.name
            )
        return Decision(
            Route.AUTO, Reason.RULE, threshold=None, category=matched.category, rule=matched.name
        )
    if scored is None:
        return Decision(Route.REVIEW, Reason.MODEL_UNAVAILABLE, threshold=None)
    return decide(scored, policy, draw=draw)


def decide(scored: ScoredItem, policy: Policy, *, draw: float) -> Decision:
    """Route one item by the model's score alone. `draw` is the item's audit_draw()."""
    if scored.cold_start:
        return Decision(Route.REVIEW, Reason.COLD_START, threshold=None)
    if scored.label in policy.inactive:
        return Decision(Route.REVIEW, Reason.CATEGORY_INACTIVE, threshold=None)
    rule = policy.rule_for(scored.label)

    def decision(
        route: Route, reason: Reason, audit: bool = False, probability: float | None = None
    ) -> Decision:
        category = scored.label if route is Route.AUTO else None
        return Decision(
            route,
            reason,
            rule.threshold,
            audit,
            rule.mode,
            rule.lower_bound,
            probability,
            category=category,
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
