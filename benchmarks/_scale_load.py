"""Loading benchmarks/scale.py's million rows with COPY (psycopg 3 `cursor.copy`)."""

import argparse
import json
import random
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

WORDS = [
    "water",
    "food",
    "shelter",
    "tents",
    "medical",
    "help",
    "need",
    "people",
    "village",
    "road",
    "bridge",
    "flood",
    "rain",
    "earthquake",
    "storm",
    "damage",
    "hospital",
    "school",
    "children",
    "family",
    "please",
    "send",
    "urgent",
    "report",
    "situation",
    "area",
    "north",
    "south",
    "team",
    "supplies",
    "truck",
    "fuel",
    "power",
    "phone",
    "lines",
    "down",
]  # noqa: SIM905


class Step:
    """Prints how long a step took, as it finishes."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> "Step":
        self.started = time.perf_counter()
        print(f"... {self.name}", flush=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started
        print(f"    {self.name}: {self.seconds:.1f}s", flush=True)


def copy_rows(model: Any, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """COPY rows into the model's table. Columns the caller does not give (fields other
    apps may add later) get their model default, so the loader survives new fields."""
    from django.db import connection

    given = list(columns)
    extra = [
        f
        for f in model._meta.concrete_fields
        if f.column not in given and not (f.primary_key and f.column == "id")
    ]
    defaults = []
    for f in extra:
        value = f.get_default()
        defaults.append(json.dumps(value) if f.get_internal_type() == "JSONField" else value)
    names = ", ".join(f'"{c}"' for c in given + [f.column for f in extra])
    count = 0
    with connection.cursor() as cursor:
        raw = cursor.connection.cursor()
        with raw.copy(f"COPY {model._meta.db_table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([*row, *defaults])
                count += 1
    return count


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(8, 30)))


def load(args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    """The million rows. Items have ids 1..N in received order:
    1..E resolved (examples), E+1..E+T waiting in review, the last 1,000 still received
    (half of them overdue for the sweep), the rest routed."""
    import numpy as np
    from django.contrib.auth.models import User
    from django.db import connection
    from django.utils import timezone

    from triage.management.demo_data import DESKS
    from triage.ml.encoder import configured_spec, encoder_for
    from triage.models import Category, Embedding, Item, Prediction, ReviewTask
    from triage.training.models import TrainingExample, split_for

    n, tasks, examples = args.items, args.open_tasks, args.examples
    received = 1000
    if examples + tasks + received > n:
        raise SystemExit("scale: --examples + --open-tasks + 1,000 must not exceed --items")
    categories = [
        Category.objects.update_or_create(slug=slug, defaults={"name": name})[0]
        for slug, (name, _) in DESKS.items()
    ]
    cat_ids = [c.pk for c in categories]
    from analyst_load import ensure_analysts

    # The analysts decided the history: their own claimed-and-completed tasks are what a
    # "my current task" lookup must not wade through.
    reviewers = list(
        User.objects.filter(username__in=ensure_analysts(args.analysts)).values_list(
            "pk", flat=True
        )
    )
    now = timezone.now()
    span = timedelta(days=30)
    stuck_after = timedelta(seconds=120)

    def received_at(i: int) -> datetime:
        if i > n - received:  # the still-received tail: half overdue, half fresh
            return now - (stuck_after * 3 if i <= n - received // 2 else timedelta(seconds=5))
        return now - span + span * (i / n)

    def status(i: int) -> str:
        if i <= examples:
            return Item.Status.RESOLVED
        if i <= examples + tasks:
            return Item.Status.IN_REVIEW
        if i > n - received:
            return Item.Status.RECEIVED
        return Item.Status.ROUTED

    label = [rng.randrange(3) for _ in range(n + 1)]
    figures: dict[str, Any] = {}
    with Step(f"COPY {n:,} items") as step:
        copied = copy_rows(
            Item,
            ["id", "external_id", "text", "metadata", "source", "received_at", "status"]
            + ["final_category_id", "decided_by", "decided_at", "classify_attempts"],
            (
                (
                    i,
                    f"s-{i:07d}",
                    sentence(rng),
                    "{}",
                    "api",
                    received_at(i),
                    status(i),
                    None if status(i) in {"received", "in_review"} else cat_ids[label[i]],
                    "" if status(i) in {"received", "in_review"} else "model:v1",
                    None if status(i) in {"received", "in_review"} else received_at(i),
                    0,
                )
                for i in range(1, n + 1)
            ),
        )
    figures["copy_items_per_s"] = copied / step.seconds
    with connection.cursor() as cursor:
        cursor.execute("SELECT setval(pg_get_serial_sequence('triage_item', 'id'), %s)", [n])

    def scores(i: int) -> str:
        top = label[i]
        conf = 0.34 + 0.65 * rng.random()
        rest = (1 - conf) / 2
        return json.dumps(
            [{"label": categories[top].slug, "confidence": round(conf, 6)}]
            + [
                {"label": categories[k].slug, "confidence": round(rest, 6)}
                for k in range(3)
                if k != top
            ]
        )

    with Step(f"COPY {n - received:,} predictions"):
        copy_rows(
            Prediction,
            ["item_id", "label_id", "confidence", "scores", "route", "reason", "threshold"]
            + ["mode", "created_at"],
            (
                (
                    i,
                    cat_ids[label[i]],
                    0.5,
                    scores(i),
                    "review" if examples < i <= examples + tasks else "auto",
                    "below_threshold" if examples < i <= examples + tasks else "above_threshold",
                    0.9,
                    "threshold",
                    received_at(i) + timedelta(seconds=1),
                )
                for i in range(1, n - received + 1)
            ),
        )
    with Step(f"COPY {tasks:,} open and {examples:,} completed review tasks"):
        copy_rows(
            ReviewTask,
            ["item_id", "reason", "priority", "created_at", "completed_at", "claimed_by_id"]
            + ["lease_expires_at", "senior_only"],
            (
                (
                    i,
                    "audit_sample" if i % 20 == 0 else "low_confidence",
                    0 if i % 20 == 0 else 10,
                    received_at(i),
                    received_at(i) + timedelta(minutes=5) if i <= examples else None,
                    reviewers[i % len(reviewers)] if i <= examples else None,
                    received_at(i) + timedelta(minutes=10) if i <= examples else None,
                    False,
                )
                for i in range(1, examples + tasks + 1)
            ),
        )
    encoder = encoder_for(configured_spec())
    centroids = np.random.default_rng(0).normal(size=(3, encoder.dim)).astype(np.float32)
    noise = np.random.default_rng(1)
    with Step(f"COPY {examples:,} training examples and their {encoder.dim}-d embeddings"):
        texts = dict(Item.objects.filter(pk__lte=examples).values_list("pk", "text").iterator())
        copy_rows(
            TrainingExample,
            ["item_id", "text", "category_id", "source", "split", "created_at"],
            (
                (i, texts[i], cat_ids[label[i]], "review", split_for(f"s-{i:07d}"), received_at(i))
                for i in range(1, examples + 1)
            ),
        )

        def vector(i: int) -> bytes:
            v = centroids[label[i]] + 2.2 * noise.normal(size=encoder.dim).astype(np.float32)
            return (v / np.linalg.norm(v)).astype(np.float32).tobytes()

        copy_rows(
            Embedding,
            ["item_id", "encoder", "vector"],
            ((i, encoder.encoder_id, vector(i)) for i in range(1, examples + 1)),
        )
    with Step("VACUUM ANALYZE"), connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    figures["encoder"] = encoder
    return figures
