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


@dataclass(frozen=True)
class ScoredItem:
    """The model's top label for one item, with its calibrated confidence."""

    label: str
    confidence: float
    # Cold start: no trained model yet, the label comes from zero-shot similarity.
    cold_start: bool = False


@dataclass(frozen=True)
class Policy:
    default_threshold: float
    category_thresholds: Mapping[str, float] = field(default_factory=dict)
    audit_rate: float = 0.0

    def threshold_for(self, label: str) -> float:
        return self.category_thresholds.get(label, self.default_threshold)


@dataclass(frozen=True)
class Decision:
    """Where an item goes and why.

    route AUTO with audit=True means: act on the model's label now, and also
    ask a person, so the precision of automatic actions is measured for real.
    """

    route: Route
    reason: Reason
    threshold: float | None
    audit: bool = False


def audit_draw(external_id: str) -> float:
    """A stable number in [0, 1) per item, so a re-run makes the same audit choice."""
    digest = hashlib.sha256(b"audit:" + external_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def decide(scored: ScoredItem, policy: Policy, *, draw: float) -> Decision:
    """Route one item. `draw` is the item's audit_draw()."""
    if scored.cold_start:
        return Decision(Route.REVIEW, Reason.COLD_START, threshold=None)
    threshold = policy.threshold_for(scored.label)
    if scored.confidence < threshold:
        return Decision(Route.REVIEW, Reason.BELOW_THRESHOLD, threshold)
    if draw < policy.audit_rate:
        return Decision(Route.AUTO, Reason.AUDIT_SAMPLE, threshold, audit=True)
    return Decision(Route.AUTO, Reason.ABOVE_THRESHOLD, threshold)
