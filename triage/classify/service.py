"""Classify and route: score received items (scoring.py), decide each by the routing
policy in force (deciding.py), and persist the prediction, audit sample, status, event or
review task in one transaction (persisting.py: the one write path for routing an item)."""

import logging
import time
from collections.abc import Sequence

from django.db import DatabaseError, transaction
from django.utils import timezone

from triage.classify.deciding import Routing, decide, policy_in_force
from triage.classify.persisting import persist_routings
from triage.classify.scoring import (
    ClassificationError,
    Scores,
    version_scores,
    zero_shot_scores,
)
from triage.models import Category, Item, ModelVersion, ReviewTask, among
from triage.monitoring.instruments import observe_classify
from triage.monitoring.models import Alert
from triage.routing import policy as routing

logger = logging.getLogger(__name__)

TOP_K = 3


def classify_items(*, item_ids: Sequence[int], unscored: bool = False) -> int:
    """Score and route received items with the champion; returns how many were routed.

    The admins' rules decide first, then the model. If scoring fails (a missing or
    tampered artifact, an encoder error, a label with no category) the items go to
    review with reason model_unavailable and admins get an alert: an item is never
    left in `received`. `unscored` skips the model (the stuck sweep's last resort).
    Each auto-routed item gets an `item.routed` event in the routing transaction.

    Safe to run twice on the same ids (a redelivered task): items already past
    `received` are skipped, and rows are locked while they are routed.
    """
    started = time.perf_counter()
    items = list(Item.objects.pending().filter(pk__in=among(item_ids)).order_by("pk"))
    if not items:
        return 0
    champion = ModelVersion.objects.champion()
    categories = {c.slug: c for c in Category.objects.all()}
    # Scoring (embedding) is the slow part; it happens outside the routing transaction.
    scores, failure = (None, "") if unscored else score_items(champion, items, categories)
    now = timezone.now()
    policy = policy_in_force(champion, categories, now=now)
    row_of = {item.pk: row for row, item in enumerate(items)}
    by_pk = {item.pk: item for item in items}

    with transaction.atomic():
        locked = list(
            Item.objects.pending()
            .select_for_update(skip_locked=True)
            .filter(pk__in=among([item.pk for item in items]))
            .values_list("pk", flat=True)
        )
        routings = [
            decide_scored(by_pk[pk], scores, row_of[pk], champion=champion, policy=policy)
            for pk in locked
        ]
        persist_routings(routings, champion=champion, categories=categories, now=now)
        if failure and locked:
            Alert.raise_alert(
                kind="model_unavailable",
                message=f"Scoring failed; items went to review instead: {failure}",
                count=len(locked),
            )
    observe_classify(seconds=time.perf_counter() - started, items=len(locked))
    return len(locked)


def decide_scored(
    item: Item,
    scores: Scores | None,
    row: int,
    *,
    champion: ModelVersion | None,
    policy: routing.Policy,
    open_task: ReviewTask | None = None,
) -> Routing:
    """The item's decision from its row of the champion's scores (None: unscored);
    `open_task`, the task it already waits in (triage.classify.waiting)."""
    if scores is None:
        return decide(item, scored=None, policy=policy, open_task=open_task)
    top = scores.top(row, TOP_K)
    scored = routing.ScoredItem(label=top[0][0], confidence=top[0][1], cold_start=champion is None)
    top_scores = [{"label": label, "confidence": round(p, 6)} for label, p in top]
    return decide(item, scored=scored, policy=policy, top_scores=top_scores, open_task=open_task)


def score_items(
    champion: ModelVersion | None, items: list[Item], categories: dict[str, Category]
) -> tuple[Scores | None, str]:
    """The champion's scores for the items, or None and why it could not score them."""
    try:
        scores = version_scores(champion, items=items) if champion else zero_shot_scores(items)
        unmapped = sorted(set(scores.labels) - set(categories))
        if unmapped:
            raise ClassificationError(
                f"the model's label(s) {', '.join(map(repr, unmapped))} have no category"
            )
    except DatabaseError:
        # The database, not the model, failed (a dropped connection reading the embedding
        # cache): the task retries; sending the items to review unscored would be wrong.
        raise
    except Exception as exc:
        # Any failure here (corrupt file, encoder crash, bad label map) must not leave
        # items in `received` to be re-queued forever: log it, and people decide.
        logger.exception("scoring %d item(s) failed; sending them to review", len(items))
        return None, f"{type(exc).__name__}: {exc}"
    return scores, ""


def give_up_on(item_ids: Sequence[int], *, alert_kind: str, message: str) -> int:
    """The last resort for items that could not be classified: to review unscored, and an
    admin alert in the same transaction; how many were sent."""
    with transaction.atomic():
        sent = classify_items(item_ids=item_ids, unscored=True)
        if sent:
            Alert.raise_alert(kind=alert_kind, message=message, count=sent)
    return sent
