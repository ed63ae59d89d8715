"""Which labelled examples a new model learns from, and which ones a model never saw."""

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from triage.models import ModelVersion
from triage.training.models import TrainingExample


class RetrainError(Exception):
    pass


class SnapshotUnavailable(Exception):
    """A version's training set cannot be rebuilt exactly; the message says why."""


# What a version's training_snapshot["trained_on"] says it learned from.
TRAINED_ON_ALL = "all"  # a head: every example up to max_example_id (cross-fitted evidence)
TRAINED_ON_TRAIN_SPLIT = "train_split"  # a fine-tuned encoder; also every version before 0005
TRAINED_ON_NONE = "none"  # a ready sequence classifier


@dataclass(frozen=True)
class Examples:
    """The active examples of active categories, as one snapshot."""

    all: list[TrainingExample]  # examples of the categories this version can learn
    counts: dict[str, int]  # examples per category (all splits)
    left_out: list[str]  # categories with too few examples for this version
    taken_at: datetime = field(default_factory=timezone.now)

    @property
    def train(self) -> list[TrainingExample]:
        return [ex for ex in self.all if ex.split == TrainingExample.Split.TRAIN]

    @property
    def holdout(self) -> list[TrainingExample]:
        return [ex for ex in self.all if ex.split == TrainingExample.Split.HOLDOUT]


def snapshot_examples() -> Examples:
    """The active examples, checked for enough data to train.

    A head is cross-fitted on all of them, so there is no separate holdout to
    wait for; a category needs TRIAGE_MIN_EXAMPLES_PER_CATEGORY examples.
    Labels of a quarantined analyst that no admin has released are left out of
    training and holdout alike (TrainingExample.objects.trusted, reviews.trust).
    """
    taken_at = timezone.now()
    examples = list(
        TrainingExample.objects.trusted()
        .filter(category__is_active=True)
        .select_related("item")
        # A handful of categories: fetched once and shared, rather than one Category
        # object built per example (a second of every 100,000-example snapshot).
        .prefetch_related("category")
        .order_by("pk")
    )
    minimum = settings.TRIAGE_MIN_EXAMPLES_PER_CATEGORY
    counts = Counter(ex.category.slug for ex in examples)
    usable = {slug for slug, n in counts.items() if n >= minimum}
    if len(usable) < 2:
        have = ", ".join(f"{slug} {n}" for slug, n in sorted(counts.items())) or "none"
        raise RetrainError(
            f"too few examples to retrain: need at least {minimum} examples in each "
            f"of at least two categories; have {have}"
        )
    return Examples(
        all=[ex for ex in examples if ex.category.slug in usable],
        counts=dict(sorted(counts.items())),
        left_out=sorted(set(counts) - usable),
        taken_at=taken_at,
    )


def membership_digest(example_ids: Iterable[int]) -> str:
    """A fingerprint of which examples a snapshot held, in primary-key order."""
    digest = hashlib.sha256()
    for pk in example_ids:
        digest.update(b"%d," % pk)
    return digest.hexdigest()


def snapshot_record(examples: Examples, *, trained_on: str, evidence: int) -> dict[str, Any]:
    train = len(examples.all) if trained_on == TRAINED_ON_ALL else len(examples.train)
    return {
        "trained_on": trained_on,
        "train": train if trained_on != TRAINED_ON_NONE else 0,
        "evidence": evidence,
        "holdout": len(examples.holdout),
        "per_category": examples.counts,
        "left_out_categories": examples.left_out,
        "max_example_id": max(ex.pk for ex in examples.all),
        # Enough to rebuild exactly which examples the snapshot held (snapshot_queryset),
        # and to prove the rebuild right (export refuses a set whose digest differs).
        "taken_at": examples.taken_at.isoformat(),
        "categories": sorted({ex.category.slug for ex in examples.all}),
        "size": len(examples.all),
        "sha256": membership_digest(ex.pk for ex in examples.all),
    }


def snapshot_queryset(version: ModelVersion) -> QuerySet[TrainingExample]:
    """The examples of a version's snapshot, rebuilt from when it was taken, in pk order.

    An example was in it if it existed then, was not yet superseded, belonged to one of
    the snapshot's categories, and was not held in quarantine at that moment. Check the
    result with its digest (trained_on_queryset does): a deleted example, or a write
    that raced the snapshot, would change it.
    """
    snapshot = version.training_snapshot or {}
    taken_at = parse_datetime(str(snapshot.get("taken_at", "")))
    if taken_at is None or "sha256" not in snapshot:
        raise SnapshotUnavailable(
            f"model version {version.pk} was trained before snapshots recorded their "
            "membership; its exact training set cannot be rebuilt"
        )
    held_then = Q(held_label__held_at__lte=taken_at) & (
        Q(held_label__resolved_at__isnull=True) | Q(held_label__resolved_at__gt=taken_at)
    )
    return (
        TrainingExample.objects.filter(
            pk__lte=int(snapshot["max_example_id"]),
            category__slug__in=snapshot["categories"],
        )
        .filter(Q(superseded_at__isnull=True) | Q(superseded_at__gt=taken_at))
        .exclude(held_then)
        .order_by("pk")
    )


def trained_on_queryset(version: ModelVersion) -> QuerySet[TrainingExample]:
    """Exactly the examples this version learned from, verified against its snapshot."""
    snapshot = version.training_snapshot or {}
    examples = snapshot_queryset(version)
    ids = examples.values_list("pk", flat=True).iterator(chunk_size=10_000)
    if membership_digest(ids) != snapshot["sha256"]:
        raise SnapshotUnavailable(
            f"model version {version.pk}'s snapshot cannot be rebuilt exactly: examples it "
            "held were deleted or changed since (its digest differs)"
        )
    trained_on = snapshot.get("trained_on", TRAINED_ON_TRAIN_SPLIT)
    if trained_on == TRAINED_ON_NONE:
        raise SnapshotUnavailable(
            f"model version {version.pk} is a ready classifier: it learned from no example here"
        )
    if trained_on == TRAINED_ON_TRAIN_SPLIT:
        return examples.filter(split=TrainingExample.Split.TRAIN)
    return examples


def unseen_by(version: ModelVersion, *, examples: list[TrainingExample]) -> list[TrainingExample]:
    """The examples this version did not train on.

    A later review supersedes an example with a new row, so a new primary key
    means "added after the snapshot".
    """
    snapshot = version.training_snapshot or {}
    trained_on = snapshot.get("trained_on", TRAINED_ON_TRAIN_SPLIT)
    if trained_on == TRAINED_ON_NONE:
        return list(examples)
    newest = int(snapshot.get("max_example_id", 0))
    return [
        ex
        for ex in examples
        if ex.pk > newest
        or (trained_on == TRAINED_ON_TRAIN_SPLIT and ex.split == TrainingExample.Split.HOLDOUT)
    ]


def examples_trained_on(version: ModelVersion) -> int:
    return int((version.training_snapshot or {}).get("train", 0))
