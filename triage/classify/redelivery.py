"""Batches that kill their worker: narrowed down to the item at fault, which goes to review.

With acks_late and reject_on_worker_lost, a classify task whose worker dies (out of
memory on one huge text, a crash in a native library) goes back to the broker and is
handed out again. Without this, one such item would take its whole batch down with it
on every delivery, forever, and the stuck sweep would never see it (its task is not
lost, it is redelivered).

Every start of a classification counts on its items (`Item.classify_started`, committed
before the work), and a Python exception takes the count back: only a start that never
finished, i.e. a dead worker, is left counted. An item's count says how small the batch
it may run in is:

- 0: any size (TRIAGE_CLASSIFY_CHUNK);
- 1 (its batch died once): groups of SUSPECT_GROUP, each a task of its own, so the rest
  of a big batch goes through in a few tasks rather than one per item;
- 2 (its group died too): alone;
- TRIAGE_CLASSIFY_MAX_CRASHES (3, and never fewer: the batch, the group, alone): to
  review unscored, with an admin alert (`classification_crashed`) naming it.

The assumption: a worker that dies while one batch runs died because of that batch. A
worker killed for another reason (a deploy's SIGKILL, the OOM killer choosing it for
another process's memory) costs its items a count, and they are retried in groups.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db.models import F

from triage.classify import service
from triage.models import Item

logger = logging.getLogger(__name__)


# Items of a batch that died once are retried in groups this size.
SUSPECT_GROUP = 16


@dataclass(frozen=True)
class Start:
    now: list[int]  # classified in this task
    apart: list[list[int]]  # groups handed on, each to a task of its own
    give_up: list[int]  # TRIAGE_CLASSIFY_MAX_CRASHES unfinished starts: to review, unscored


def _largest_batch(crashes: int) -> int:
    return settings.TRIAGE_CLASSIFY_CHUNK if crashes == 0 else SUSPECT_GROUP if crashes == 1 else 1


def plan_start(item_ids: Sequence[int]) -> Start:
    """Sort the still-pending items of a delivery, and count a start on those run now."""
    rows = list(
        Item.objects.pending()
        .filter(pk__in=list(item_ids))
        .order_by("pk")
        .values_list("pk", "classify_started")
    )
    limit = settings.TRIAGE_CLASSIFY_MAX_CRASHES
    give_up = [pk for pk, crashes in rows if crashes >= limit]
    rows = [(pk, crashes) for pk, crashes in rows if crashes < limit]
    apart: list[list[int]] = []
    if rows and len(rows) <= _largest_batch(max(crashes for _, crashes in rows)):
        now = [pk for pk, _ in rows]
    else:
        now = [pk for pk, crashes in rows if crashes == 0]
        for crashes in sorted({c for _, c in rows if c > 0}):
            ids = [pk for pk, c in rows if c == crashes]
            size = _largest_batch(crashes)
            apart += [ids[i : i + size] for i in range(0, len(ids), size)]
    if now:
        # Committed before the work: a worker that dies mid-batch leaves it counted.
        Item.objects.pending().filter(pk__in=now).update(classify_started=F("classify_started") + 1)
    return Start(now=now, apart=apart, give_up=give_up)


def take_back(item_ids: Sequence[int]) -> None:
    """The start ended in an exception, not a dead worker: it does not count."""
    try:
        Item.objects.pending().filter(pk__in=list(item_ids), classify_started__gt=0).update(
            classify_started=F("classify_started") - 1
        )
    except Exception:  # the database may be what failed; the task's own error is raised
        logger.warning("could not take back the start of %d item(s)", len(item_ids))


def send_to_review(item_ids: Sequence[int]) -> int:
    """To review, unscored, with an alert that names the items."""
    names = list(
        Item.objects.filter(pk__in=list(item_ids)).values_list("external_id", flat=True)[:10]
    )
    more = f" and {len(item_ids) - len(names)} more" if len(item_ids) > len(names) else ""
    sent = service.give_up_on(
        item_ids,
        alert_kind="classification_crashed",
        message=(
            f"Classifying these items killed the worker {settings.TRIAGE_CLASSIFY_MAX_CRASHES} "
            f"times; they were sent to review unscored: {', '.join(names)}{more}. Look for an "
            "out-of-memory kill or a crash in the worker's log."
        ),
    )
    logger.error("gave up classifying %d item(s) that killed their worker: %s", sent, names)
    return sent


def classify_delivery(item_ids: Sequence[int], *, run_apart: Callable[[list[int]], None]) -> int:
    """One delivery of a classify task: the items it may run now, the others handed on."""
    start = plan_start(item_ids)
    for group in start.apart:
        run_apart(group)
    done = send_to_review(start.give_up) if start.give_up else 0
    if start.now:
        try:
            done += service.classify_items(item_ids=start.now)
        except BaseException:
            take_back(start.now)
            raise
    return done
