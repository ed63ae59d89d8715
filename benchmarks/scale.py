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
   dimension): this measures time, not quality.

Classification is handed to a private redis-server (started and stopped here) that no
worker reads: ingest is measured up to the hand-off, as with a real broker.

Run from the project root (2 cores: about 15 minutes at full size):
    .venv/bin/python benchmarks/scale.py
    .venv/bin/python benchmarks/scale.py --items 100000          # a quick check
Options: --server URL (default postgres://postgres@127.0.0.1:5432/), --name DB,
--open-tasks N (items/5), --examples N (items/10), --ingest-items N, --analysts N,
--tasks-per-analyst N, --lookups N, --keep (keep the database).
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _django_env import fresh_postgres_database, setup_django  # noqa: E402

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


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise SystemExit(f"scale: timed out waiting for {what}")


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


# --- Loading with COPY -----------------------------------------------------------


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

    from reviews.models import ReviewTask, TrainingExample, split_for
    from triage.demo_data import DESKS
    from triage.ml.encoder import configured_spec, encoder_for
    from triage.models import Category, Embedding, Item, Prediction

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


# --- gunicorn and a private broker -------------------------------------------------


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    if shutil.which("redis-server") is None:
        raise SystemExit("scale: redis-server is needed (the broker classification is handed to)")
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        + ["--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    return process, f"redis://127.0.0.1:{port}/0"


def request(url: str, method: str = "GET", body: Any = None, token: str = "") -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=120) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def start_gunicorn(workdir: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "triage.wsgi", "--bind", f"127.0.0.1:{port}"]
        + ["--workers", str(workers), "--timeout", "120"],
        cwd=ROOT,
        env=os.environ | {"ALLOWED_HOSTS": "127.0.0.1,localhost"},
        stdout=subprocess.DEVNULL,
        stderr=open(workdir / "gunicorn.log", "wb"),  # noqa: SIM115
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return request(url + "/api/openapi.json")[0] == 200
        except OSError:
            return False

    wait_until(up, 60, "gunicorn")
    return process, url


def in_threads(clients: int, work: Callable[[int], list[float]]) -> tuple[list[float], float]:
    """Run work(client) in `clients` threads at once; all latencies and the wall time."""
    results: list[list[float]] = [[] for _ in range(clients)]

    def run(k: int) -> None:
        results[k] = work(k)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [x for r in results for x in r], time.perf_counter() - started


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

    from triage import tasks
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

    from reviews.models import TrainingExample
    from triage import training
    from triage.ml.heads import train_logistic_head
    from triage.models import Embedding

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
    from django.contrib.auth.models import User
    from django.utils import timezone

    from reviews.models import ReviewTask

    user = User.objects.get(username="bench-analyst-1")
    tasks = ReviewTask.objects.claimable(timezone.now()).offered_to(user, senior=False)
    return "\n".join(
        [
            "audits first: " + explain(tasks.filter(reason="audit_sample").order_by("id")[:1]),
            "others first: "
            + explain(tasks.exclude(reason="audit_sample").order_by("-priority", "id")[:1]),
        ]
    )


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
        os.killpg(gunicorn.pid, signal.SIGTERM)
        gunicorn.wait(60)
        gunicorn = None
        with Step("raw COPY of the same items"):
            copy_rate = raw_copy_rate(http.pop("bodies"))
        with Step("stuck-item sweep"):
            sweep = measure_sweep()
        with Step("retrain"):
            retrain = measure_retrain(figures["encoder"])
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
        f"{copy_rate:,.0f} items/s ({http['ingest_items_per_s'] / copy_rate:.1%} of it)"
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
