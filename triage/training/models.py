"""Training examples: the labelled texts models learn from and are measured on."""

from django.db import models
from django.utils import timezone

from triage.models import Category, Item
from triage.stats import hash_draw

# Share of examples held out for evaluation. Fixed forever: changing it would
# move examples between train and holdout and make versions incomparable.
HOLDOUT_SHARE = 0.2


def split_for(external_id: str) -> str:
    """Stable train/holdout split by a hash of the item, so an example never moves."""
    bucket = hash_draw(external_id)
    return TrainingExample.Split.HOLDOUT if bucket < HOLDOUT_SHARE else TrainingExample.Split.TRAIN


class TrainingExampleQuerySet(models.QuerySet["TrainingExample"]):
    def active(self) -> "TrainingExampleQuerySet":
        return self.filter(superseded_at__isnull=True)

    def trusted(self) -> "TrainingExampleQuerySet":
        """Active examples a model may learn from or be measured on: not a quarantined
        analyst's label that an admin has not released.

        The hold is reviews.trust's HeldLabel (reverse name held_label, state "held"): the
        analysts' app holds labels, the core only reads whether one is held."""
        return self.active().exclude(held_label__state="held")


class TrainingExample(models.Model):
    """A labelled text the next model learns from (or is measured on).

    The split is fixed by a hash of the item. A later decision on the same item
    supersedes the earlier example rather than adding a second, conflicting one.
    """

    class Source(models.TextChoices):
        REVIEW = "review"
        AUDIT = "audit"
        IMPORT = "import"

    class Split(models.TextChoices):
        TRAIN = "train"
        HOLDOUT = "holdout"

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="training_examples")
    text = models.TextField()
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="+")
    source = models.CharField(max_length=10, choices=Source.choices)
    split = models.CharField(max_length=10, choices=Split.choices)
    created_at = models.DateTimeField(default=timezone.now)
    superseded_at = models.DateTimeField(null=True, blank=True)

    objects = TrainingExampleQuerySet.as_manager()

    class Meta:
        db_table = "reviews_trainingexample"
        constraints = [
            models.UniqueConstraint(
                fields=["item"],
                condition=models.Q(superseded_at__isnull=True),
                name="one_active_example_per_item",
            )
        ]

    def __str__(self) -> str:
        return f"{self.category_id}: {self.text[:40]}"
