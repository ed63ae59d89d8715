"""Webhook delivery through the outbox: throughput, commit→receipt latency, a burst's drain
time, and what the outbox costs the decision path. Needs PostgreSQL and Redis (workers
are separate processes).

Baselines, same run: the receiver fed signed POSTs by one bare loop (no database, no
Celery), a new connection per POST (`transport.post`) and one kept-alive connection.

Part 1, delivery. Decisions are `item.routed` events written by events.emit_many, as
classification writes them; Celery workers (prefork) deliver them, signed, in batches per
endpoint, to a receiver in its own process that verifies every signature and counts
each message id's arrivals (exactly once expected: no worker dies here).
- burst: N decisions (100 per transaction) committed as fast as one process can, with 1
  and then 4 worker processes: events/s (N over first commit → last receipt), the drain
  time (first commit → last receipt, and last commit → last receipt) and p50/p95 of
  commit → receipt.
- steady: 100 decisions/s (10 per transaction every 0.1 s) for --steady-seconds, with
  --steady-workers processes: p50/p95 of commit → receipt.
- in-process: one deliver_endpoint call over 1,000 due deliveries in this process:
  queries and milliseconds per delivery.

Part 2, the outbox's cost. Ingest-and-classify (ingest.ingest_items + classify_items
with the real encoder and a trained champion) of fresh 1,000-item batches, alternating
rounds with no endpoint and with one active endpoint (events, deliveries and the
endpoint's task queued on Redis; no worker consumes them here). Target: at most 10% slower.

Run from the project root:
  .venv/bin/python benchmarks/delivery.py [--decisions 10000] [--workers 1,4]
      [--steady-seconds 30] [--steady-workers 1]
      [--postgres postgres://postgres@127.0.0.1:5432/triage_bench]
      [--redis redis://127.0.0.1:6379/7] [--classify-rounds 3] [--skip-classify]
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
from _outbox_cost import classify_cost  # noqa: E402
from _webhook_receiver import read_receipts, start_receiver  # noqa: E402

BATCH = 100


# ---------------------------------------------------------------------------- baselines


def baseline_posts(n: int, work: Path, *, keep_alive: bool) -> float:
    """Signed POSTs from one bare loop: the receiver's pace without Triage around it."""
    from triage.actions.models import generate_secret
    from triage.actions.transport import EndpointConnection, post, signed_headers

    secret = generate_secret()
    receiver, port, _ = start_receiver(work, n, secret)
    url = f"http://127.0.0.1:{port}/hooks"
    connection = EndpointConnection(url, timeout=10)
    started = time.perf_counter()
    for i in range(n):
        body = json.dumps({"id": f"evt_base{i}", "type": "item.routed", "data": {"n": i}})
        headers = signed_headers(
            secret=secret, msg_id=f"evt_base{i}", timestamp=int(time.time()), body=body
        )
        headers |= {"Content-Type": "application/json"}
        if keep_alive:
            result = connection.post(body=body.encode(), headers=headers)
        else:
            result = post(url, body=body.encode(), headers=headers, timeout=10)
        assert result.ok, result
    elapsed = time.perf_counter() - started
    connection.close()
    receiver.wait(30)
    return n / elapsed


# ---------------------------------------------------------------------------- part 1


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
        time.sleep(0.5)
    receiver.wait(30)


def new_endpoint(work: Path, n: int):
    """A fresh endpoint (the only active one) and its receiver, expecting n events."""
    from triage.actions.models import Endpoint

    Endpoint.objects.update(is_active=False)
    endpoint = Endpoint(url="http://127.0.0.1:1/placeholder")
    receiver, port, out_file = start_receiver(work, n, endpoint.secret)
    endpoint.url = f"http://127.0.0.1:{port}/hooks"
    endpoint.save()
    return endpoint, receiver, out_file


def commit_decisions(items: list, per_commit: int, every: float | None) -> dict[str, float]:
    """Emit one item.routed event per item, per_commit per transaction, every `every`
    seconds (None: as fast as possible); each event's commit time."""
    from django.db import transaction

    from triage.actions.events import EventType, NewEvent, emit_many, item_data
    from triage.models import Category

    category = Category.objects.get(slug="request")
    committed: dict[str, float] = {}
    started = time.monotonic()
    for n, start in enumerate(range(0, len(items), per_commit)):
        if every is not None:
            time.sleep(max(0.0, started + n * every - time.monotonic()))
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
                    for item in items[start : start + per_commit]
                ]
            )
        for event in events:
            committed[event.event_id] = stamp[0]
    return committed


def make_items(n: int) -> list:
    from triage.models import Item

    tag = uuid.uuid4().hex[:6]
    return Item.objects.bulk_create(
        Item(external_id=f"d-{tag}-{i}", text=f"we need water and tents, message {i}")
        for i in range(n)
    )


def delivery_round(
    kind: str, n: int, concurrency: int, work: Path, worker_env: dict[str, str]
) -> dict:
    from django.db.models import Count

    from triage.actions.models import Delivery
    from triage.celery import app

    items = make_items(n)
    endpoint, receiver, out_file = new_endpoint(work, n)
    # One queue for the whole run (Celery caches the default queue at first use); each
    # round's workers start after the previous round's have stopped.
    queue = app.conf.task_default_queue
    workers = start_workers(concurrency, queue, worker_env)
    wait_for_workers(app, queue)
    try:
        if kind == "burst":
            committed = commit_decisions(items, BATCH, None)
        else:  # steady: 100 decisions/s
            committed = commit_decisions(items, 10, 0.1)
        wait_for_receipts(receiver, endpoint)
    finally:
        workers.terminate()
        workers.wait(60)
    receipts = read_receipts(out_file)
    latencies = sorted(receipts[e][0] - committed[e] for e in committed if e in receipts)
    first_commit, last_commit = min(committed.values()), max(committed.values())
    last = max(r[0] for r in receipts.values())
    states = dict(
        Delivery.objects.filter(endpoint=endpoint).values_list("state").annotate(n=Count("id"))
    )
    return {
        "kind": kind,
        "workers": concurrency,
        "decisions": n,
        "received": len(receipts),
        "duplicates": sum(r[2] - 1 for r in receipts.values()),
        "signatures_ok": sum(r[1] for r in receipts.values()),
        "resent_per_database": Delivery.objects.filter(endpoint=endpoint, attempts__gt=1).count(),
        "events_per_s": len(receipts) / (last - first_commit),
        "drain_s": last - first_commit,
        "after_last_commit_s": last - last_commit,
        "commit_rate_per_s": n / max(last_commit - first_commit, 1e-9),
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
        "delivery_states": states,
    }


def in_process_round(n: int, work: Path) -> dict:
    """deliver_endpoint over n due deliveries in this process: queries and time each."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from triage.actions import delivery

    items = make_items(n)
    endpoint, receiver, out_file = new_endpoint(work, n)
    # The commits queue the endpoint's task on Redis while no worker runs: this process
    # sends. (A later round's workers find those tasks' endpoint inactive.)
    commit_decisions(items, BATCH, None)
    sent = 0
    with CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        while sent < n:
            delivery.deliver_endpoint(endpoint_id=endpoint.pk)
            sent = endpoint.deliveries.filter(state="succeeded").count()
        elapsed = time.perf_counter() - started
    receiver.wait(30)
    return {
        "deliveries": n,
        "received": len(read_receipts(out_file)),
        "queries_per_delivery": len(captured.captured_queries) / n,
        "ms_per_delivery": 1000 * elapsed / n,
    }


# ---------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=10_000)
    parser.add_argument("--workers", default="1,4")
    parser.add_argument("--steady-seconds", type=float, default=30)
    parser.add_argument("--steady-workers", type=int, default=1)
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
    n_base = min(args.decisions, 2000)
    print("baselines: bare signed POSTs …", flush=True)
    results["baseline_posts_per_s"] = baseline_posts(n_base, work, keep_alive=False)
    results["baseline_keep_alive_posts_per_s"] = baseline_posts(n_base, work, keep_alive=True)
    print(
        f"baseline result: {results['baseline_posts_per_s']:.0f} POST/s, "
        f"{results['baseline_keep_alive_posts_per_s']:.0f} kept alive",
        flush=True,
    )
    print("in-process: deliver_endpoint over 1,000 due deliveries …", flush=True)
    results["in_process"] = in_process_round(1000, work)
    print("in-process result: " + json.dumps(results["in_process"]), flush=True)
    results["delivery"] = []
    for concurrency in [int(w) for w in args.workers.split(",")]:
        print(f"part 1: burst of {args.decisions}, {concurrency} worker process(es) …", flush=True)
        round_ = delivery_round("burst", args.decisions, concurrency, work, worker_env)
        results["delivery"].append(round_)
        print("part 1 result: " + json.dumps(round_), flush=True)
    steady_n = int(100 * args.steady_seconds)
    print(f"part 1: steady 100/s for {args.steady_seconds:g} s …", flush=True)
    round_ = delivery_round("steady", steady_n, args.steady_workers, work, worker_env)
    results["delivery"].append(round_)
    print("part 1 result: " + json.dumps(round_), flush=True)

    print()
    print(
        f"baseline (one bare loop of signed POSTs): {results['baseline_posts_per_s']:.0f} POST/s "
        f"with a connection each, {results['baseline_keep_alive_posts_per_s']:.0f} POST/s "
        "over one kept-alive connection"
    )
    p = results["in_process"]
    print(
        f"in-process deliver_endpoint: {p['queries_per_delivery']:.3f} queries and "
        f"{p['ms_per_delivery']:.2f} ms per delivery ({p['received']}/{p['deliveries']} received)"
    )
    print(
        f"{'round':>6} {'workers':>7} {'decisions':>9} {'received':>8} {'dups':>5} "
        f"{'sig ok':>7} {'events/s':>9} {'drain s':>8} {'+after s':>8} {'p50 ms':>8} "
        f"{'p95 ms':>8} {'commits/s':>9}"
    )
    for r in results["delivery"]:
        print(
            f"{r['kind']:>6} {r['workers']:>7} {r['decisions']:>9} {r['received']:>8} "
            f"{r['duplicates']:>5} {r['signatures_ok']:>7} {r['events_per_s']:>9.0f} "
            f"{r['drain_s']:>8.1f} {r['after_last_commit_s']:>8.1f} {r['p50_ms']:>8.0f} "
            f"{r['p95_ms']:>8.0f} {r['commit_rate_per_s']:>9.0f}  {r['delivery_states']}"
        )
    once = all(
        r["received"] == r["decisions"] == r["signatures_ok"] and r["duplicates"] == 0
        for r in results["delivery"]
    )
    print(f"every event received exactly once, signature verified: {'yes' if once else 'NO'}")
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
