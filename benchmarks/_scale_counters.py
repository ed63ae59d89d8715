"""Counters instead of counts (issue 20): what a single-item classify call and a scrape of
GET /metrics cost at scale, read from the tallies, beside the counting path before them
(benchmarks/_counters_before.py, patched in) in the same run.

On a database loaded by benchmarks/_scale_load.py (COPY, no tallies written) with a
champion: the tallies are first filled by `reconcile` (the one full count they need, as
the migration's backfill does; timed). Then, p50/p95 in ms:

- classify: `classify_items([one item])` on received items whose vectors are cached (the
  head, the routing policy with its audit rates, the writes), new and old path in turns;
- the same calls on empty tables: inside a transaction that empties the items and
  everything hanging off them (TRUNCATE … CASCADE) and is rolled back afterwards;
- GET /metrics through Django's test client (token auth, the collector, the text format).

Called by benchmarks/scale.py after its retrain step (measure_counters, report_lines), or
on its own, one process per size, each with a fresh database:

    .venv/bin/python benchmarks/_scale_counters.py --sizes 10000,1000000
    .venv/bin/python benchmarks/_scale_counters.py --sizes 10000 --calls 10   # a quick check
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def percentile(samples: list[float], q: int) -> float:
    ordered = sorted(samples)
    return ordered[max(0, -(-q * len(ordered) // 100) - 1)]


def figures(samples: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(samples), "p95": percentile(samples, 95)}


def _probe_items(n: int, encoder: Any, tag: str) -> list[int]:
    """Received items with a cached vector each, stored as ingest stores them."""
    import numpy as np

    from triage.models import Embedding, Item
    from triage.monitoring.tallies import tally_new_items

    items = Item.objects.bulk_create(
        Item(external_id=f"probe-{tag}-{time.time_ns()}-{i}", text=f"probe {i}") for i in range(n)
    )
    tally_new_items(items)
    rng = np.random.default_rng(len(tag))
    vectors = rng.normal(size=(n, encoder.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    Embedding.objects.bulk_create(
        Embedding(item_id=item.pk, encoder=encoder.encoder_id, vector=v.tobytes())
        for item, v in zip(items, vectors, strict=True)
    )
    return [item.pk for item in items]


def _time_classify(ids: list[int], old: list[int], calls: int) -> tuple[list[float], list[float]]:
    """Single-item calls, new and old path in turns (so drift in load hits both)."""
    from _counters_before import counting_path

    from triage.classify.service import classify_items

    def one(pk: int) -> float:
        started = time.perf_counter()
        assert classify_items(item_ids=[pk]) == 1
        return (time.perf_counter() - started) * 1000

    new_ms, old_ms = [], []
    for k in range(calls):
        new_ms.append(one(ids[k]))
        with counting_path():
            old_ms.append(one(old[k]))
    return new_ms, old_ms


def _time_scrapes(scrapes: int) -> tuple[list[float], list[float], int]:
    from _counters_before import counting_path
    from django.test import Client

    from triage.models import ApiToken

    _, token = ApiToken.issue(f"bench-counters-{time.time_ns()}", scopes=["metrics"])
    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    def scrape() -> float:
        started = time.perf_counter()
        response = client.get("/metrics", **headers)
        seconds = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, response.content[:200]
        return seconds

    scrape()  # warm
    new_ms, old_ms = [], []
    for _ in range(scrapes):
        new_ms.append(scrape())
        with counting_path():
            old_ms.append(scrape())
    size = len(client.get("/metrics", **headers).content)
    return new_ms, old_ms, size


def measure_counters(encoder: Any, *, calls: int = 30, scrapes: int = 20) -> dict[str, Any]:
    """The figures above, on the database as it is (a champion must be serving)."""
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    from django.conf import settings
    from django.db import connection, transaction

    from triage.models import Item, Prediction
    from triage.monitoring.reconcile import reconcile

    if "testserver" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    out: dict[str, Any] = {
        "items": Item.objects.count(),
        "predictions": Prediction.objects.count(),
    }
    started = time.perf_counter()
    out["reconcile_keys"] = len(reconcile(repair=True, actor="benchmark"))
    out["reconcile_s"] = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")

    # Warm: the champion's head and routing policy load on the first call.
    warm = _probe_items(2, encoder, "warm")
    _time_classify(warm[:1], warm[1:], 1)
    ids, old = _probe_items(calls, encoder, "new"), _probe_items(calls, encoder, "old")
    new_ms, old_ms = _time_classify(ids, old, calls)
    out["classify"] = {"new": figures(new_ms), "old": figures(old_ms)}

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE triage_item, triage_tally CASCADE")
        ids = _probe_items(calls + 1, encoder, "empty-new")
        old = _probe_items(calls + 1, encoder, "empty-old")
        _time_classify(ids[:1], old[:1], 1)
        new_ms, old_ms = _time_classify(ids[1:], old[1:], calls)
        out["classify_empty"] = {"new": figures(new_ms), "old": figures(old_ms)}
        transaction.set_rollback(True)

    new_ms, old_ms, size = _time_scrapes(scrapes)
    out["metrics"] = {"new": figures(new_ms), "old": figures(old_ms), "bytes": size}
    return out


def report_lines(r: dict[str, Any]) -> list[str]:
    c, e, m = r["classify"], r["classify_empty"], r["metrics"]

    def pair(f: dict[str, float]) -> str:
        return f"p50 {f['p50']:6.1f}  p95 {f['p95']:6.1f}"

    return [
        f"counters at {r['items']:,} items, {r['predictions']:,} predictions "
        f"(tallies filled by reconcile in {r['reconcile_s']:.1f}s, {r['reconcile_keys']:,} keys):",
        f"  single-item classify, tallies:        {pair(c['new'])}   empty tables "
        f"{pair(e['new'])}   difference p50 {c['new']['p50'] - e['new']['p50']:+.1f} ms "
        "(target <= 20)",
        f"  single-item classify, counting (old): {pair(c['old'])}   empty tables "
        f"{pair(e['old'])}   difference p50 {c['old']['p50'] - e['old']['p50']:+.1f} ms",
        f"  GET /metrics ({m['bytes']:,} bytes), tallies: {pair(m['new'])} (target p95 <= 100)",
        f"  GET /metrics, counting (old):         {pair(m['old'])}",
    ]


def _one_size(args: argparse.Namespace) -> None:
    """One size in this process: a fresh database, the COPY load, a champion, the figures."""
    warnings.filterwarnings("ignore", message="No directory at")
    from _django_env import fresh_postgres_database, setup_django
    from _scale_load import load

    name = f"{args.name}_{args.one}"
    os.environ["DATABASE_URL"] = fresh_postgres_database(args.server, name)
    os.environ["ALLOWED_HOSTS"] = "testserver"
    setup_django()
    from django.db import connections

    from triage import training
    from triage.models import RoutingPolicy

    n = args.one
    load_args = argparse.Namespace(
        items=n, open_tasks=n // 5, examples=min(n // 10, args.examples), analysts=8
    )
    loaded = load(load_args, random.Random(0))
    # As scale.py's retrain step: no in-process re-route of the waiting items.
    RoutingPolicy.objects.update_or_create(pk=1, defaults={"reroute_waiting": False})
    started = time.perf_counter()
    training.retrain(actor="benchmark")
    print(f"    champion trained in {time.perf_counter() - started:.0f}s", flush=True)
    result = measure_counters(loaded["encoder"], calls=args.calls, scrapes=args.scrapes)
    print("RESULT " + json.dumps(result), flush=True)
    connections.close_all()
    if not args.keep:
        import psycopg
        from psycopg import sql

        with psycopg.connect(args.server.rstrip("/") + "/postgres", autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432/")
    parser.add_argument("--name", default="triage_counters", help="database name prefix")
    parser.add_argument("--sizes", default="10000,1000000", help="items, comma-separated")
    parser.add_argument("--examples", type=int, default=5000, help="labelled items at most")
    parser.add_argument("--calls", type=int, default=30, help="classify calls per path")
    parser.add_argument("--scrapes", type=int, default=20, help="scrapes per path")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        _one_size(args)
        return
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    if not sizes or min(sizes) < 10_000:
        parser.error("--sizes: give item counts of at least 10,000, e.g. 10000,1000000")
    began = time.perf_counter()
    results: dict[int, dict[str, Any]] = {}
    for n in sizes:
        command = [sys.executable, __file__, "--one", str(n), *sys.argv[1:]]
        process = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
        lines = process.stdout.splitlines()
        print("\n".join(line for line in lines if not line.startswith("RESULT ")), flush=True)
        if process.returncode != 0:
            raise SystemExit(f"_scale_counters: the {n:,}-item run failed")
        (result,) = [json.loads(line[7:]) for line in lines if line.startswith("RESULT ")]
        results[n] = result
    print()
    for n in sizes:
        print("\n".join(report_lines(results[n])))
    if len(sizes) > 1:
        small, large = results[min(sizes)], results[max(sizes)]
        ratio = large["metrics"]["new"]["p95"] / small["metrics"]["new"]["p95"]
        old_ratio = large["metrics"]["old"]["p95"] / small["metrics"]["old"]["p95"]
        print(
            f"GET /metrics p95 at {max(sizes):,} over {min(sizes):,} items: {ratio:.2f}x with "
            f"tallies (target <= 2), {old_ratio:.2f}x counting (old)"
        )
    print(
        f"whole run: {(time.perf_counter() - began) / 60:.1f} min; load average "
        + " ".join(f"{x:.1f}" for x in os.getloadavg())
    )


if __name__ == "__main__":
    main()
