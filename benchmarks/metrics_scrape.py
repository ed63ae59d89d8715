"""What one Prometheus scrape of /metrics costs as the tables grow.

Fills a throwaway database with N items, a prediction each (auto-routed above 0.8,
else to review), a review task for a tenth of them (half of them decided),
2,000 audit verdicts and 1,000 webhook deliveries (the tallies then filled by one
reconcile, as the rows bypass the services), then scrapes /metrics through
Django's test client (token auth, the collector's queries, the text format) and
prints the median and p95 beside a baseline measured in the same run: one
`SELECT count(*)` of the items table, the cheapest full look at the biggest table.

    .venv/bin/python benchmarks/metrics_scrape.py --items 100000
    .venv/bin/python benchmarks/metrics_scrape.py --items 1000000 \\
        --postgres postgres://postgres@127.0.0.1:5432/triage_bench_metrics
"""

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django_env import fresh_postgres_database, setup_django  # noqa: E402

CHUNK = 10_000


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]


def fill(n_items: int) -> None:
    import random

    from django.contrib.auth.models import User
    from django.db import transaction
    from django.utils import timezone

    from triage.actions.models import Delivery, Endpoint, Event
    from triage.models import Category, Item, Prediction, Review, ReviewTask
    from triage.monitoring.models import AuditSample

    rng = random.Random(7)
    categories = [
        Category.objects.create(slug=slug, name=slug, description=slug, action_queue=slug)
        for slug in ("request", "information", "not_relevant")
    ]
    analyst = User.objects.create_user("bench-analyst")
    now = timezone.now()
    for start in range(0, n_items, CHUNK):
        with transaction.atomic():
            size = min(CHUNK, n_items - start)
            confidences = [rng.random() for _ in range(size)]
            labels = [rng.choice(categories) for _ in range(size)]
            items = Item.objects.bulk_create(
                Item(
                    external_id=f"bench-{start + i}",
                    text="a message",
                    received_at=now - timedelta(seconds=n_items - start - i),
                    status=Item.Status.ROUTED if c > 0.8 else Item.Status.IN_REVIEW,
                    final_category=label if c > 0.8 else None,
                    decided_by="model:v1" if c > 0.8 else "",
                )
                for i, (c, label) in enumerate(zip(confidences, labels, strict=True))
            )
            predictions = Prediction.objects.bulk_create(
                Prediction(
                    item=item,
                    label=label,
                    confidence=c,
                    scores=[],
                    route="auto" if c > 0.8 else "review",
                    reason="above_threshold" if c > 0.8 else "below_threshold",
                )
                for item, c, label in zip(items, confidences, labels, strict=True)
            )
            # A task for every tenth item; every other one of them decided.
            tasks = ReviewTask.objects.bulk_create(
                ReviewTask(
                    item=item,
                    reason=ReviewTask.Reason.LOW_CONFIDENCE,
                    completed_at=now if n % 2 else None,
                )
                for n, item in enumerate(items[::10])
            )
            Review.objects.bulk_create(
                Review(
                    item=task.item,
                    task=task,
                    reviewer=analyst,
                    category=label,
                    agreed_with_model=True,
                )
                for task, label in zip(tasks[1::2], labels[10::20], strict=False)
            )
            if start == 0:
                AuditSample.objects.bulk_create(
                    AuditSample(
                        item=p.item,
                        prediction=p,
                        category=p.label,
                        probability=0.05,
                        audited_at=now,
                        correct=rng.random() < 0.9,
                    )
                    for p in predictions[:2000]
                )
                endpoint = Endpoint.objects.create(url="https://93.184.216.34/hook")
                events = Event.objects.bulk_create(
                    Event(type="item.routed", payload={}) for _ in range(1000)
                )
                Delivery.objects.bulk_create(
                    Delivery(event=e, endpoint=endpoint, state=rng.choice(Delivery.State.values))
                    for e in events
                )
        print(f"  {start + size:,} items", end="\r", flush=True)
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--scrapes", type=int, default=20)
    parser.add_argument("--postgres", help="server URL; a fresh database is made on it")
    args = parser.parse_args()
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    if args.postgres:
        os.environ["DATABASE_URL"] = fresh_postgres_database(
            args.postgres, args.postgres.rsplit("/", 1)[-1]
        )
    setup_django()

    from django.db import connection
    from django.test import Client

    from triage.models import ApiToken

    print(f"filling {args.items:,} items on {connection.vendor}…")
    fill(args.items)
    # The rows went in around the services: the tallies the scrape reads are filled once,
    # by a full count, as the migration that added them did.
    from triage.monitoring.reconcile import reconcile

    started = time.perf_counter()
    reconcile(repair=True, actor="benchmark")
    print(f"  tallies filled by reconcile in {time.perf_counter() - started:.1f}s")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE")
    _, token = ApiToken.issue("bench", scopes=["metrics"])
    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert client.get("/metrics", **headers).status_code == 200  # warm

    def timed(run) -> list[float]:
        samples = []
        for _ in range(args.scrapes):
            started = time.perf_counter()
            run()
            samples.append((time.perf_counter() - started) * 1000)
        return samples

    def count_items() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM triage_item")
            cursor.fetchone()

    def scrape() -> None:
        response = client.get("/metrics", **headers)
        assert response.status_code == 200

    baseline, scrapes = timed(count_items), timed(scrape)
    size = len(client.get("/metrics", **headers).content)
    print(f"{args.items:,} items, {args.scrapes} runs each, {connection.vendor}:")
    print(f"  baseline SELECT count(*) of items: median {statistics.median(baseline):8.1f} ms")
    print(
        f"  GET /metrics ({size:,} bytes):       median {statistics.median(scrapes):8.1f} ms, "
        f"p95 {p95(scrapes):.1f} ms"
    )


if __name__ == "__main__":
    main()
