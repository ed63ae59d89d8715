"""Segments: the span of audit verdicts gathered under the rule in force.

A verdict says whether an auto-action was right under the rule that took it. Verdicts
gathered under one rule say nothing about another: a category at 93% live precision
whose target is raised from 0.90 to 0.97 must not be judged (and suspended) on the
verdicts of the 0.90 rule. So the drift watch's statistic and the live precision
"since the last change" count only the current segment, and a segment restarts on any
change of:

- the champion (the model whose confidence the threshold is on),
- the target precision, or the raw threshold, routing resolves for the category,
- the derived threshold itself (a pooled scope moves it when another category changes),
- the certification scope (the category alone, or pooled with others),
- the category's activation.

All of these are read in one place, ``rule_fingerprint``: a change of any is a change of
fingerprint, and the watch compares the fingerprint it recorded with the one in force
each time it looks. A verdict belongs to a segment by when its item was *sampled* (the
auto-action taken), not when it was audited: an audit finished after the change still
judges the old rule.
"""

import hashlib
import json
from datetime import datetime
from typing import Any

from django.db.models import Max

from triage.models import AuditLog, Category, ModelVersion, RoutingPolicy
from triage.monitoring.models import AuditSample, CategoryWatch
from triage.monitoring.precision import weighted_precision
from triage.routing.derive import category_settings, rule_for_category

# Audit-log actions that change what an auto-action means: a new champion or a rule.
CHANGE_ACTIONS = ("promote", "rollback", "policy", "category")


def last_change_at() -> datetime | None:
    """When the last logged change of champion, policy or category happened."""
    logged = AuditLog.objects.filter(action__in=CHANGE_ACTIONS).aggregate(at=Max("at"))["at"]
    champion = ModelVersion.objects.champion()
    promoted = champion.promoted_at if champion else None
    return max((t for t in (logged, promoted) if t is not None), default=None)


def rule_fingerprint(
    *,
    champion_id: int | None,
    target: float | None,
    threshold: float | None,
    scope: str | None,
    active: bool,
) -> str:
    """The rule in force for a category, as one short string: equal iff nothing changed."""
    parts = {
        "champion": champion_id,
        "target": target,
        "threshold": threshold,
        "scope": scope,
        "active": active,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def fingerprint_for(
    category: Category, *, policy: RoutingPolicy, champion: ModelVersion | None
) -> str:
    """The fingerprint of the category's rule as routing applies it now (cached derivation)."""
    report = rule_for_category(category, version=champion)
    target, _ = category_settings(category, policy)
    return rule_fingerprint(
        champion_id=champion.pk if champion else None,
        target=target,
        threshold=report.rule.threshold,
        # The scope and, when pooled, its members: joining or leaving a pool is a change.
        scope=":".join([report.scope, *report.pool]) or None,
        active=category.is_active,
    )


def segment_samples(
    category_id: int,
    *,
    since: datetime,
    champion: ModelVersion | None,
    until: datetime | None = None,
) -> list[tuple[bool, float]]:
    """(right, audit probability) of each verdict of the segment that counts, in order.

    Held verdicts (a quarantined analyst's) do not count until an admin releases them."""
    samples = AuditSample.objects.filter(
        category_id=category_id, sampled_at__gte=since, correct__isnull=False, held=False
    )
    if champion is not None:
        samples = samples.filter(model_version=champion)
    if until is not None:
        samples = samples.filter(sampled_at__lt=until)
    return [
        (bool(c), p)
        for c, p in samples.order_by("audited_at", "id").values_list("correct", "probability")
    ]


def segment_figures(samples: list[tuple[bool, float]]) -> dict[str, Any]:
    """A segment's live precision, as the cockpit shows it beside the next one's."""
    estimate = weighted_precision([c for c, _ in samples], probabilities=[p for _, p in samples])
    return estimate.as_json()


def restart_segment(
    watch: CategoryWatch, *, at: datetime, fingerprint: str, why: str, champion: ModelVersion | None
) -> None:
    """Close the watch's segment (its figures kept as `previous`) and open one at `at`.

    The caller holds the watch's row lock and saves it."""
    closing = segment_samples(
        watch.category_id, since=watch.watch_from, champion=champion, until=at
    )
    if closing:
        watch.previous = segment_figures(closing) | {
            "from": watch.watch_from.isoformat(),
            "to": at.isoformat(),
            "why": why,
        }
    watch.watch_from = at
    watch.fingerprint = fingerprint
    watch.statistic = 0.0
    watch.outcomes = 0


def follow_rule(
    watch: CategoryWatch,
    category: Category,
    *,
    policy: RoutingPolicy,
    champion: ModelVersion | None,
    now: datetime,
) -> bool:
    """Restart the segment if the rule in force changed since the watch last looked;
    whether it did. The caller holds the row lock and saves the watch."""
    fingerprint = fingerprint_for(category, policy=policy, champion=champion)
    if watch.fingerprint == fingerprint:
        return False
    if not watch.fingerprint:
        # A watch from before fingerprints: adopt the rule in force, keep its segment.
        watch.fingerprint = fingerprint
        return True
    # When it changed: the latest record of a change after the segment began (the policy
    # row keeps its own time too); a change that left no trace at all restarts from now.
    records = [last_change_at(), policy.updated_at]
    changes = [t for t in records if t is not None and watch.watch_from < t <= now]
    at = max(changes, default=now)
    restart_segment(
        watch, at=at, fingerprint=fingerprint, why="the rule in force changed", champion=champion
    )
    return True
