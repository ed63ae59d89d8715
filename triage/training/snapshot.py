"""Which labelled examples a new model learns from, and which ones a model never saw."""

from collections import Counter
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from reviews.models import TrainingExample

from ..models import ModelVersion


class RetrainError(Exception):
    pass


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
    """
    examples = list(
        TrainingExample.objects.active()
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
    )


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
    }


def unseen_by(version: ModelVersion, examples: list[TrainingExample]) -> list[TrainingExample]:
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
