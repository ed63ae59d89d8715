"""What the analysts' queue costs per request at a large backlog (server side, one analyst).

Seeds `--tasks` open review tasks (each item with a low-confidence prediction) in a fresh
PostgreSQL database, then times, in-process through Django's test client as an analyst:

- baseline: the bare services, claim_next_task + submit_review, no HTTP or rendering;
- decide: POST a decision by htmx (records it, claims the next task, renders its card);
- decide, filtered: the same with the queue filtered by a suggested category;
- queue page: GET /reviews/ with nothing held (the start panel: counts per reason, the
  age of the oldest task, and the breakdown that must add up to the open tasks);
- heartbeat: POST the lease renewal;
- claim alone, oldest first (the baseline) beside smallest margin first (the policy's
  queue order, every claim by margin), with each query's plan.

Prints the median and p95 (ms) of each. Nothing is asserted.

    .venv/bin/python benchmarks/review_queue.py --postgres postgres://postgres@127.0.0.1:5432/x
    .venv/bin/python benchmarks/review_queue.py --postgres URL --tasks 200000 --repeat 200

To compare two versions of the code in one session, run each checkout's copy with its own
--database (the figures are only comparable when measured back to back on one machine).
"""

import argparse
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django_env import fresh_postgres_database, setup_django  # noqa: E402

TASK_ID = re.compile(r'data-task-id="(\d+)"')


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]


def timed(repeat: int, step: Callable[[], object]) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", required=True, help="server URL; a fresh database is made")
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument(
        "--database",
        "--name",
        dest="database",
        default="triage_bench_queue",
        help="name of the database made afresh",
    )
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = fresh_postgres_database(args.postgres, args.database)
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    setup_django()

    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from reviews.claims import claim_next_task
    from reviews.decisions import submit_review
    from triage.access import ANALYSTS
    from triage.management.demo_data import DESKS
    from triage.models import Category, Item, Prediction, ReviewTask

    # DEBUG off serves hashed static names from the manifest, as production does.
    call_command("collectstatic", "--noinput", verbosity=0)
    categories = [
        Category.objects.create(slug=slug, name=name, description=description)
        for slug, (name, description) in DESKS.items()
    ]
    print(f"seeding {args.tasks:,} open tasks…", flush=True)
    seed_start = time.perf_counter()
    chunk = 10_000
    for start in range(0, args.tasks, chunk):
        n = min(chunk, args.tasks - start)
        items = Item.objects.bulk_create(
            Item(
                external_id=f"bench-{start + i}",
                text=f"message {start + i}: we need water and tents near the school " * 3,
                metadata={"channel": "sms", "n": start + i},
                status=Item.Status.IN_REVIEW,
            )
            for i in range(n)
        )
        Prediction.objects.bulk_create(
            Prediction(
                item=item,
                label=categories[i % len(categories)],
                confidence=0.55,
                scores=[{"label": categories[i % len(categories)].slug, "confidence": 0.55}],
                route="review",
                reason="below_threshold",
                threshold=0.9,
            )
            for i, item in enumerate(items)
        )
        ReviewTask.objects.bulk_create(
            ReviewTask(
                item=item,
                reason=ReviewTask.Reason.LOW_CONFIDENCE,
                priority=10,
                margin=((start + i) * 0.618034) % 1,  # spread, and unrelated to age
            )
            for i, item in enumerate(items)
        )
    # Autovacuum would analyze tables this size soon after such inserts; without fresh
    # statistics the planner guesses badly (a latest-prediction lookup scans the pkey).
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"seeded in {time.perf_counter() - seed_start:.0f} s", flush=True)

    analyst = User.objects.create_user("bench-analyst")  # force_login: no password needed
    analyst.groups.add(Group.objects.get(name=ANALYSTS))
    client = Client()
    client.force_login(analyst)
    htmx = {"HTTP_HX_REQUEST": "true"}
    slugs = [c.slug for c in categories]

    def bare() -> None:
        task = claim_next_task(user=analyst)
        assert task is not None
        submit_review(task_id=task.pk, user=analyst, category_slug=slugs[0])

    results: dict[str, list[float]] = {
        "baseline: claim + decide services": timed(args.repeat, bare)
    }

    task = claim_next_task(user=analyst)
    assert task is not None
    held = [task.pk]

    def decide() -> None:
        response = client.post(f"/reviews/tasks/{held[0]}/decide", {"category": slugs[1]}, **htmx)
        assert response.status_code == 200, response.status_code
        held[0] = int(TASK_ID.search(response.content.decode())[1])

    results["decide (htmx: record, claim next, render card)"] = timed(args.repeat, decide)
    client.get(f"/reviews/?category={slugs[2]}&reason=")

    results["heartbeat"] = timed(
        args.repeat,
        lambda: client.post(f"/reviews/tasks/{held[0]}/heartbeat", **htmx),
    )
    results["decide, filtered by suggested category"] = timed(args.repeat, decide)
    ReviewTask.objects.filter(claimed_by=analyst, completed_at__isnull=True).update(
        claimed_by=None, lease_expires_at=None
    )
    results["queue page, nothing held (counts)"] = timed(
        args.repeat, lambda: client.get("/reviews/")
    )

    results |= claim_orders(args.repeat, analyst)
    open_now = ReviewTask.objects.open().count()
    print(f"\n{open_now:,} open tasks at the end; {args.repeat} requests each\n")
    print(f"{'':50} {'median ms':>10} {'p95 ms':>10}")
    for name, samples in results.items():
        print(f"{name:50} {statistics.median(samples):10.1f} {p95(samples):10.1f}")


def claim_orders(repeat: int, analyst) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    """The claim alone in each queue order, the orders taking turns (so a busy machine
    slows both alike); each claimed task is finished untimed."""
    from django.conf import settings
    from django.db import transaction
    from django.utils import timezone

    from reviews.claims import claim_candidates, claim_next_task
    from triage.models import ReviewTask, RoutingPolicy

    settings.TRIAGE_QUEUE_OLDEST_SHARE = 0.0  # every claim by margin in that order
    orders = list(RoutingPolicy.QueueOrder)
    results: dict[str, list[float]] = {}
    for _ in range(repeat):
        for order in orders:
            RoutingPolicy.objects.update_or_create(pk=1, defaults={"queue_order": order.value})
            start = time.perf_counter()
            task = claim_next_task(user=analyst)
            elapsed = (time.perf_counter() - start) * 1000
            results.setdefault(f"claim alone, {order.label.split(' (')[0]}", []).append(elapsed)
            assert task is not None
            ReviewTask.objects.filter(pk=task.pk).update(completed_at=timezone.now())
    for order in orders:
        with transaction.atomic():
            _, others = claim_candidates(
                timezone.now(),
                user=analyst,
                senior=False,
                smallest_margin=order == RoutingPolicy.QueueOrder.SMALLEST_MARGIN,
            )
            plan = others[:1].explain()
        scans = [line.strip() for line in plan.splitlines() if "Scan" in line]
        print(f"plan, {order.label.split(' (')[0]}: " + "; ".join(scans), flush=True)
    return results


if __name__ == "__main__":
    main()
