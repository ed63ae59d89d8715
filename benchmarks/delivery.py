"""Webhook delivery through the outbox: throughput, commit→receipt latency, and what the
outbox costs the decision path. Needs PostgreSQL and Redis (workers are separate processes).

Part 1, delivery. N decisions (`item.routed` events written by events.emit_many, 100 per
transaction, as classification writes them) are committed as fast as one process can,
while Celery workers (prefork, 1 and then 4 processes) deliver them, signed, to a
receiver in its own process that verifies every signature. Figures: events/s (N over
first commit → last receipt) and p50/p95 of commit → receipt per event. Baseline, same
run: the same receiver fed signed POSTs by one bare loop (no database, no Celery).

Part 2, the outbox's cost. Ingest-and-classify (ingest.ingest_items + classify_items
with the real encoder and a trained champion) of fresh 1,000-item batches, alternating
rounds with no endpoint and with one active endpoint (events, deliveries and queued
delivery tasks on Redis; no worker consumes them here). Target: at most 10% slower.

Run from the project root:
  .venv/bin/python benchmarks/delivery.py [--decisions 10000] [--workers 1,4]
      [--postgres postgres://postgres@127.0.0.1:5432/triage_bench]
      [--redis redis://127.0.0.1:6379/7] [--classify-rounds 3]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _django_env import fresh_postgres_database, setup_django  # noqa: E402
from _webhook_receiver import read_receipts, start_receiver  # noqa: E402

BATCH = 100


# ---------------------------------------------------------------------------- part 1


def baseline_posts(n: int, work: Path) -> float:
    """Signed POSTs from one bare loop: the receiver's pace without Triage around it."""
    from triage.actions.transport import post, signed_headers
    from triage.actions.models import generate_secret

    secret = generate_secret()
    receiver, port, _ = start_receiver(work, n, secret)
    url = f"http://127.0.0.1:{port}/hooks"
    started = time.perf_counter()
    for i in range(n):
        body = json.dumps({"id": f"evt_base{i}", "type": "item.routed", "data": {"n": i}})
        headers = signed_headers(
            secret=secret, msg_id=f"evt_base{i}", timestamp=int(time.time()), body=body
        )
        result = post(
            url,
            body=body.encode(),
            headers=headers | {"Content-Type": "application/json"},
            timeout=10,
        )
        assert result.ok, result
    elapsed = time.perf_counter() - started
    receiver.wait(30)
    return n / elapsed


def start_workers(concurrency: int, queue: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "triage", "worker", "--pool", "prefork",
            "--concurrency", str(concurrency), "-Q", queue, "-n", f"{queue}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "error",
        ],
        cwd=ROOT,
        env=env,
    )  # fmt: skip


def wait_for_workers(app, queue: str, timeout: float = 60) -> None:
    """Until our own workers answer a ping (not some other worker on the same broker)."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.control.ping(destination=[f"{queue}@{socket.gethostname()}"], timeout=1.0):
            return
    raise RuntimeError("the workers did not come up")


def wait_for_receipts(receiver: subprocess.Popen, endpoint, stall: float = 120) -> None:
    """Until the receiver has every event, or no delivery succeeded for `stall` seconds."""
    from triage.actions.models import Delivery

    done, last_change = -1, time.monotonic()
    while receiver.poll() is None:
        now_done = Delivery.objects.filter(endpoint=endpoint, state="succeeded").count()
        if now_done != done:
            done, last_change = now_done, time.monotonic()
        elif time.monotonic() - last_change > stall:
            print(f"deliveries stalled at {done}; stopping the receiver", flush=True)
            receiver.terminate()
        time.sleep(1)
    receiver.wait(30)


def delivery_round(n: int, concurrency: int, work: Path, worker_env: dict[str, str]) -> dict:
    from django.db import transaction
    from django.db.models import Count

    from triage.actions.events import EventType, NewEvent, emit_many, item_data
    from triage.actions.models import Delivery, Endpoint
    from triage.celery import app
    from triage.models import Category, Item

    category = Category.objects.get(slug="request")
    Endpoint.objects.update(is_active=False)
    endpoint = Endpoint(url="http://127.0.0.1:1/placeholder")
    receiver, port, out_file = start_receiver(work, n, endpoint.secret)
    endpoint.url = f"http://127.0.0.1:{port}/hooks"
    endpoint.save()

    # One queue for the whole run (Celery caches the default queue at first use); each
    # round's workers start after the previous round's have stopped.
    queue = app.conf.task_default_queue
    workers = start_workers(concurrency, queue, worker_env)
    wait_for_workers(app, queue)

    tag = uuid.uuid4().hex[:6]
    items = Item.objects.bulk_create(
        Item(external_id=f"d-{tag}-{i}", text=f"we need water and tents, message {i}")
        for i in range(n)
    )
    committed: dict[str, float] = {}
    started = time.time()
    for start in range(0, n, BATCH):
        with transaction.atomic():
            stamp: list[float] = []
            # Registered before emit_many's own hand-off, so it runs first after the commit.
            transaction.on_commit(lambda stamp=stamp: stamp.append(time.time()))
            events = emit_many(
                [
                    NewEvent(
                        type=EventType.ITEM_ROUTED,
                        item_id=item.pk,
                        category_id=category.pk,
                        data=item_data(
                            item,
                            category=category,
                            decided_by="model:v1",
                            reason="above_threshold",
                            confidence=0.97,
                            model_version=1,
                        ),
                    )
                    for item in items[start : start + BATCH]
                ]
            )
        for event in events:
            committed[event.event_id] = stamp[0]
    produced = time.time() - started
    try:
        wait_for_receipts(receiver, endpoint)
    finally:
        workers.terminate()
        workers.wait(60)
    receipts = read_receipts(out_file)
    latencies = sorted(receipts[e][0] - committed[e] for e in committed if e in receipts)
    last = max(at for at, _ in receipts.values())
    states = dict(
        Delivery.objects.filter(endpoint=endpoint).values_list("state").annotate(n=Count("id"))
    )
    return {
        "workers": concurrency,
        "decisions": n,
        "received": len(receipts),
        "signatures_ok": sum(ok for _, ok in receipts.values()),
        "events_per_s": len(receipts) / (last - min(committed.values())),
        "commit_rate_per_s": n / produced,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
        "delivery_states": states,
    }


# ---------------------------------------------------------------------------- part 2


def classify_cost(rounds: int, batch: int, history: int) -> dict:
    import random

    from triage import training
    from triage.actions.models import Endpoint, Event
    from triage.api import ingest
    from triage.api.intake import ItemIn
    from triage.classify import service
    from triage.management.demo_data import DESKS, load_messages
    from triage.models import Category, RoutingPolicy

    categories = {c.slug: c for c in Category.objects.all()}
    train = load_messages("train")
    sample = random.Random(0).sample(train, history)
    hist = [ItemIn(external_id=f"h-{m.id}", text=m.text, label=m.desk) for m in sample]
    for start in range(0, len(hist), 1000):
        ingest.import_history(items=hist[start : start + 1000], categories=categories)
    training.retrain(actor="benchmark")
    # Every item auto-routed: each decision writes an event (the most the outbox can cost).
    RoutingPolicy.objects.update_or_create(
        pk=1, defaults={"default_threshold": 0.0, "target_precision": None, "audit_rate": 0}
    )
    texts = [m.text for m in load_messages("validation") + load_messages("test")]
    assert set(DESKS) <= set(categories)
    Endpoint.objects.update(is_active=False)
    endpoint = Endpoint.objects.create(url="http://127.0.0.1:9/never-consumed", is_active=False)

    def one_round(label: str, offset: int) -> float:
        Endpoint.objects.filter(pk=endpoint.pk).update(is_active=label == "endpoint")
        items = [
            ItemIn(external_id=f"c-{label}-{offset}-{i}", text=texts[(offset + i) % len(texts)])
            for i in range(batch)
        ]
        started = time.perf_counter()
        result = ingest.ingest_items(items=items)
        service.classify_items(item_ids=[i.pk for i in result.created])
        return time.perf_counter() - started

    one_round("warm-up", 0)
    times: dict[str, list[float]] = {"none": [], "endpoint": []}
    ratios = []
    for r in range(rounds):
        # Back to back, in alternating order: a load swing on a shared machine hits both.
        order = ["none", "endpoint"] if r % 2 == 0 else ["endpoint", "none"]
        pair = {}
        for label in order:
            pair[label] = one_round(label, (r * 2 + order.index(label) + 1) * batch)
            times[label].append(pair[label])
        ratios.append(pair["endpoint"] / pair["none"])
    none = sum(times["none"])
    with_endpoint = sum(times["endpoint"])
    return {
        "batch": batch,
        "rounds": rounds,
        "items_per_s_none": rounds * batch / none,
        "items_per_s_endpoint": rounds * batch / with_endpoint,
        "overhead_pct": 100 * (with_endpoint / none - 1),
        "paired_median_overhead_pct": 100 * (statistics.median(ratios) - 1),
        "paired_ratios": [round(x, 3) for x in ratios],
        "events_written": Event.objects.filter(item__external_id__startswith="c-endpoint").count(),
    }


# ---------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=10_000)
    parser.add_argument("--workers", default="1,4")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/triage_bench")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/7")
    parser.add_argument("--classify-rounds", type=int, default=3)
    parser.add_argument("--classify-batch", type=int, default=1000)
    parser.add_argument("--history", type=int, default=1500)
    parser.add_argument("--skip-classify", action="store_true")
    args = parser.parse_args()

    name = urlsplit_path(args.postgres)
    db_url = fresh_postgres_database(args.postgres, name)
    os.environ["DATABASE_URL"] = db_url
    os.environ["CELERY_BROKER_URL"] = args.redis
    os.environ["TRIAGE_WEBHOOK_ALLOW_PRIVATE"] = "1"
    work = setup_django(workdir=tempfile.mkdtemp(prefix="triage-bench-delivery-"))
    print(f"work dir {work}; database {db_url}; broker {args.redis}", flush=True)

    from triage.management.demo_data import DESKS
    from triage.models import Category

    for slug, (label, description) in DESKS.items():
        Category.objects.get_or_create(
            slug=slug, defaults={"name": label, "description": description, "action_queue": slug}
        )
    worker_env = os.environ | {"DJANGO_SETTINGS_MODULE": "triage.settings"}
    from triage.celery import app

    app.conf.task_default_queue = f"bench-{uuid.uuid4().hex[:8]}"

    results: dict = {}
    if not args.skip_classify:
        print("part 2: ingest-and-classify, no endpoint vs one endpoint …", flush=True)
        results["classify"] = classify_cost(args.classify_rounds, args.classify_batch, args.history)
        print("part 2 result: " + json.dumps(results["classify"]), flush=True)
    print("baseline: bare signed POSTs …", flush=True)
    results["baseline_posts_per_s"] = baseline_posts(min(args.decisions, 2000), work)
    print(f"baseline result: {results['baseline_posts_per_s']:.0f} POST/s", flush=True)
    results["delivery"] = []
    for concurrency in [int(w) for w in args.workers.split(",")]:
        print(f"part 1: {args.decisions} decisions, {concurrency} worker process(es) …", flush=True)
        results["delivery"].append(delivery_round(args.decisions, concurrency, work, worker_env))
        print("part 1 result: " + json.dumps(results["delivery"][-1]), flush=True)

    print()
    print(f"baseline (one bare loop of signed POSTs): {results['baseline_posts_per_s']:.0f} POST/s")
    print(
        f"{'workers':>7} {'decisions':>9} {'received':>8} {'sig ok':>7} {'events/s':>9} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'commits/s':>9}"
    )
    for r in results["delivery"]:
        print(
            f"{r['workers']:>7} {r['decisions']:>9} {r['received']:>8} {r['signatures_ok']:>7} "
            f"{r['events_per_s']:>9.0f} {r['p50_ms']:>8.0f} {r['p95_ms']:>8.0f} "
            f"{r['commit_rate_per_s']:>9.0f}  {r['delivery_states']}"
        )
    if "classify" in results:
        c = results["classify"]
        print(
            f"ingest+classify ({c['rounds']}×{c['batch']} items each, alternating): "
            f"{c['items_per_s_none']:.0f} items/s without an endpoint, "
            f"{c['items_per_s_endpoint']:.0f} with one → outbox overhead {c['overhead_pct']:+.1f}% "
            f"(median of paired rounds {c['paired_median_overhead_pct']:+.1f}%) "
            f"({c['events_written']} events written)"
        )
    print("RESULT_JSON " + json.dumps(results))


def urlsplit_path(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path.lstrip("/") or "triage_bench"


if __name__ == "__main__":
    main()
