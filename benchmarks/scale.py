"""Triage at scale on PostgreSQL: 1,000,000 items and 200,000 open review tasks.

The rows are loaded with COPY (psycopg 3 `cursor.copy`), not the ORM, into a fresh
database (default `triage_scale`, dropped at the end unless --keep). Then:

1. claim-next + render with 8 analysts at once, p50/p95 per step and double claims
   (benchmarks/analyst_load.py), beside 1 analyst alone;
2. `GET /api/items/<id>` p50/p95 through gunicorn (4 workers), 8 clients;
3. HTTP batch ingest (1,000 items a request, 8 clients) through the same gunicorn,
   items/s, beside the raw COPY rate of the same number of the same rows;
4. the stuck-item sweep (`tasks.classify_stuck`: find, mark, hand off) and the EXPLAIN
   of its queries (a Seq Scan on a million rows would be the thing to fix);
5. nightly retraining (`training.retrain`) on the resolved items' training examples
   (default 100,000) with cached embeddings, beside one plain head fit on the same
   vectors. The vectors are synthetic (one cluster per desk plus noise, the encoder's
   dimension): this measures time, not quality;
6. a single-item classify call and GET /metrics read from the tallies, beside the
   counting path before them and the same call on empty tables (_scale_counters.py);
7. the similar-items panel at every open task, per-worker memory and p50/p95, shared
   mapped index files beside the old per-process matrices (_scale_similar.py;
   --no-similar skips it).

Step 3 also checks the classification hand-off: every stored item queued exactly once
(read from the broker's queue, _scale_ingest.py).

Classification is handed to a private redis-server (started and stopped here) that no
worker reads: ingest is measured up to the hand-off, as with a real broker.

Run from the project root (2 busy cores: 6 to 8 minutes at full size):
    .venv/bin/python benchmarks/scale.py
    .venv/bin/python benchmarks/scale.py --items 100000          # a quick check
Options: --server URL (default postgres://postgres@127.0.0.1:5432/), --name DB,
--open-tasks N (items/5), --examples N (items/10), --ingest-items N, --analysts N,
--tasks-per-analyst N, --think SECONDS, --lookups N, --keep (keep the database).
Loading is in _scale_load.py, the servers and HTTP clients in _scale_services.py.
"""

import argparse
import os
import random
import signal
import sys
import time
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _django_env import fresh_postgres_database, setup_django  # noqa: E402
from _scale_counters import measure_counters, report_lines  # noqa: E402
from _scale_ingest import check_handoff  # noqa: E402
from _scale_load import Step, copy_rows, load, sentence  # noqa: E402
from _scale_services import (  # noqa: E402
    in_threads,
    percentile,
    request,
    start_gunicorn,
    start_redis,
)

# --- The measurements -------------------------------------------------------------


def explain(queryset: Any) -> str:
    return str(queryset.explain(analyze=True))


def measure_http(args: argparse.Namespace, url: str, token: str, rng: random.Random) -> dict:
    n = args.items
    lookups_each = max(1, args.lookups // 8)
    ids = [f"s-{rng.randint(1, n):07d}" for _ in range(lookups_each * 8)]

    def lookups(k: int) -> list[float]:
        out = []
        for eid in ids[k * lookups_each : (k + 1) * lookups_each]:
            t0 = time.perf_counter()
            status, _ = request(f"{url}/api/items/{eid}", token=token)
            out.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                raise SystemExit(f"scale: GET /api/items/{eid} answered {status}")
        return out

    with Step(f"GET /api/items/<id>: {lookups_each:,} lookups, 1 client (baseline)"):
        alone, _ = in_threads(1, lookups)
    with Step(f"GET /api/items/<id>: {len(ids):,} lookups, 8 clients"):
        detail, _ = in_threads(8, lookups)

    batches = max(8, args.ingest_items // 1000)
    bodies = [
        [{"external_id": f"ing-{b}-{i}", "text": sentence(rng)} for i in range(1000)]
        for b in range(batches)
    ]

    def ingest(k: int) -> list[float]:
        out = []
        for body in bodies[k::8]:
            t0 = time.perf_counter()
            status, raw = request(f"{url}/api/items", "POST", body, token)
            out.append((time.perf_counter() - t0) * 1000)
            if status != 201:
                raise SystemExit(f"scale: POST /api/items answered {status}: {raw[:200]!r}")
        return out

    with Step(f"HTTP ingest: {batches} batches of 1,000, 8 clients"):
        batch_ms, wall = in_threads(8, ingest)
    from triage.models import Item

    stored = Item.objects.filter(external_id__startswith="ing-").count()
    if stored != batches * 1000:
        raise SystemExit(f"scale: {batches * 1000:,} items sent, {stored:,} stored")
    return {
        "alone_p50": percentile(alone, 50),
        "alone_p95": percentile(alone, 95),
        "detail_p50": percentile(detail, 50),
        "detail_p95": percentile(detail, 95),
        "ingest_items_per_s": batches * 1000 / wall,
        "ingest_batch_p95": percentile(batch_ms, 95),
        "bodies": bodies,
    }


def raw_copy_rate(bodies: list[list[dict[str, str]]]) -> float:
    """COPY the same items the HTTP clients sent (new ids), timed alone, then removed."""
    from django.db import connection, transaction
    from django.utils import timezone

    from triage.models import Item

    now = timezone.now()
    rows = [
        (f"copy-{item['external_id']}", item["text"], "{}", "api", now, "received", "", 0)
        for body in bodies
        for item in body
    ]
    with transaction.atomic():
        started = time.perf_counter()
        copy_rows(
            Item,
            ["external_id", "text", "metadata", "source", "received_at", "status"]
            + ["decided_by", "classify_attempts"],
            rows,
        )
        seconds = time.perf_counter() - started
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM triage_item WHERE external_id LIKE 'copy-%%'")
    return len(rows) / seconds


def measure_sweep() -> dict[str, Any]:
    from django.conf import settings
    from django.db.models import Q
    from django.utils import timezone

    from triage.classify import tasks
    from triage.models import Item, Prediction

    now = timezone.now()
    stuck_after = timedelta(seconds=settings.TRIAGE_STUCK_AFTER_SECONDS)
    candidates = (
        Item.objects.pending()
        .filter(received_at__lt=now - stuck_after)
        .filter(Q(classify_after__isnull=True) | Q(classify_after__lte=now))
        .order_by("pk")
        .values_list("pk", "classify_attempts")[:10_000]
    )
    latest = Prediction.objects.order_by("-id").values_list("created_at", "item__received_at")[:1]
    plans = {"candidates": explain(candidates), "latest prediction": explain(latest)}
    started = time.perf_counter()
    requeued = tasks.classify_stuck()
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    again = tasks.classify_stuck()  # nothing is due now (backing off): the idle cost
    idle = time.perf_counter() - started
    return {
        "requeued": requeued,
        "ms": seconds * 1000,
        "idle_ms": idle * 1000,
        "again": again,
        "plans": plans,
    }


def measure_retrain(encoder: Any) -> dict[str, Any]:
    import numpy as np

    from triage import training
    from triage.ml.heads import train_logistic_head
    from triage.models import Embedding, RoutingPolicy
    from triage.training.models import TrainingExample

    rows = list(
        Embedding.objects.filter(encoder=encoder.encoder_id)
        .order_by("item_id")
        .values_list("item_id", "vector")
    )
    slug_of = dict(TrainingExample.objects.active().values_list("item_id", "category__slug"))
    x = np.stack([np.frombuffer(bytes(v), dtype=np.float32) for _, v in rows])
    y = [slug_of[i] for i, _ in rows]
    started = time.perf_counter()
    train_logistic_head(x, y)
    plain = time.perf_counter() - started
    # Tasks run in-process here: the promotion's re-route of the 200,000 waiting items
    # (triage.classify.waiting, a task of its own in production) would land inside the
    # retrain's time. Its cost is measured by benchmarks/replay.py.
    RoutingPolicy.objects.update_or_create(pk=1, defaults={"reroute_waiting": False})
    started = time.perf_counter()
    result = training.retrain(actor="benchmark")
    seconds = time.perf_counter() - started
    return {
        "examples": len(rows),
        "retrain_s": seconds,
        "plain_s": plain,
        "message": result.message,
    }


def claim_plan() -> str:
    """EXPLAIN ANALYZE of the claim's own queries (FOR UPDATE SKIP LOCKED, in a
    transaction that is rolled back)."""
    from django.contrib.auth.models import User
    from django.db import transaction
    from django.utils import timezone

    from reviews.claims import claim_candidates

    user = User.objects.get(username="bench-analyst-1")
    with transaction.atomic():
        audits, others = claim_candidates(timezone.now(), user=user, senior=False)
        plans = "audits first: " + explain(audits[:1]) + "\nothers first: " + explain(others[:1])
        transaction.set_rollback(True)
    return plans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432/")
    parser.add_argument("--name", default="triage_scale", help="database to (re)create")
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--open-tasks", type=int, help="default: items / 5")
    parser.add_argument("--examples", type=int, help="default: items / 10")
    parser.add_argument("--ingest-items", type=int, default=40_000)
    parser.add_argument("--analysts", type=int, default=8)
    parser.add_argument("--tasks-per-analyst", type=int, default=40)
    parser.add_argument(
        "--think", type=float, default=2.0, help="mean seconds an analyst reads a task"
    )
    parser.add_argument("--lookups", type=int, default=2_000)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--no-similar", action="store_true", help="skip step 7")
    args = parser.parse_args()
    if args.items < 10_000:
        parser.error("--items must be at least 10,000")
    args.open_tasks = args.open_tasks if args.open_tasks is not None else args.items // 5
    args.examples = args.examples if args.examples is not None else args.items // 10
    rng = random.Random(0)
    began = time.perf_counter()
    # whitenoise warns, per process, that collectstatic has not run: not what is measured.
    warnings.filterwarnings("ignore", message="No directory at")

    os.environ["DATABASE_URL"] = fresh_postgres_database(args.server, args.name)
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="triage-scale-"))
    redis_process, broker = start_redis(work)
    os.environ["CELERY_BROKER_URL"] = broker
    gunicorn = None
    try:
        setup_django(workdir=str(work))
        from analyst_load import ensure_analysts, run_analyst_load
        from django.db import connections

        from triage.models import ApiToken

        print(
            f"scale: {args.items:,} items, {args.open_tasks:,} open tasks, "
            f"{args.examples:,} examples; database {args.name}; work dir {work}",
            flush=True,
        )
        with Step("load") as loading:
            figures = load(args, rng)
        names = ensure_analysts(args.analysts)
        _, token = ApiToken.issue(f"bench-{time.time_ns()}")
        plan = claim_plan()

        with Step("1 analyst (baseline)"):
            alone = run_analyst_load(
                analysts=1, tasks_per_analyst=args.tasks_per_analyst, usernames=names
            )
        crowds = []
        for think in (args.think, 0.0):
            title = f"{args.analysts} analysts at once, " + (
                f"~{think:g}s between decisions" if think else "flat out (no pause: saturation)"
            )
            with Step(title):
                crowds.append(
                    (
                        title,
                        run_analyst_load(
                            analysts=args.analysts,
                            tasks_per_analyst=args.tasks_per_analyst,
                            usernames=names,
                            think_seconds=think,
                        ),
                    )
                )

        connections.close_all()
        gunicorn, url = start_gunicorn(work, workers=4)
        http = measure_http(args, url, token, rng)
        handed = check_handoff(broker, "ing-")
        os.killpg(gunicorn.pid, signal.SIGTERM)
        gunicorn.wait(60)
        gunicorn = None
        with Step("raw COPY of the same items"):
            copy_rate = raw_copy_rate(http.pop("bodies"))
        with Step("stuck-item sweep"):
            sweep = measure_sweep()
        with Step("retrain"):
            retrain = measure_retrain(figures["encoder"])
        with Step("counters: classify and GET /metrics, tallies beside counting"):
            counters = measure_counters(figures["encoder"])
        similar = None
        if not args.no_similar:
            from _scale_similar import measure_similar

            similar = measure_similar(work, figures["encoder"])
    finally:
        if gunicorn is not None:
            os.killpg(gunicorn.pid, signal.SIGKILL)
        redis_process.terminate()
        redis_process.wait(10)

    load_average = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print("\n=== claim plans (EXPLAIN ANALYZE) ===\n" + plan)
    for name, text in sweep["plans"].items():
        print(f"=== sweep: {name} (EXPLAIN ANALYZE) ===\n{text}")
    seq = [name for name, text in sweep["plans"].items() if "Seq Scan" in text]
    print(f"\n=== Triage at scale: {args.items:,} items, {args.open_tasks:,} open review tasks ===")
    print(
        f"load with COPY: {loading.seconds:.0f}s (items at {figures['copy_items_per_s']:,.0f}/s, "
        "generated in Python as they stream)"
    )
    print("\nanalysts, claim → render → decide (ms; target claim+render p95 <= 50):")
    print(f"1 analyst, {alone.tasks} tasks:\n{alone.table()}")
    for title, run in crowds:
        print(f"{title}, {run.tasks} tasks in {run.seconds:.1f}s:\n{run.table()}")
    errors = [e for _, run in crowds for e in run.errors] + alone.errors
    doubles = sum(run.double_claims for _, run in crowds)
    print(f"double claims: {doubles}; errors: {errors or 'none'}")
    print(
        f"\nGET /api/items/<id> (gunicorn, 4 workers): 8 clients p50 {http['detail_p50']:.1f} ms, "
        f"p95 {http['detail_p95']:.1f} ms; 1 client p50 {http['alone_p50']:.1f} ms, "
        f"p95 {http['alone_p95']:.1f} ms"
    )
    print(
        "HTTP batch ingest (1,000 a request, 8 clients): "
        f"{http['ingest_items_per_s']:,.0f} items/s "
        f"(batch p95 {http['ingest_batch_p95']:.0f} ms); raw COPY of the same rows: "
        f"{copy_rate:,.0f} items/s ({http['ingest_items_per_s'] / copy_rate:.1%} of it); "
        f"{handed[0]:,} stored, {handed[1]:,} queued for classification exactly once"
    )
    print(
        f"stuck-item sweep: {sweep['requeued']} re-queued in {sweep['ms']:.0f} ms; "
        f"a sweep with nothing due {sweep['idle_ms']:.0f} ms; "
        f"Seq Scan in: {', '.join(seq) or 'none'}"
    )
    print(
        f"retrain on {retrain['examples']:,} examples (cached embeddings): "
        f"{retrain['retrain_s']:.1f}s (target <= 60); one plain head fit on the same vectors "
        f"{retrain['plain_s']:.1f}s ({retrain['message'][:80]})"
    )
    print("\n".join(report_lines(counters)))
    if similar is not None:
        from _scale_similar import report

        print(report(similar))
    print(f"whole run: {(time.perf_counter() - began) / 60:.1f} min; load average {load_average}")

    if not args.keep:
        from django.db import connections

        connections.close_all()
        import psycopg
        from psycopg import sql

        with psycopg.connect(args.server.rstrip("/") + "/postgres", autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(args.name))
            )
        print(f"dropped database {args.name}")


if __name__ == "__main__":
    main()
