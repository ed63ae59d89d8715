"""The drift watch in production: check after each audit, suspend, resume.

After every audit verdict the category's statistic (triage.monitoring.drift) is
recomputed over the verdicts of its current segment: those gathered under the rule
in force (triage.monitoring.segments). On alarm the category is
suspended: routing sends all of its items to review (reason "suspended") until
a new champion is promoted or an admin resumes it with a reason. Every
suspension and resumption is written to the audit log.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from triage.actions import events
from triage.models import AuditLog, Category, ModelVersion, RoutingPolicy
from triage.monitoring.drift import WatchDesign, cusum_design, cusum_path
from triage.monitoring.models import CategoryWatch
from triage.monitoring.precision import weighted_precision
from triage.monitoring.segments import (
    fingerprint_for,
    follow_rule,
    last_change_at,
    restart_segment,
    segment_samples,
)
from triage.routing.derive import category_settings

logger = logging.getLogger(__name__)

DRIFT_ACTOR = "drift-watch"
# A category with no recorded change at all is watched over every verdict.
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class WatchError(Exception):
    """A request about the drift watch that cannot be carried out; the message says why."""

    def __init__(self, message: str, *, field: str) -> None:
        self.field = field
        super().__init__(message)


def design_for(category: Category, *, policy: RoutingPolicy) -> WatchDesign | None:
    """The watch against the precision this category promises, the target routing uses.

    No target (a raw threshold) or a target of 100% means nothing to watch against."""
    target, _ = category_settings(category, policy)
    return cusum_design(target) if target is not None and target < 1 else None


def _locked_watch(category: Category, now: datetime) -> CategoryWatch:
    if not CategoryWatch.objects.filter(category=category).exists():
        champion = ModelVersion.objects.champion()
        fingerprint = fingerprint_for(category, policy=RoutingPolicy.current(), champion=champion)
        CategoryWatch.objects.get_or_create(
            category=category, defaults={"watch_from": _start(now), "fingerprint": fingerprint}
        )
    return CategoryWatch.objects.select_for_update().get(category=category)


def follow_rules(*, now: datetime | None = None) -> None:
    """Restart the segment of every watch whose rule in force changed since it last looked.

    Cheap when nothing changed (the derivation is cached): read paths call it so the
    figures they show are the current segment's even before the next audit arrives."""
    now = now or timezone.now()
    policy, champion = RoutingPolicy.current(), ModelVersion.objects.champion()
    watches = CategoryWatch.objects.select_related("category")
    stale = [
        w.pk
        for w in watches
        if w.fingerprint != fingerprint_for(w.category, policy=policy, champion=champion)
    ]
    for pk in stale:
        with transaction.atomic():
            watch = CategoryWatch.objects.select_for_update().select_related("category").get(pk=pk)
            if follow_rule(watch, watch.category, policy=policy, champion=champion, now=now):
                watch.save()


def _start(now: datetime) -> datetime:
    # A category first watched mid-way counts the verdicts since the rule in force began:
    # the last change of champion, policy or category, as far as the records say.
    changed = last_change_at()
    return min(changed, now) if changed is not None else EPOCH


@dataclass(frozen=True)
class WatchCheck:
    watch: CategoryWatch
    design: WatchDesign | None
    newly_suspended: bool


def check_category(*, category: Category, now: datetime | None = None) -> WatchCheck:
    """Recompute the category's statistic over its segment; suspend it on alarm."""
    now = now or timezone.now()
    with transaction.atomic():
        watch = _locked_watch(category, now)
        category = watch.category  # as it is now: the rule in force is read from it
        policy, champion = RoutingPolicy.current(), ModelVersion.objects.champion()
        follow_rule(watch, category, policy=policy, champion=champion, now=now)
        design = design_for(category, policy=policy)
        verdicts = [
            c for c, _ in segment_samples(category.pk, since=watch.watch_from, champion=champion)
        ]
        path = cusum_path(verdicts, design=design) if design else []
        watch.statistic = path[-1] if path else 0.0
        watch.outcomes = len(verdicts)
        alarm = design is not None and watch.statistic >= design.threshold
        newly = alarm and watch.suspended_at is None
        if newly:
            assert design is not None
            wrong = verdicts.count(False)
            watch.suspended_at = now
            watch.suspension = {
                "reason": (
                    f"live precision below the {design.target:.1%} target: {wrong} wrong of "
                    f"{len(verdicts)} audited since {watch.watch_from:%Y-%m-%d %H:%M}"
                ),
                "statistic": round(watch.statistic, 4),
                "audited": len(verdicts),
                "wrong": wrong,
                **design.as_json(),
            }
        watch.save()
        if newly:
            AuditLog.record(
                actor=DRIFT_ACTOR,
                action="suspend",
                category=category.slug,
                **_state_change(suspended_before=None, suspended_after=now),
                **watch.suspension,
            )
            emit_policy_suspended(category=category, detail=watch.suspension, at=now)
            logger.warning("drift watch suspended %s: %s", category.slug, watch.suspension)
    return WatchCheck(watch=watch, design=design, newly_suspended=newly)


def emit_policy_suspended(*, category: Category, detail: dict[str, Any], at: datetime) -> None:
    """Emit `policy.suspended` through the outbox, in the suspension's transaction,
    so subscribers learn that the category's items now all wait for a person."""
    events.emit(
        events.EventType.POLICY_SUSPENDED,
        category=category,
        data={"category": category.slug, "suspended_at": at.isoformat(), **detail},
    )


def below_target(category: Category, watch: CategoryWatch) -> dict[str, Any] | None:
    """The segment's figures when its exact 95% interval lies wholly below the target."""
    target, _ = category_settings(category, RoutingPolicy.current())
    samples = segment_samples(
        category.pk, since=watch.watch_from, champion=ModelVersion.objects.champion()
    )
    estimate = weighted_precision([c for c, _ in samples], probabilities=[p for _, p in samples])
    if target is None or estimate.precision is None or estimate.upper >= target:
        return None
    return estimate.as_json() | {"target": target}


def resume_category(
    *,
    slug: str,
    reason: str,
    actor: str,
    now: datetime | None = None,
    confirm_below_target: bool = False,
) -> CategoryWatch:
    """An admin lifts a suspension; the watch starts a fresh segment.

    If the category's audited interval is still wholly below its target, the admin must
    say they know (`confirm_below_target`): resuming then knowingly auto-acts below the
    promise."""
    now = now or timezone.now()
    reason = reason.strip()
    if not reason:
        raise WatchError("give a reason for resuming (it goes in the audit log)", field="reason")
    with transaction.atomic():
        category = Category.objects.filter(slug=slug).first()
        if category is None:
            known = ", ".join(Category.objects.values_list("slug", flat=True))
            raise WatchError(
                f"unknown category {slug!r} (known: {known or 'none'})", field="category"
            )
        watch = CategoryWatch.objects.select_for_update().filter(category=category).first()
        if watch is None or watch.suspended_at is None:
            raise WatchError(f"category {slug!r} is not suspended", field="category")
        below = below_target(category, watch)
        if below is not None and not confirm_below_target:
            low, high = below["interval"]
            raise WatchError(
                f"{slug!r} is still audited below its {below['target']:.1%} target "
                f"({below['precision']:.1%}, 95% interval {low:.1%}–{high:.1%}, "
                f"n = {below['audited']}): confirm that you resume it below target",
                field="confirm_below_target",
            )
        suspended_at = watch.suspended_at
        _restart(watch, now, why="resumed by an admin")
        AuditLog.record(
            actor=actor,
            action="resume",
            category=slug,
            reason=reason,
            suspended_at=suspended_at.isoformat(),
            below_target=below,
            **_state_change(suspended_before=suspended_at, suspended_after=None),
        )
    return watch


def restart_watches(*, version: ModelVersion, actor: str, now: datetime | None = None) -> None:
    """A new champion: every category's watch starts over and suspensions are lifted.

    Called in the transaction that changes the champion; the verdicts gathered on
    the old model say nothing about the new one.
    """
    now = now or timezone.now()
    for category in Category.objects.all():
        watch = _locked_watch(category, now)
        if watch.suspended_at is not None:
            AuditLog.record(
                actor=actor,
                action="resume",
                category=category.slug,
                reason=f"model v{version.pk} became champion",
                suspended_at=watch.suspended_at.isoformat(),
                **_state_change(suspended_before=watch.suspended_at, suspended_after=None),
            )
        # The closing segment was gathered under the old champion: its figures are read
        # without the champion filter (version is champion already).
        _restart(watch, now, why=f"model v{version.pk} became champion", closing_champion=None)


def _state_change(
    *, suspended_before: datetime | None, suspended_after: datetime | None
) -> dict[str, Any]:
    """The category's auto-actions before and after, in the audit log's before/after form
    (AuditLog.record_change's shape, which the cockpit's audit page shows as a change)."""

    def state(suspended_at: datetime | None) -> dict[str, Any]:
        return {
            "auto_actions": "suspended" if suspended_at else "on",
            "suspended_at": suspended_at.isoformat() if suspended_at else None,
        }

    before, after = state(suspended_before), state(suspended_after)
    return {
        "before": before,
        "after": after,
        "changed": sorted(k for k in before if before[k] != after[k]),
    }


_CURRENT = object()


def _restart(
    watch: CategoryWatch, now: datetime, *, why: str, closing_champion: object = _CURRENT
) -> None:
    champion = ModelVersion.objects.champion()
    watch.suspended_at = None
    watch.suspension = {}
    restart_segment(
        watch,
        at=now,
        fingerprint=fingerprint_for(
            watch.category, policy=RoutingPolicy.current(), champion=champion
        ),
        why=why,
        champion=champion if closing_champion is _CURRENT else None,
    )
    watch.save()
