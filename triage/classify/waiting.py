"""Waiting items under a new champion.

When the champion changes (the gate's promotion, an admin's promotion, a roll back), the
items still waiting for their first decision because the model was unsure, or because
there was no model yet, are scored by the new champion and decided by the policy in force,
as if they had just arrived. Those it now automates leave the queue through the classify
write path (triage.classify.persisting): their prediction, audit draw, `item.routed`
event and the task closed, or turned into the audit sample. The rest stay as they are,
with the suggestion they were queued with; nothing is written for them.

Left alone: a task an analyst holds under a live lease (no card vanishes under anyone),
audits, second reviews, escalations and every other reason a person was asked for.
`RoutingPolicy.reroute_waiting` turns this off.

What it costs: only items whose embedding the champion can read from the cache are
scored, so a promotion costs the head's work per waiting item (well under a millisecond),
never an encoder's. A champion on another encoder (a fine-tuned one) or one that reads
the text itself (a sequence classifier) would have to encode the whole backlog again:
those items wait for people, as before.

The promise behind it: a certified threshold holds for items exchangeable with the
champion's evidence, and that evidence is mostly items people decided from this same
queue, so the waiting items are closer to it than fresh arrivals are. The replay
(benchmarks/replay.py) reports the realised precision of these actions on their own.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from triage.classify.deciding import Routing, policy_in_force
from triage.classify.persisting import Outcome, persist_routings
from triage.classify.service import decide_scored, score_items
from triage.models import (
    AuditLog,
    Category,
    Embedding,
    Item,
    ModelVersion,
    ReviewTask,
    ReviewTaskQuerySet,
    RoutingPolicy,
)
from triage.routing import policy as routing

logger = logging.getLogger(__name__)

# Why a task waits when only the model's doubt (or its absence) put the item there.
REROUTABLE = (ReviewTask.Reason.LOW_CONFIDENCE, ReviewTask.Reason.COLD_START)


def waiting_tasks(now: datetime) -> ReviewTaskQuerySet:
    """Open tasks of an item waiting for its first decision because the model was unsure
    or absent, that nobody holds under a live lease."""
    return ReviewTask.objects.claimable(now).filter(
        reason__in=REROUTABLE, item__status=Item.Status.IN_REVIEW
    )


@dataclass(frozen=True)
class Rerouted:
    """What re-routing the waiting items did."""

    scored: int = 0  # waiting items the champion scored
    outcome: Outcome = Outcome()


def reroute_waiting(*, actor: str, version_id: int | None = None) -> Rerouted:
    """Score the waiting items with the champion and route those it now automates.

    `version_id`: the champion this was queued for; if another has been made champion
    since, nothing is done (its own re-route follows). Runs in chunks of
    TRIAGE_CLASSIFY_CHUNK items, each decided and written in its own transaction.
    """
    champion = ModelVersion.objects.champion()
    if champion is None or (version_id is not None and champion.pk != version_id):
        return Rerouted()
    if not RoutingPolicy.current().reroute_waiting:
        return Rerouted()
    if champion.kind != ModelVersion.Kind.HEAD:
        return Rerouted()  # it reads the text, not cached vectors: see the module's note
    categories = {c.slug: c for c in Category.objects.all()}
    chunk = settings.TRIAGE_CLASSIFY_CHUNK
    scored, acted_on, audited, after = 0, 0, 0, 0
    while True:
        tasks = list(
            waiting_tasks(timezone.now())
            .filter(pk__gt=after)
            .select_related("item")
            .order_by("pk")[:chunk]
        )
        if not tasks:
            break
        after = tasks[-1].pk
        cached = set(
            Embedding.objects.filter(
                encoder=champion.encoder, item_id__in=[task.item_id for task in tasks]
            ).values_list("item_id", flat=True)
        )
        tasks = [task for task in tasks if task.item_id in cached]
        if not tasks:
            continue
        items = [task.item for task in tasks]
        scores, failure = score_items(champion, items, categories)
        if scores is None:
            # The items keep waiting for people, as they were: nothing is lost.
            logger.warning("re-routing waiting items stopped: %s", failure)
            break
        scored += len(tasks)
        now = timezone.now()
        policy = policy_in_force(champion, categories, now=now)
        automated = [
            routed
            for row, task in enumerate(tasks)
            if (
                routed := decide_scored(
                    task.item, scores, row, champion=champion, policy=policy, open_task=task
                )
            ).decision.route
            is routing.Route.AUTO
        ]
        if automated:
            outcome = _persist(
                automated, champion=champion, categories=categories, now=now, actor=actor
            )
            if outcome is None:
                break  # the champion changed under us
            acted_on += outcome.acted_on
            audited += outcome.audited
    return Rerouted(scored=scored, outcome=Outcome(acted_on=acted_on, audited=audited))


def _persist(
    automated: list[Routing],
    *,
    champion: ModelVersion,
    categories: dict[str, Category],
    now: datetime,
    actor: str,
) -> Outcome | None:
    """Write the routings whose task still waits, unheld; None if the champion changed."""
    with transaction.atomic():
        current = (
            ModelVersion.objects.select_for_update()
            .filter(status=ModelVersion.Status.CHAMPION)
            .values_list("pk", flat=True)
            .first()
        )
        if current != champion.pk:
            return None
        locked = set(
            waiting_tasks(now)
            .select_for_update(skip_locked=True, of=("self",))
            .filter(pk__in=[r.open_task.pk for r in automated if r.open_task])
            .values_list("pk", flat=True)
        )
        still = [r for r in automated if r.open_task is not None and r.open_task.pk in locked]
        if not still:
            return Outcome()
        outcome = persist_routings(still, champion=champion, categories=categories, now=now)
        AuditLog.record(
            actor=actor,
            action="reroute_waiting",
            version=champion.pk,
            routed=outcome.routed,
            acted_on=outcome.acted_on,
            audit_samples=outcome.audited,
            items=[r.item.pk for r in still][:1000],
        )
    return outcome
