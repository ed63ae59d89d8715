"""Waiting items under a new champion.

When the champion changes (the gate's promotion, an admin's promotion, a roll back), the
items still waiting for their first decision because the model was unsure, or because
there was no model yet, are scored by the new champion and decided by the policy in force
(audit rates, suspensions, item rules), with one difference: a target's threshold is
certified again on the part of the champion's evidence that waited like them. Those it
then automates leave the queue through the classify write path
(triage.classify.persisting): their prediction, audit draw, `item.routed` event and the
task closed, or turned into the audit sample. The rest stay as they are, with the
suggestion they were queued with; nothing is written for them.

Why certify again: the waiting items are the hard part of the stream, the ones an earlier
model doubted. Above the new threshold they fall in the band just over it, where precision
is below the average the certificate speaks of, and the evidence also holds easier items
(imported history, audited auto-actions). So the re-route's thresholds are certified on
the evidence rows whose item went to people at arrival because the model was unsure
(`queue_evidence`): items drawn as the waiting ones were, decided by people earlier.
tests/test_reroute_validity.py simulates it: certified on every label, the re-routed items
fall below the target in 21 runs of 100; on the queue's rows, in 5 (delta 5%). A raw
threshold is the admin's and applies as it is.

Left alone: a task an analyst holds under a live lease (no card vanishes under anyone),
audits, second reviews, escalations and every other reason a person was asked for.
`RoutingPolicy.reroute_waiting` turns this off.

What it costs: only items whose embedding the champion can read from the cache are
scored, so a promotion costs the head's work per waiting item (well under a millisecond),
never an encoder's. A champion on another encoder (a fine-tuned one) or one that reads
the text itself (a sequence classifier) would have to encode the whole backlog again:
those items wait for people, as before.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

import numpy as np
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
    Prediction,
    ReviewTask,
    ReviewTaskQuerySet,
    RoutingPolicy,
    among,
)
from triage.routing import policy as routing
from triage.routing.derive import derive_from, derived
from triage.routing.evidence import HoldoutPredictions

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
    rules = queue_rules(champion)
    if not any(rule.threshold is not None for rule in rules.rules.values()):
        return Rerouted()  # nothing can be automated from the queue (item rules aside)
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
                encoder=champion.encoder, item_id__in=among([task.item_id for task in tasks])
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
        policy = policy_in_force(champion, categories, now=now, rules=rules)
        decided = [
            decide_scored(task.item, scores, row, champion=champion, policy=policy, open_task=task)
            for row, task in enumerate(tasks)
        ]
        automated = [r for r in decided if r.decision.route is routing.Route.AUTO]
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


def queue_rules(champion: ModelVersion) -> routing.Policy:
    """The champion's rules for items that waited in the queue: each target certified on
    `queue_evidence`, raw thresholds as they are. Not cached: a promotion or an admin's
    re-route derives them once."""
    return derive_from(queue_evidence(derived(champion).evidence)).policy


# Why an item went to people at arrival when it was not the model's doubt.
NOT_THE_MODELS_DOUBT = frozenset(
    {
        routing.Reason.RULE,
        routing.Reason.CATEGORY_INACTIVE,
        routing.Reason.SUSPENDED,
        routing.Reason.MODEL_UNAVAILABLE,
    }
)


def queue_evidence(evidence: HoldoutPredictions | None) -> HoldoutPredictions | None:
    """The rows of the champion's evidence whose item went to people at arrival because the
    model was unsure or absent: the labelled part of the population the waiting items
    come from. Imported history and audited auto-actions are left out: they are easier
    than what waits, and certifying on them would let the re-route pick the band just
    above the threshold, where precision is below the target
    (tests/test_reroute_validity.py)."""
    if evidence is None or not evidence.example_ids:
        return None
    ids = list(evidence.example_ids)
    # Through the item's side of the relation: classification does not import training.
    item_of = dict(
        Item.objects.filter(training_examples__in=among(ids)).values_list("training_examples", "pk")
    )
    first: dict[int, tuple[str, str]] = {}
    for item_id, route, reason in (
        Prediction.objects.filter(item_id__in=among(list(set(item_of.values()))))
        .order_by("item_id", "pk")
        .values_list("item_id", "route", "reason")
    ):
        first.setdefault(item_id, (route, reason))
    queued = {
        item_id
        for item_id, (route, reason) in first.items()
        if route == Prediction.Route.REVIEW and reason not in NOT_THE_MODELS_DOUBT
    }
    keep = np.array([item_of.get(example_id) in queued for example_id in ids], dtype=bool)
    return HoldoutPredictions(
        labels=evidence.labels,
        predicted=evidence.predicted[keep],
        confidence=evidence.confidence[keep],
        truth=evidence.truth[keep],
        example_ids=tuple(np.asarray(ids)[keep].tolist()),
    )
