"""Cheap signals of careless work, beside the second-review measures of quality.py.

Second reviews catch wrong labels slowly (a share of decisions, and a second person's
time). Some careless habits show in the decisions alone, at once:

- Implausible speed: a median under FAST_MEDIAN_SECONDS on the card is too fast to have
  read most items.
- Straight-lining: long runs of one category in a row (bulk decisions left out: one bulk
  is one run by design), or accepting the model's suggestion almost always. Only tasks
  that showed the suggestion count towards the latter (not audits, second reviews or
  disagreements, which are blind).

A flag asks an admin to look (the per-category drill-down shows where); it quarantines
nobody. Each needs MIN_DECISIONS decisions in the window, so a new analyst's first
handful raises nothing.
"""

import statistics
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User
from django.db.models import Count, Q

from reviews.trust.models import ReviewCheck
from triage.access import blind_task_q
from triage.models import Category, Review

FAST_MEDIAN_SECONDS = 2.0
LONG_RUN = 25
ALWAYS_ACCEPTS = 0.95
MIN_DECISIONS = 20


@dataclass(frozen=True)
class Patterns:
    longest_run: int
    run_category: str  # the category of the longest run ("" when none)
    shown: int  # decisions on tasks that showed the model's suggestion
    accepted: int  # of those, decided as suggested
    flags: list[str]

    @property
    def accept_share(self) -> float | None:
        return self.accepted / self.shown if self.shown else None


def longest_run(categories: list[int]) -> tuple[int, int | None]:
    """The longest run of one value in a row, and that value."""
    best, best_value, run, previous = 0, None, 0, None
    for value in categories:
        run = run + 1 if value == previous else 1
        previous = value
        if run > best:
            best, best_value = run, value
    return best, best_value


def patterns(user: User, *, since: datetime, median_seconds: float | None) -> Patterns:
    reviews = Review.objects.filter(reviewer=user, created_at__gte=since)
    ordered = list(
        reviews.filter(bulk=False).order_by("created_at", "id").values_list("category", flat=True)
    )
    run, run_category = longest_run(ordered)
    shown = reviews.exclude(blind_task_q("task__")).filter(agreed_with_model__isnull=False)
    counts = shown.aggregate(n=Count("id"), yes=Count("id", filter=Q(agreed_with_model=True)))
    flags = []
    total = reviews.count()
    fast = median_seconds is not None and median_seconds < FAST_MEDIAN_SECONDS
    if total >= MIN_DECISIONS and fast:
        flags.append(f"implausibly fast: median {median_seconds:.1f} s")
    if run >= LONG_RUN:
        flags.append(f"{run} decisions in a row of one category")
    if counts["n"] >= MIN_DECISIONS and counts["yes"] / counts["n"] >= ALWAYS_ACCEPTS:
        flags.append(f"accepts the suggestion {counts['yes'] / counts['n']:.0%} of the time")
    name = ""
    if run_category is not None:
        name = Category.objects.filter(pk=run_category).values_list("name", flat=True).first() or ""
    return Patterns(run, name, counts["n"], counts["yes"], flags)


@dataclass(frozen=True)
class CategoryRow:
    category: str
    decisions: int
    accept_share: float | None
    median_seconds: float | None
    checked: int
    agreed: int

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.checked if self.checked else None


def per_category(user: User, *, since: datetime) -> list[CategoryRow]:
    """The analyst's decisions by the category chosen: where a flag comes from."""
    reviews = Review.objects.filter(reviewer=user, created_at__gte=since)
    rows = []
    for category in Category.objects.order_by("display_order", "pk"):
        mine = reviews.filter(category=category)
        seconds = [s for s in mine.values_list("seconds_spent", flat=True) if s is not None]
        shown = mine.exclude(blind_task_q("task__")).filter(agreed_with_model__isnull=False)
        n_shown = shown.count()
        checks = ReviewCheck.objects.filter(first_review__in=mine, agreed__isnull=False).aggregate(
            n=Count("id"), yes=Count("id", filter=Q(agreed=True))
        )
        decisions = mine.count()
        if not decisions:
            continue
        rows.append(
            CategoryRow(
                category=category.name,
                decisions=decisions,
                accept_share=shown.filter(agreed_with_model=True).count() / n_shown
                if n_shown
                else None,
                median_seconds=statistics.median(seconds) if seconds else None,
                checked=checks["n"],
                agreed=checks["yes"],
            )
        )
    return rows
