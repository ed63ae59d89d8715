"""Deciding: the routing policy in force, applied to scored items. No writes.

Classification, the stuck sweep's last resort, redelivery and the cockpit's re-route all
decide here, with the same policy: the champion's derived rules, today's audit rates, the
drift watch's suspensions, the admins' item rules and the inactive categories.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from triage.models import Category, Item, ModelVersion, ReviewTask, RoutingPolicy
from triage.monitoring.audits import live_routing_policy
from triage.routing import policy as routing
from triage.routing.derive import routing_policy
from triage.routing.draws import audit_key
from triage.routing.rules import active_item_rules


def policy_in_force(
    champion: ModelVersion | None,
    categories: Mapping[str, Category],
    *,
    now: datetime,
    rules: routing.Policy | None = None,
) -> routing.Policy:
    """The routing policy as it applies at `now`: the champion's derived rules (or
    `rules`, derived otherwise: triage.classify.waiting), with today's audit rates,
    suspensions, item rules and inactive categories."""
    base = rules if rules is not None else routing_policy(champion)
    return replace(
        live_routing_policy(base, policy=RoutingPolicy.current(), now=now),
        item_rules=active_item_rules(),
        inactive=frozenset(slug for slug, c in categories.items() if not c.is_active),
    )


@dataclass(frozen=True)
class Routing:
    """One item's decision, with what persisting it needs.

    `scored` None: the model could not score it (no prediction is written). `open_task`:
    the task the item already waits in (a re-route), which the decision closes or turns
    into an audit instead of opening another."""

    item: Item
    decision: routing.Decision
    scored: routing.ScoredItem | None = None
    top_scores: list[dict[str, Any]] = field(default_factory=list)
    open_task: ReviewTask | None = None


def decide(
    item: Item,
    *,
    scored: routing.ScoredItem | None,
    policy: routing.Policy,
    top_scores: list[dict[str, Any]] | None = None,
    open_task: ReviewTask | None = None,
) -> Routing:
    """The item's route: the admins' rules first, then the model (routing.decide_item)."""
    decision = routing.decide_item(
        text=item.text,
        metadata=item.metadata,
        scored=scored,
        policy=policy,
        draw=routing.audit_draw(item.external_id, key=audit_key()),
    )
    return Routing(item, decision, scored, top_scores or [], open_task)
