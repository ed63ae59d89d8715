"""Retrain on a count of new labels as well as nightly.

From a few labels per class the first models automate almost nothing, and a nightly
retrain leaves a busy queue learning from a day-old model. With cached embeddings a
retrain takes seconds, so every TRIAGE_RETRAIN_AFTER_LABELS new trusted labels since the
champion was trained queue one in the background. The gate is the same as the nightly
job's; a candidate it refuses leaves the champion in place, and the next trigger comes
after as many labels again.

The service that writes a decision's training example calls ``labels_recorded`` inside
its transaction (reviews.decisions; the core never imports reviews). The count is taken
on commit, so a label held by quarantine (reviews.trust, in the same transaction) is
never counted, and a rolled-back decision queues nothing.
"""

import logging
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q

from triage.models import ModelVersion
from triage.training import tasks
from triage.training.models import TrainingExample

logger = logging.getLogger(__name__)


def champion_max_example_id() -> int:
    """The newest example the champion's snapshot held (0 without a champion)."""
    champion = ModelVersion.objects.champion()
    snapshot = (champion.training_snapshot or {}) if champion is not None else {}
    return int(snapshot.get("max_example_id", 0))


def labels_since_champion() -> int:
    """Trusted labels that arrived after the champion's snapshot."""
    return TrainingExample.objects.trusted().filter(pk__gt=champion_max_example_id()).count()


def crosses_count(example_ids: Sequence[int], *, every: int) -> bool:
    """Whether these new examples take the count of trusted labels since the champion
    across a multiple of ``every``: exactly one label in each run of ``every`` fires,
    however the labels are batched or interleaved between analysts.

    Each label has a rank (trusted labels since the champion up to its own key); the batch
    fires when a rank of its own reaches the next multiple. Counted over the keys after
    the champion's snapshot only: an index range, not the whole table.
    """
    if every <= 0 or not example_ids:
        return False
    base = champion_max_example_id()
    ranks = (
        TrainingExample.objects.trusted()
        .filter(pk__gt=base, pk__lte=max(example_ids))
        .aggregate(
            upto=Count("pk"),
            before=Count("pk", filter=Q(pk__lt=min(example_ids))),
        )
    )
    return bool(ranks["upto"] // every > ranks["before"] // every)


def labels_recorded(example_ids: Sequence[int]) -> None:
    """Call inside the transaction that wrote these training examples: on commit, queue a
    retrain when they bring the count since the champion to the next multiple of
    TRIAGE_RETRAIN_AFTER_LABELS."""
    every = settings.TRIAGE_RETRAIN_AFTER_LABELS
    if every <= 0 or not example_ids:
        return
    ids = list(example_ids)

    def queue_if_due() -> None:
        if crosses_count(ids, every=every):
            logger.info("%d new trusted labels since the champion: retrain queued", every)
            tasks.retrain_on_count.delay()

    # Robust: the decision is committed whatever happens here. A broker that is down, or
    # (without a broker) a retrain that fails in-process, is logged and never turns the
    # analyst's recorded decision into an error.
    transaction.on_commit(queue_if_due, robust=True)
