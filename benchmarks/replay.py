"""Replay a stream of messages through the product, with simulated analysts.

A scenario is an ordered stream of demo messages plus options. The product starts from a
few labelled messages per class (5 by default), trains its first model, then takes the
stream in arrival batches (--arrive items) through its own services: ingest
(ingest.ingest_items) → classify and route (service.classify_items, the champion and the
certified thresholds) → two simulated analysts take turns claiming tasks
(reviews.claims.claim_next_task, so in the policy's queue order) and answer with the true
label (reviews.decisions.submit_review). Two, so that second reviews, which never go
back to the first reviewer, are decided too.

Analysts decide --pace tasks per arriving item (0.5: half as many as arrive, so a
backlog builds and the queue's order decides what the model learns first; with 1 or
more the queue is mostly empty and order is moot). The backlog is drained at the end,
so everything sent to people is decided by people. Every --retrain-every items a
"night" passes: the nightly retrain (training.exclusive.retrain_exclusively, the nightly
task's own service). With the count trigger on, the product itself queues a retrain on
commit every --count new trusted labels (training.cadence; tasks run in-process here).

Variants, each in a fresh database (a child process), reported side by side:
  nightly          retrain nightly only, queue oldest first (today)
  count            nightly + the count trigger, oldest first
  nightly+margin   nightly only, queue smallest margin first
  count+margin     nightly + count trigger, smallest margin first

Per variant: the share of the stream people decide (every decision a person made,
audits and second reviews included, over the items), the share auto-actioned and the
precision of those automatic actions, how many items passed before the first automatic
action, and the retrains. Per night, beside the certified rule, two other threshold
rules on the same champion's evidence as a baseline: point estimates (the lowest
threshold whose evidence precision reaches the target, no bound) and the old Wilson
rule.

Embeddings come from the real encoder via benchmarks/_embeddings.py and are put into
the product's own embedding cache before each batch is classified.

Run from the project root:
  .venv/bin/python benchmarks/replay.py                          # all four variants, 6,000 items
  .venv/bin/python benchmarks/replay.py --variants nightly,count --items 3000 --jobs 2
  .venv/bin/python benchmarks/replay.py --scenario in-order-pooled
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _django_env import setup_django  # noqa: E402
from _replay_report import baseline_thresholds, report_variant, report_variants  # noqa: E402
from _replay_scenarios import SCENARIOS, VARIANTS, Scenario  # noqa: E402


def run(scenario: Scenario) -> dict:
    from _embeddings import message_vectors
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db import transaction
    from django.db.models import Count, Min

    from reviews.claims import claim_next_task
    from reviews.decisions import submit_review
    from triage import training
    from triage.api import ingest
    from triage.api.intake import ItemIn
    from triage.management.demo_data import DESKS
    from triage.ml.encoder import configured_spec, encoder_for
    from triage.models import (
        AuditLog,
        Category,
        Embedding,
        Prediction,
        Review,
        ReviewTask,
        RoutingPolicy,
    )
    from triage.training.exclusive import retrain_exclusively

    settings.TRIAGE_RETRAIN_AFTER_LABELS = scenario.count if scenario.count_trigger else 0
    encoder = encoder_for(configured_spec())
    messages = scenario.seed + scenario.stream
    vectors = dict(zip([m.id for m in messages], message_vectors(messages, encoder), strict=True))
    categories = {
        slug: Category.objects.update_or_create(
            slug=slug, defaults={"name": name, "description": description}
        )[0]
        for slug, (name, description) in DESKS.items()
    }
    RoutingPolicy.objects.update_or_create(
        pk=1,
        defaults={
            "target_precision": scenario.target,
            "certification": scenario.certification,
            "delta": scenario.delta,
            "audit_rate": scenario.audit_rate,
            "queue_order": scenario.queue_order,
            "reroute_waiting": scenario.reroute_waiting,
        },
    )
    analysts = [User.objects.create_user(f"replay-{n}") for n in ("a", "b")]

    def cache_embeddings(items) -> None:
        Embedding.objects.bulk_create(
            [
                Embedding(
                    item_id=item.pk,
                    encoder=encoder.encoder_id,
                    vector=vectors[item.external_id].tobytes(),
                )
                for item in items
            ],
            ignore_conflicts=True,
            batch_size=500,
        )

    decided = 0
    first_reroute = None

    def rerouted_since(log_pk: int) -> int:
        """Waiting items the promotions since that audit-log entry routed."""
        return sum(
            entry["routed"]
            for entry in AuditLog.objects.filter(
                action="reroute_waiting", pk__gt=log_pk
            ).values_list("detail", flat=True)
        )

    def decide_one() -> bool:
        """One decision by whichever analyst may take a task; False when none is left."""
        nonlocal decided
        for analyst in (analysts[decided % 2], analysts[(decided + 1) % 2]):
            task = claim_next_task(user=analyst)
            if task is not None:
                submit_review(
                    task_id=task.pk,
                    user=analyst,
                    category_slug=truth_of[task.item.external_id],
                )
                decided += 1
                return True
        return False

    with transaction.atomic():
        seeded = ingest.import_history(
            items=[
                ItemIn(external_id=m.id, text=m.text, label=scenario.truth(m))
                for m in scenario.seed
            ],
            categories=categories,
        )
        cache_embeddings(seeded.created)
    first = training.retrain(actor="replay")
    truth_of = {m.id: scenario.truth(m) for m in messages}
    items: list[dict] = []  # per stream item, in arrival order
    nights: list[dict] = []
    thresholds_of: dict[int, dict] = {}
    budget = 0.0
    for start in range(0, len(scenario.stream), scenario.arrive):
        batch = scenario.stream[start : start + scenario.arrive]
        with transaction.atomic():
            # Classification is queued on commit, so the vectors are cached before it runs.
            ingested = ingest.ingest_items(
                items=[ItemIn(external_id=m.id, text=m.text) for m in batch]
            )
            cache_embeddings(ingested.created)
        ids = [item.pk for item in ingested.created]
        predictions = sorted(
            Prediction.objects.filter(item_id__in=ids).select_related("item", "label"),
            key=lambda p: p.item_id,
        )
        if len(predictions) != len(ids):
            # The hand-off to classification is robust (logged, not raised): say so here.
            raise SystemExit(f"only {len(predictions)} of {len(ids)} items were classified")
        for p in predictions:
            version = p.model_version
            if version is not None and version.pk not in thresholds_of:
                thresholds_of[version.pk] = baseline_thresholds(version, scenario.target)
            baseline = thresholds_of.get(version.pk if version else -1, {})
            items.append(
                {
                    "auto": p.route == Prediction.Route.AUTO,
                    "right": p.label.slug == truth_of[p.item.external_id],
                    "model": version.pk if version else None,
                    "decided_before": decided,
                    **{
                        rule: chosen.get(p.label.slug) is not None
                        and p.confidence >= chosen[p.label.slug]
                        for rule, chosen in baseline.items()
                    },
                }
            )
        budget += scenario.pace * len(batch)
        while budget >= 1 and decide_one():
            budget -= 1
        done = start + len(batch)
        if first_reroute is None and rerouted_since(0):
            first_reroute = (done, decided)  # a count retrain's champion re-routed some
        if done // scenario.retrain_every > start // scenario.retrain_every or done == len(
            scenario.stream
        ):
            night = items[len(nights) * scenario.retrain_every : done]
            started = time.perf_counter()
            log_before = AuditLog.objects.order_by("-pk").values_list("pk", flat=True).first()
            message = retrain_exclusively(actor="nightly")
            rerouted = rerouted_since(log_before or 0)
            if first_reroute is None and rerouted:
                first_reroute = (done, decided)
            nights.append(
                {
                    "items": len(night),
                    "people": sum(not i["auto"] for i in night) / len(night),
                    "auto": sum(i["auto"] for i in night) / len(night),
                    "right": sum(i["auto"] and i["right"] for i in night),
                    "models": sorted({i["model"] for i in night if i["model"]}),
                    "baselines": {
                        rule: (
                            sum(i.get(rule, False) for i in night),
                            sum(i.get(rule, False) and i["right"] for i in night),
                        )
                        for rule in ("point estimate", "old Wilson")
                    },
                    "rerouted": rerouted,
                    "backlog": ReviewTask.objects.open().count(),
                    "retrain_seconds": time.perf_counter() - started,
                    "gate": message,
                }
            )
            print(
                f"  [{time.strftime('%H:%M:%S')}] {done} items: people "
                f"{nights[-1]['people']:.1%}, auto {nights[-1]['auto']:.1%}, backlog "
                f"{nights[-1]['backlog']}, models {nights[-1]['models']}; nightly: {message}",
                flush=True,
            )
    while decide_one():  # the backlog is people's work too
        pass
    by_reason = dict(Review.objects.values_list("task__reason").annotate(n=Count("pk")).order_by())
    retrains = dict(
        AuditLog.objects.filter(action__in=["promote", "hold", "reject"])
        .values_list("actor")
        .annotate(n=Count("pk"))
        .order_by()
    )
    promoted = dict(
        AuditLog.objects.filter(action="promote")
        .values_list("actor")
        .annotate(n=Count("pk"))
        .order_by()
    )
    # Every automatic action, at arrival or when a new champion re-routed a waiting item:
    # the item's one auto prediction, judged against the truth (not the audited outcome).
    stream_ids = {m.id for m in scenario.stream}
    first_prediction = dict(
        Prediction.objects.values_list("item_id").annotate(first=Min("pk")).order_by()
    )
    auto = [
        (pk, item_id, truth_of[external_id] == label)
        for pk, item_id, external_id, label in Prediction.objects.filter(
            route=Prediction.Route.AUTO
        ).values_list("pk", "item_id", "item__external_id", "label__slug")
        if external_id in stream_ids
    ]
    rerouted = [right for pk, item_id, right in auto if first_prediction[item_id] != pk]
    # The first automatic action: at an arrival, or a re-route (items passed, decisions made).
    firsts = [(n, i["decided_before"]) for n, i in enumerate(items) if i["auto"]][:1]
    first_auto = min([*firsts, *([first_reroute] if first_reroute else [])], default=None)
    return {
        "variant": scenario.name,
        "first_model": first.message,
        "items": len(items),
        "decisions": by_reason,
        "auto": len(auto),
        "auto_right": sum(right for _, _, right in auto),
        "rerouted": len(rerouted),
        "rerouted_right": sum(rerouted),
        "first_auto": first_auto[0] if first_auto else None,
        "decided_before_first_auto": first_auto[1] if first_auto else None,
        "retrains": retrains,
        "promoted": promoted,
        "nights": nights,
    }


def child(args: argparse.Namespace) -> None:
    """One variant in a fresh database: its result as JSON in args.json."""
    setup_django()
    scenario = SCENARIOS[args.scenario](args)
    scenario = replace(scenario, name=args.variant, **VARIANTS[args.variant])
    started = time.perf_counter()
    result = run(scenario) | {"seconds": time.perf_counter() - started}
    Path(args.json).write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="in-order", choices=sorted(SCENARIOS))
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--items", type=int, default=6000)
    parser.add_argument("--retrain-every", type=int, default=500, help="items per night")
    parser.add_argument("--arrive", type=int, default=100, help="items per arrival batch")
    parser.add_argument("--pace", type=float, default=0.5, help="decisions per arriving item")
    parser.add_argument("--count", type=int, default=100, help="labels per count retrain")
    parser.add_argument("--seed-per-class", type=int, default=5)
    parser.add_argument("--target", type=float, default=0.90)
    parser.add_argument(
        "--reroute",
        choices=["on", "off"],
        default="on",
        help="a new champion re-routes the waiting items it now automates (the default)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="variants run at once")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or not variants:
        parser.error(f"--variants: unknown {unknown}; choose from {', '.join(VARIANTS)}")
    if not 0 < args.target <= 1:
        parser.error(f"--target must be in (0, 1], got {args.target}")
    if min(args.retrain_every, args.items, args.seed_per_class, args.arrive, args.count) < 1:
        parser.error("--items, --retrain-every, --arrive, --count, --seed-per-class: positive")
    if args.pace <= 0 or args.jobs < 1:
        parser.error("--pace and --jobs must be positive")
    if args.variant:
        return child(args)
    work = Path(tempfile.mkdtemp(prefix="triage-replay-"))
    print(f"[{time.strftime('%H:%M:%S')}] {args.scenario}, variants {', '.join(variants)}")
    print(f"work dir (a database and log per variant): {work}", flush=True)
    started = time.perf_counter()
    # A fresh database per variant (one child process each), so runs never share models.
    pending, running, results = list(variants), {}, {}
    while pending or running:
        while pending and len(running) < args.jobs:
            name = pending.pop(0)
            out = work / f"{name}.json"
            argv = [sys.executable, __file__, *sys.argv[1:], "--variant", name, "--json", str(out)]
            log = (work / f"{name}.log").open("w")
            running[name] = (subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT), out)
            print(f"[{time.strftime('%H:%M:%S')}] {name}: started (log {log.name})", flush=True)
        time.sleep(2)
        for name, (proc, out) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[name]
            if proc.returncode != 0:
                raise SystemExit(f"variant {name} failed: see {work / (name + '.log')}")
            results[name] = json.loads(out.read_text())
            print(f"[{time.strftime('%H:%M:%S')}] {name}: done", flush=True)
    for name in variants:
        report_variant(results[name], retrain_every=args.retrain_every)
    report_variants([results[name] for name in variants], args, time.perf_counter() - started)


if __name__ == "__main__":
    main()
