"""Hot paths that read the champion or its routing policy, on the demo data, and the gate's memory.

    .venv/bin/python benchmarks/hot_paths.py --postgres postgres://postgres@127.0.0.1:5432/x
    .venv/bin/python benchmarks/hot_paths.py --postgres URL --history 6000 --gate-n 100000

Sets up the demo as `manage.py demo` does (its desks, --history labelled train-split
messages, a 90% target, a first model) in a fresh PostgreSQL database named after the
URL's, with the real encoder's vectors read from benchmarks/_embeddings.py's cache
(filled on the first run), so nothing is embedded while timing. The audit rate is
raised to 20% so the run has audits to decide. Then times, p50 / p95 in ms:

- classify batch: classify_items over --batch-size received messages (validation and
  test split) whose vectors are cached: the head, the routing policy, the writes;
- similar-items panel: GET /reviews/tasks/<id>/similar as an analyst (Django's test
  client, rendering included) over the open low-confidence tasks;
- audit decision: reviews.decisions.submit_review on audit-sample tasks the analyst
  holds (the verdict, the drift watch's check, the training example).

Beside them, measured in the same run: the champion's row with its evidence JSON (as
every version before evidence artifacts) against the deferred load; the routing
policy derived afresh (every category certified) against the cached one; the
evidence read from JSON against its .npz artifact; and the gate's paired bootstrap at
--gate-n examples, all 2,000 resamples at once as before against the chunked one, each
in its own process (peak RSS). Nothing is asserted; the database is dropped at the end
unless --keep.

The figures before the change come from running this file against the code before it
(a checkout of it as --root, the same --postgres server): main() takes its imports from
load_api(), which a caller may replace with the old module paths.
"""

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from _unchunked_bootstrap import unchunked_gaps

ROOT = Path(__file__).resolve().parent.parent


def load_api() -> SimpleNamespace:
    """What the benchmark calls, by today's module paths."""
    from reviews.decisions import submit_review
    from triage import training
    from triage.api.ingest import import_history
    from triage.api.intake import ItemIn
    from triage.classify.service import classify_items
    from triage.management.demo_data import DESKS, load_messages
    from triage.models import Category, Embedding, Item, ModelVersion, ReviewTask, RoutingPolicy

    return SimpleNamespace(
        submit_review=submit_review,
        retrain=training.retrain,
        import_history=import_history,
        ItemIn=ItemIn,
        classify_items=classify_items,
        DESKS=DESKS,
        load_messages=load_messages,
        Category=Category,
        Embedding=Embedding,
        Item=Item,
        ModelVersion=ModelVersion,
        ReviewTask=ReviewTask,
        RoutingPolicy=RoutingPolicy,
        gate_file=ROOT / "triage" / "training" / "gate.py",
    )


def summary(samples: list[float]) -> str:
    if not samples:
        return "nothing to time"
    return (
        f"p50 {statistics.median(samples):.1f} / p95 {float(np.percentile(samples, 95)):.1f} ms"
        f" over {len(samples)}"
    )


def timed(step: Callable[[], object]) -> float:
    start = time.perf_counter()
    step()
    return (time.perf_counter() - start) * 1000


def store_vectors(
    api: SimpleNamespace, items: list[Any], vectors: np.ndarray, encoder_id: str
) -> None:
    api.Embedding.objects.bulk_create(
        [
            api.Embedding(item_id=item.pk, encoder=encoder_id, vector=v.tobytes())
            for item, v in zip(items, vectors.astype(np.float32), strict=True)
        ],
        batch_size=1000,
    )


def set_up(api: SimpleNamespace, args: argparse.Namespace) -> SimpleNamespace:
    import _embeddings
    from django.contrib.auth.models import Group, User

    from triage.ml.encoder import configured_spec, encoder_for

    _embeddings.CACHE_DIR = Path(args.vectors)
    for slug, (name, description) in api.DESKS.items():
        api.Category.objects.create(slug=slug, name=name, description=description)
    policy = api.RoutingPolicy.current()
    policy.target_precision, policy.audit_rate = 0.9, 0.2
    policy.save()
    rng = random.Random(0)  # the demo's sample
    sample = rng.sample(api.load_messages("train"), args.history)
    # A few message ids occur twice (import_history keeps the first): each is taken once.
    taken: set[str] = set()
    history = [m for m in sample if not (m.id in taken or taken.add(m.id))]
    others = {m.id: m for m in api.load_messages() if m.split != "train" and m.id not in taken}
    incoming = rng.sample(list(others.values()), (args.batches + 1) * args.batch_size)
    encoder = encoder_for(configured_spec())
    started = time.perf_counter()
    vectors = _embeddings.message_vectors(history + incoming, encoder)
    print(f"vectors for {len(vectors):,} messages in {time.perf_counter() - started:.0f} s")
    categories = {c.slug: c for c in api.Category.objects.all()}
    created = []
    for start in range(0, len(history), 1000):
        part = [
            api.ItemIn(external_id=f"dm-{m.id}", text=m.text, label=m.desk)
            for m in history[start : start + 1000]
        ]
        created += api.import_history(items=part, categories=categories).created
    by_id = {item.external_id: item for item in created}
    store_vectors(
        api, [by_id[f"dm-{m.id}"] for m in history], vectors[: len(history)], encoder.encoder_id
    )
    started = time.perf_counter()
    champion = api.retrain(actor="bench").version
    print(f"champion {champion}: trained in {time.perf_counter() - started:.0f} s")
    items = api.Item.objects.bulk_create(
        [api.Item(external_id=f"in-{m.id}", text=m.text, source="api") for m in incoming]
    )
    store_vectors(api, items, vectors[len(history) :], encoder.encoder_id)
    analyst = User.objects.create_user("bench-analyst")  # force_login: no password
    analyst.groups.add(Group.objects.get(name="analysts"))
    return SimpleNamespace(champion=champion, items=items, analyst=analyst, history=len(history))


def bench_classify(api: SimpleNamespace, items: list[Any], batch_size: int) -> list[float]:
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    # The first batch loads the encoder and the head: not timed.
    api.classify_items(item_ids=[item.pk for item in batches[0]])
    return [
        timed(lambda b=batch: api.classify_items(item_ids=[item.pk for item in b]))
        for batch in batches[1:]
    ]


def bench_panel(api: SimpleNamespace, analyst: Any, repeat: int) -> list[float]:
    from django.test import Client

    client = Client()
    client.force_login(analyst)
    tasks = list(
        api.ReviewTask.objects.filter(completed_at__isnull=True, reason="low_confidence")
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if not tasks:
        return []

    def hold(pk: int) -> None:
        # The panel answers only for the task its analyst holds (the others are a 404).
        from datetime import timedelta

        from django.utils import timezone

        api.ReviewTask.objects.filter(claimed_by=analyst).update(claimed_by=None)
        api.ReviewTask.objects.filter(pk=pk).update(
            claimed_by=analyst, lease_expires_at=timezone.now() + timedelta(minutes=10)
        )

    hold(tasks[0])
    first = client.get(f"/reviews/tasks/{tasks[0]}/similar")  # builds the similar-items index
    assert first.status_code == 200, first.status_code
    samples = []
    for i in range(repeat):
        pk = tasks[i % len(tasks)]
        hold(pk)
        samples.append(timed(lambda pk=pk: client.get(f"/reviews/tasks/{pk}/similar")))
    api.ReviewTask.objects.filter(claimed_by=analyst).update(claimed_by=None)
    return samples


def bench_audits(api: SimpleNamespace, analyst: Any, repeat: int) -> list[float]:
    from datetime import timedelta

    from django.utils import timezone

    tasks = list(
        api.ReviewTask.objects.filter(completed_at__isnull=True, reason="audit_sample")
        .select_related("item")
        .order_by("pk")[: repeat + 1]
    )
    api.ReviewTask.objects.filter(pk__in=[t.pk for t in tasks]).update(
        claimed_by=analyst, lease_expires_at=timezone.now() + timedelta(hours=2)
    )

    def decide(task: Any) -> None:
        label = task.item.latest_prediction().label.slug
        api.submit_review(task_id=task.pk, user=analyst, category_slug=label)

    if tasks:
        decide(tasks[0])
    return [timed(lambda t=task: decide(t)) for task in tasks[1:]]


def bench_in_run(api: SimpleNamespace, champion: Any, repeat: int) -> None:
    """Today's code only: each change beside what it replaced, in the same process."""
    try:
        from triage.routing import cache
        from triage.routing.derive import derived
        from triage.routing.evidence import HoldoutPredictions, load_evidence
    except ImportError:
        return  # the code before the change: these figures are the ones above
    evidence = load_evidence(champion)
    as_json = evidence.as_json()
    M = api.ModelVersion
    # The champion's row as every version before artifacts held it: evidence JSON inside.
    M.objects.filter(pk=champion.pk).update(holdout=as_json)
    try:
        full = [
            timed(lambda: M.objects.filter(status=M.Status.CHAMPION).first()) for _ in range(repeat)
        ]
        deferred = [timed(M.objects.champion) for _ in range(repeat)]
    finally:
        M.objects.filter(pk=champion.pk).update(holdout={})
    print(f"\nthe champion's row ({len(evidence):,} evidence predictions):")
    print(f"  baseline, with its evidence JSON: {summary(full)}")
    print(f"  deferred (ModelVersion.objects.champion): {summary(deferred)}")

    def repeated(step: Callable[[], object]) -> str:
        return summary([timed(step) for _ in range(repeat)])

    print("\nthe evidence, read on a cache miss:")
    parsed = repeated(lambda: HoldoutPredictions.from_json(as_json))
    print(f"  baseline, parsed from its JSON: {parsed}")
    print(f"  from its .npz artifact, sha256 checked: {repeated(lambda: load_evidence(champion))}")

    def afresh() -> None:
        cache.clear()
        derived(champion)

    print("\nthe routing policy for the champion:")
    print(f"  baseline, derived afresh (every category certified): {repeated(afresh)}")
    derived(champion)
    print(f"  cached (one query): {repeated(lambda: derived(champion))}")


GATE_CODE = """
import importlib.util, sys, time
import numpy as np
n, mode, gate_file, bench = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
sys.path.insert(0, bench)
def status(key):
    return int([l for l in open('/proc/self/status') if l.startswith(key)][0].split()[1]) / 1024
rng = np.random.default_rng(0)
truth = rng.integers(0, 3, n)
candidate = np.where(rng.random(n) < 0.85, truth, (truth + 1) % 3)
champion = np.where(rng.random(n) < 0.8, truth, (truth + 2) % 3)
spec = importlib.util.spec_from_file_location('gate', gate_file)
gate = importlib.util.module_from_spec(spec); spec.loader.exec_module(gate)
if mode == 'unchunked':
    from hot_paths import unchunked_paired_bootstrap as run
else:
    run = gate.paired_bootstrap
before = status('VmRSS')
start = time.perf_counter()
result = run(truth, candidate, champion, 3)
elapsed = time.perf_counter() - start
print(elapsed, before, status('VmHWM'), result.low, result.high)
"""


def unchunked_paired_bootstrap(
    truth: np.ndarray, candidate: np.ndarray, champion: np.ndarray, n_classes: int
) -> SimpleNamespace:
    """The gate's bootstrap before chunking: all 2,000 resamples drawn and weighed at once."""
    gaps = unchunked_gaps(truth, candidate, champion, n_classes)
    return SimpleNamespace(low=float(np.quantile(gaps, 0.05)), high=float(np.quantile(gaps, 0.95)))


def bench_gate(api: SimpleNamespace, n: int, modes: list[str]) -> None:
    print(f"\nthe gate's paired bootstrap at {n:,} examples, 2,000 resamples (own process each):")
    here = str(Path(__file__).resolve().parent)
    for mode in modes:
        command = [sys.executable, "-c", GATE_CODE, str(n), mode, str(api.gate_file), here]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
        seconds, before, peak, low, high = (float(v) for v in out[-5:])
        label = (
            "baseline, all resamples at once"
            if mode == "unchunked"
            else f"{api.gate_file} as it is"
        )
        print(
            f"  {label}: peak RSS {peak:,.0f} MB ({peak - before:,.0f} MB over the inputs), "
            f"{seconds:.1f} s; interval {low:+.6f} to {high:+.6f}"
        )


def drop_database(server_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    admin = server_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(name)))


def main(root: Path = ROOT, api_loader: Callable[[], SimpleNamespace] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", required=True, help="a server URL; its database is re-made")
    parser.add_argument("--history", type=int, default=6000, help="as manage.py demo")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--audits", type=int, default=100)
    parser.add_argument("--gate-n", type=int, default=100_000)
    parser.add_argument("--no-unchunked", action="store_true", help="skip the ~5 GB baseline")
    parser.add_argument("--vectors", default=str(ROOT / "var" / "bench-cache"))
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    sys.path[:0] = [str(root), str(root / "benchmarks"), str(Path(__file__).resolve().parent)]
    from _django_env import fresh_postgres_database, setup_django

    name = args.postgres.rsplit("/", 1)[-1] or "triage_bench_hot_paths"
    os.environ["DATABASE_URL"] = fresh_postgres_database(args.postgres, name)
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    work = setup_django()
    from django.conf import settings
    from django.core.management import call_command

    # DEBUG off serves hashed static names from the manifest, as production does; built
    # in the throwaway work dir, not in the checkout.
    settings.STATIC_ROOT = work / "static"
    call_command("collectstatic", "--noinput", verbosity=0)
    api = (api_loader or load_api)()
    try:
        world = set_up(api, args)
        print(f"\nhot paths at {world.history:,} labelled examples (the champion's evidence):")
        classify = bench_classify(api, world.items, args.batch_size)
        print(f"  classify batch ({args.batch_size} items): {summary(classify)}")
        print(f"  similar-items panel: {summary(bench_panel(api, world.analyst, args.repeat))}")
        print(f"  audit decision: {summary(bench_audits(api, world.analyst, args.audits))}")
        bench_in_run(api, api.ModelVersion.objects.champion(), args.repeat)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database(args.postgres, name)
    modes = ([] if args.no_unchunked else ["unchunked"]) + ["as-is"]
    bench_gate(api, args.gate_n, modes)


if __name__ == "__main__":
    main()
