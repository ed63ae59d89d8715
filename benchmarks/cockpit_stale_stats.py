"""/cockpit/'s open-tasks-per-category query on stale planner statistics (PostgreSQL).

The probe saw /cockpit/ take 40 s on a large table until ANALYZE. The query was
`queue_by_category` (triage/cockpit/figures.py): each open task's latest prediction,
`ORDER BY id DESC LIMIT 1` per item. With statistics missing (a bulk load before
autovacuum's ANALYZE), the planner walked the predictions' primary key backwards for
every task, through the whole table. The index prediction_item_latest_idx (item, -id)
answers each task from one index entry whatever the statistics say.

Loads N items with a prediction each and open tasks on the oldest (the worst case for a
backward walk) into a fresh database (default `triage_stale_bench`, dropped at the end),
with autovacuum off on those tables, then times the overview and the query alone, with
the statistics reset to "never analysed": first without the index (the baseline, as
before this change), then with it, in the same run.

    .venv/bin/python benchmarks/cockpit_stale_stats.py                 # 200,000 items
    .venv/bin/python benchmarks/cockpit_stale_stats.py --items 50000
"""

import argparse
import os
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django_env import setup_django  # noqa: E402

TABLES = ("triage_item", "triage_prediction", "reviews_reviewtask")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432/")
    parser.add_argument("--name", default="triage_stale_bench")
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--open-tasks", type=int, default=300)
    args = parser.parse_args()
    with psycopg.connect(args.server + "postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{args.name}"')
        admin.execute(f'CREATE DATABASE "{args.name}"')
    os.environ["DATABASE_URL"] = args.server + args.name
    try:
        run(args)
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(args.server + "postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{args.name}"')


def run(args: argparse.Namespace) -> None:
    setup_django()
    from django.db import connection

    from triage.cockpit.figures import overview, queue_by_category
    from triage.models import Category, Item, Prediction, ReviewTask

    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    categories = [
        Category.objects.create(slug=f"c{i}", name=f"C{i}", display_order=i) for i in range(3)
    ]
    for start in range(0, args.items, 20_000):
        size = min(20_000, args.items - start)
        items = Item.objects.bulk_create(
            Item(external_id=f"big-{n}", text="t", status="resolved")
            for n in range(start, start + size)
        )
        Prediction.objects.bulk_create(
            Prediction(item=item, label=categories[n % 3], confidence=0.9, scores=[],
                       route="auto", reason="above_threshold")
            for n, item in enumerate(items)
        )  # fmt: skip
    oldest = Item.objects.order_by("id").values_list("id", flat=True)[: args.open_tasks]
    ReviewTask.objects.bulk_create(ReviewTask(item_id=i, reason="low_confidence") for i in oldest)
    print(f"{args.items:,} items and predictions, {args.open_tasks} open tasks on the oldest")

    def stale() -> None:
        # As after a bulk load that autovacuum has not analysed yet.
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE pg_class SET reltuples = -1, relpages = 0 WHERE relname = ANY(%s)",
                [list(TABLES)],
            )
            cursor.execute("DISCARD PLANS")

    def timed(label: str) -> None:
        stale()
        start = time.perf_counter()
        queue_by_category()
        query = time.perf_counter() - start
        stale()
        start = time.perf_counter()
        overview()
        whole = time.perf_counter() - start
        print(f"{label:<44} queue_by_category {query:7.2f} s   overview {whole:7.2f} s")

    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX prediction_item_latest_idx")
    timed("baseline: without prediction_item_latest_idx")
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE INDEX prediction_item_latest_idx ON triage_prediction (item_id, id DESC)"
        )
    timed("with prediction_item_latest_idx")


if __name__ == "__main__":
    main()
