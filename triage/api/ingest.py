"""Ingest: store incoming items (idempotent by external id), then queue their
classification once the rows are committed; and import labelled history."""

import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from triage.api.ingest_copy import store_by_copy
from triage.api.intake import ItemIn
from triage.classify.scoring import IN_CHUNK
from triage.classify.tasks import classify_items
from triage.models import Category, Item
from triage.monitoring.tallies import tally_new_items, tally_received
from triage.privacy.masking import training_texts
from triage.training.models import TrainingExample, split_for

logger = logging.getLogger(__name__)

# Tries of one ingest transaction: concurrent batches that share new ids can collide
# (unique-index waits, deadlocks) more than once under load.
INGEST_ATTEMPTS = 4
# PostgreSQL's SQLSTATEs for errors that roll back a transaction which may then succeed.
TRANSIENT_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected


def is_transient(exc: BaseException) -> bool:
    """A deadlock or serialization failure: the transaction was rolled back, retry it."""
    return getattr(exc.__cause__, "sqlstate", None) in TRANSIENT_SQLSTATES


class IngestConflict(Exception):
    """An external id arrived again with different text: ingest is idempotent, not an update."""

    def __init__(self, conflicts: Sequence[tuple[int, str]]) -> None:
        self.conflicts = list(conflicts)
        super().__init__(
            "; ".join(
                f"item {index}: external_id {eid!r} already exists with different text"
                for index, eid in conflicts
            )
        )


class NotConfigured(Exception):
    """The system cannot accept items yet (for example, no categories exist)."""


@dataclass(frozen=True)
class IngestResult:
    """The items stored by this batch and those already stored, by id, in the batch's
    order. The Item objects are read only when asked for: the API answers from ids."""

    created_ids: list[int]
    existing_ids: list[int]
    known: dict[int, Item] = field(default_factory=dict, repr=False)
    # When every created item was received at one moment (the COPY path), that moment.
    received_at: datetime | None = None

    def _items(self, ids: list[int]) -> list[Item]:
        missing = [pk for pk in ids if pk not in self.known]
        if missing:
            self.known.update(Item.objects.in_bulk(missing))
        return [self.known[pk] for pk in ids]

    @property
    def created(self) -> list[Item]:
        return self._items(self.created_ids)

    @property
    def existing(self) -> list[Item]:
        return self._items(self.existing_ids)

    @property
    def items(self) -> list[Item]:
        return self.created + self.existing


def _existing_by_external_id(external_ids: Iterable[str]) -> dict[str, Item]:
    ids = list(external_ids)
    found: dict[str, Item] = {}
    for start in range(0, len(ids), IN_CHUNK):
        for item in Item.objects.filter(external_id__in=ids[start : start + IN_CHUNK]):
            found[item.external_id] = item
    return found


def find_conflicts(
    items: Sequence[ItemIn], *, existing: dict[str, Item] | None = None
) -> list[tuple[int, str]]:
    """(index, external_id) of items whose id is stored, or repeated, with other text."""
    if existing is None:
        existing = _existing_by_external_id(i.external_id for i in items)
    # A forgotten or pruned item has no text to compare: the id is known, so the stored
    # tombstone is the answer and nothing is stored again.
    differs = {
        item.external_id
        for item in items
        if (stored := existing.get(item.external_id)) is not None
        and not stored.text_removed
        and stored.text != item.text
    }
    return conflicts_with(items, stored_differs=differs)


def conflicts_with(items: Sequence[ItemIn], *, stored_differs: set[str]) -> list[tuple[int, str]]:
    """(index, external_id) of items whose id is among `stored_differs` (stored with other
    text than the batch's first occurrence) or repeated in the batch with other text."""
    seen: dict[str, str] = {}
    conflicts: list[tuple[int, str]] = []
    for index, item in enumerate(items):
        earlier = seen.setdefault(item.external_id, item.text)
        if item.external_id in stored_differs or earlier != item.text:
            conflicts.append((index, item.external_id))
    return conflicts


def _split_new_and_existing(items: Sequence[ItemIn]) -> tuple[list[ItemIn], dict[str, Item]]:
    """New items (deduplicated), and the stored ones; raise on any text conflict."""
    existing = _existing_by_external_id(i.external_id for i in items)
    conflicts = find_conflicts(items, existing=existing)
    if conflicts:
        raise IngestConflict(conflicts)
    new = {i.external_id: i for i in items if i.external_id not in existing}
    return list(new.values()), existing


# What a store returns: the new items' ids by external id (in external id order), the
# stored items by external id, the Item objects it has in hand, and the one moment the
# new items were received at, if one.
Stored = tuple[dict[str, int], dict[str, Item], list[Item], datetime | None]


def _store_by_orm(items: Sequence[ItemIn], *, source: str) -> Stored:
    new, existing = _split_new_and_existing(items)
    # Inserted in id order: two batches that share new ids then wait on each other's first
    # shared id instead of each holding one the other needs.
    created = Item.objects.bulk_create(
        Item(external_id=i.external_id, text=i.text, metadata=i.metadata, source=source)
        for i in sorted(new, key=lambda i: i.external_id)
    )
    return {i.external_id: i.pk for i in created}, existing, created, None


def _store_by_copy(items: Sequence[ItemIn], *, source: str) -> Stored:
    # Conflicts are found after the insert; raising rolls it back with the transaction.
    created, existing, differs, received_at = store_by_copy(items, source=source)
    conflicts = conflicts_with(items, stored_differs=differs)
    if conflicts:
        raise IngestConflict(conflicts)
    return created, existing, [], received_at


def uses_copy(count: int) -> bool:
    """Whether a batch of `count` items is stored by COPY (PostgreSQL, at least
    TRIAGE_INGEST_COPY_MIN items) rather than by the ORM."""
    threshold = settings.TRIAGE_INGEST_COPY_MIN
    return connection.vendor == "postgresql" and 0 < threshold <= count


def _queue_classification(item_ids: list[int]) -> Callable[[], None]:
    def queue_classification() -> None:
        classify_items.delay(item_ids)

    return queue_classification


def ingest_items(*, items: Sequence[ItemIn], source: str = Item.Source.API) -> IngestResult:
    """Store items, then queue their classification once the rows are committed.

    The same external id with the same text returns the stored item; with
    different text the whole batch is refused and nothing is written.
    """
    if not Category.objects.filter(is_active=True).exists():
        raise NotConfigured(
            "no active categories: an admin must create at least one before items can be routed"
        )
    store = _store_by_copy if uses_copy(len(items)) else _store_by_orm
    for attempt in range(1, INGEST_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                created, existing, in_hand, received_at = store(items, source=source)
                if in_hand:
                    tally_new_items(in_hand)
                else:  # by COPY: ids only, all received at one moment
                    tally_received(len(created), received_at=received_at, source=source)
                ids = list(created.values())
                chunk = settings.TRIAGE_CLASSIFY_CHUNK
                for start in range(0, len(ids), chunk):
                    # robust: the items are stored whatever happens next; a failed
                    # hand-off is logged and the sweep (classify_stuck) retries it.
                    transaction.on_commit(
                        _queue_classification(ids[start : start + chunk]), robust=True
                    )
            break
        except IntegrityError:
            # A concurrent request stored one of these ids between our read and
            # write; read again so it is reported as existing (or a conflict).
            if attempt == INGEST_ATTEMPTS:
                raise
        except OperationalError as exc:
            # A deadlock or serialization failure rolled the whole batch back: nothing
            # was written, so trying again is safe. Anything else is not transient.
            if not is_transient(exc) or attempt == INGEST_ATTEMPTS:
                raise
            logger.warning("ingest: %s; retrying (attempt %d)", exc, attempt + 1)
            time.sleep(random.uniform(0.01, 0.05) * attempt)
    ordered = list(dict.fromkeys(i.external_id for i in items))
    return IngestResult(
        created_ids=[created[e] for e in ordered if e not in existing],
        existing_ids=[existing[e].pk for e in ordered if e in existing],
        known={i.pk: i for i in in_hand} | {i.pk: i for i in existing.values()},
        received_at=received_at,
    )


def import_history(*, items: Sequence[ItemIn], categories: dict[str, Category]) -> IngestResult:
    """Store labelled rows as already-resolved items plus "import" training examples."""
    now = timezone.now()
    with transaction.atomic():
        new, existing = _split_new_and_existing(items)
        created = Item.objects.bulk_create(
            Item(
                external_id=i.external_id,
                text=i.text,
                metadata=i.metadata,
                source=Item.Source.IMPORT,
                status=Item.Status.RESOLVED,
                final_category=categories[i.label or ""],
                decided_by="import",
                decided_at=now,
            )
            for i in new
        )
        TrainingExample.objects.bulk_create(
            TrainingExample(
                item=item,
                text=text,
                category=item.final_category,
                source=TrainingExample.Source.IMPORT,
                split=split_for(item.external_id),
            )
            for item, text in zip(created, training_texts([i.text for i in created]), strict=True)
        )
        tally_new_items(created)
    return IngestResult(
        created_ids=[i.pk for i in created],
        existing_ids=[i.pk for i in existing.values()],
        known={i.pk: i for i in created} | {i.pk: i for i in existing.values()},
    )
