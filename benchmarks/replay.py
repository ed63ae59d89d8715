"""Replay a stream of messages through the product, with simulated analysts.

A scenario is an ordered stream of demo messages plus options. The product
starts from a few labelled messages per class (5 by default), trains its first
model, then takes the stream in chunks through its own services: ingest
(ingest.ingest_items) → classify and route (service.classify_items, the
champion and the certified thresholds) → simulated analysts claim every open
review task and answer with the true label (reviews.decisions) → retrain and gate
(training.retrain) every N items.

Per chunk it reports: the share decided by people (sent to review), the share
auto-actioned, the realised precision of the auto-actions, and what the gate did
after the chunk. As a baseline measured in the same run on the same predictions,
it also shows what two other threshold rules would have done with the same
champion's evidence: point estimates (the lowest threshold whose evidence
precision reaches the target, no bound) and the old Wilson rule.

Adding a scenario: write a function (args) -> Scenario and register it in
SCENARIOS. `truth` lets a scenario change what the analysts answer (label
drift); `stream` can be reordered or mixed (genre shift, bursts).

Embeddings come from the real encoder via benchmarks/_embeddings.py and are put
into the product's own embedding cache before each chunk is classified.

Run from the project root:
  .venv/bin/python benchmarks/replay.py                       # in-order, 6,000 items
  .venv/bin/python benchmarks/replay.py --scenario in-order-pooled --items 3000
"""

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _django_env import setup_django  # noqa: E402


@dataclass(frozen=True)
class Scenario:
    """An ordered stream and the product settings it runs under."""

    name: str
    description: str
    seed: list  # labelled messages imported before the stream starts
    stream: list  # messages in arrival order
    retrain_every: int = 500
    target: float = 0.90
    certification: str = "per_category"
    delta: float = 0.05
    audit_rate: float = 0.05
    # What an analyst answers for a message (default: its true desk).
    truth: Callable = field(default=lambda message: message.desk)


def first_per_desk(messages: list, per_desk: int) -> list:
    seen: dict[str, int] = {}
    chosen = []
    for m in messages:
        if seen.get(m.desk, 0) < per_desk:
            seen[m.desk] = seen.get(m.desk, 0) + 1
            chosen.append(m)
    return chosen


def in_order(args: argparse.Namespace, *, certification: str = "per_category") -> Scenario:
    from triage.management.demo_data import load_messages

    messages = load_messages("train")  # the CSV's own order
    seed = first_per_desk(messages, args.seed_per_class)
    seed_ids = {m.id for m in seed}
    stream = [m for m in messages if m.id not in seed_ids][: args.items]
    return Scenario(
        name="in-order" if certification == "per_category" else f"in-order-{certification}",
        description=(
            f"train split in file order, {args.seed_per_class} labels per class to start, "
            f"{len(stream)} items, certification {certification}"
        ),
        seed=seed,
        stream=stream,
        retrain_every=args.retrain_every,
        target=args.target,
        certification=certification,
    )


SCENARIOS: dict[str, Callable[[argparse.Namespace], Scenario]] = {
    "in-order": in_order,
    "in-order-pooled": lambda args: in_order(args, certification="pooled"),
}


def baseline_thresholds(version, target: float) -> dict[str, dict[str, float | None]]:
    """Point-estimate and old-Wilson thresholds on the version's own evidence."""
    from _wilson import wilson_threshold

    from triage.routing.evidence import HoldoutPredictions

    evidence = HoldoutPredictions.from_json(version.holdout)
    out: dict[str, dict[str, float | None]] = {"point estimate": {}, "old Wilson": {}}
    if evidence is None:
        return out
    for slug in evidence.labels:
        conf, right = evidence.for_category(slug)
        order = np.argsort(-conf, kind="stable")
        precision = np.cumsum(right[order]) / np.arange(1, len(order) + 1)
        ok = np.flatnonzero(precision >= target)
        # The lowest threshold whose evidence precision reaches the target (at least 5 items).
        ok = ok[ok >= 4]
        out["point estimate"][slug] = float(conf[order][ok[-1]]) if len(ok) else None
        out["old Wilson"][slug] = wilson_threshold(conf, right, target=target).threshold
    return out


def run(scenario: Scenario) -> dict:
    from _embeddings import message_vectors
    from django.contrib.auth.models import User
    from django.db import transaction

    from reviews.claims import claim_next_task
    from reviews.decisions import submit_review
    from triage import training
    from triage.api import ingest
    from triage.api.intake import ItemIn
    from triage.management.demo_data import DESKS
    from triage.ml.encoder import configured_spec, encoder_for
    from triage.models import Category, Embedding, Item, ModelVersion, Prediction, RoutingPolicy

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
        },
    )
    analyst = User.objects.create_user(f"replay-{scenario.name}")

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

    with transaction.atomic():
        seeded = ingest.import_history(
            items=[
                ItemIn(external_id=m.id, text=m.text, label=scenario.truth(m))
                for m in scenario.seed
            ],
            categories=categories,
        )
        cache_embeddings(seeded.created)
    started = time.perf_counter()
    first = training.retrain(actor="replay")
    chunks = [
        {
            "retrain": "first model",
            "retrain_seconds": time.perf_counter() - started,
            "gate": first.message,
        }
    ]
    truth_of = {m.id: scenario.truth(m) for m in messages}
    for start in range(0, len(scenario.stream), scenario.retrain_every):
        chunk = scenario.stream[start : start + scenario.retrain_every]
        with transaction.atomic():
            # Classification is queued on commit, so the vectors are cached before it runs.
            ingested = ingest.ingest_items(
                items=[ItemIn(external_id=m.id, text=m.text) for m in chunk]
            )
            cache_embeddings(ingested.created)
        ids = [item.pk for item in ingested.created]
        predictions = list(
            Prediction.objects.filter(item_id__in=ids).select_related("item", "label")
        )
        if len(predictions) != len(ids):
            # The hand-off to classification is robust (logged, not raised): say so here.
            raise SystemExit(f"only {len(predictions)} of {len(ids)} items were classified")
        reviewed = 0
        while (task := claim_next_task(user=analyst)) is not None:
            submit_review(
                task_id=task.pk,
                user=analyst,
                category_slug=truth_of[task.item.external_id],
            )
            reviewed += 1
        auto = [p for p in predictions if p.route == Prediction.Route.AUTO]
        right = [p.label.slug == truth_of[p.item.external_id] for p in auto]
        version = predictions[0].model_version if predictions else None
        row = {
            "items": len(chunk),
            "people": sum(p.route == Prediction.Route.REVIEW for p in predictions) / len(chunk),
            "auto": len(auto) / len(chunk),
            "precision": float(np.mean(right)) if auto else None,
            "reviews": reviewed,
            "model": version.pk if version else None,
        }
        if version is not None:
            for rule, thresholds in baseline_thresholds(version, scenario.target).items():
                chosen = [
                    p
                    for p in predictions
                    if thresholds.get(p.label.slug) is not None
                    and p.confidence >= thresholds[p.label.slug]
                ]
                row[rule] = (
                    len(chosen) / len(chunk),
                    float(np.mean([p.label.slug == truth_of[p.item.external_id] for p in chosen]))
                    if chosen
                    else None,
                )
        started = time.perf_counter()
        result = training.retrain(actor="replay")
        row["retrain_seconds"] = time.perf_counter() - started
        row["retrain"] = "promoted" if result.promoted else "held" if result.held else "kept"
        row["gate"] = result.message
        chunks.append(row)
        print(
            f"  chunk {len(chunks) - 1}: people {row['people']:.1%}, auto {row['auto']:.1%}"
            f" (precision {fmt(row['precision'])}), v{row['model']}, then {row['retrain']}"
            f" ({row['retrain_seconds']:.1f}s)",
            flush=True,
        )
    champion = ModelVersion.objects.champion()
    return {
        "chunks": chunks,
        "items": Item.objects.count(),
        "champion": champion.pk if champion else None,
    }


def fmt(value, spec=".1%"):
    return "-" if value is None else format(value, spec)


def report(scenario: Scenario, result: dict, seconds: float) -> None:
    rows = result["chunks"][1:]
    print(f"\nscenario {scenario.name}: {scenario.description}")
    print(
        f"target {scenario.target:.0%}, delta {scenario.delta:g}, audit rate "
        f"{scenario.audit_rate:.0%}, retrain every {scenario.retrain_every}; first model: "
        f"{result['chunks'][0]['gate']}"
    )
    header = [
        "chunk",
        "model",
        "people",
        "auto",
        "auto prec.",
        "point-est. auto/prec.",
        "old Wilson auto/prec.",
        "gate after",
    ]
    table = []
    for i, r in enumerate(rows, 1):
        pe = r.get("point estimate", (None, None))
        ow = r.get("old Wilson", (None, None))
        table.append(
            [
                str(i),
                f"v{r['model']}",
                fmt(r["people"]),
                fmt(r["auto"]),
                fmt(r["precision"]),
                f"{fmt(pe[0])} / {fmt(pe[1])}",
                f"{fmt(ow[0])} / {fmt(ow[1])}",
                r["retrain"],
            ]
        )
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *table]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    n = sum(r["items"] for r in rows)
    people = sum(r["people"] * r["items"] for r in rows) / n
    auto_items = sum(r["auto"] * r["items"] for r in rows)
    right = sum((r["precision"] or 0) * r["auto"] * r["items"] for r in rows)
    promoted = sum(r["retrain"] == "promoted" for r in rows)
    held = sum(r["retrain"] == "held" for r in rows)
    print(
        f"\ntotal: {n} items; decided by people {people:.1%}; "
        f"auto-actioned {auto_items / n:.1%} at realised precision "
        f"{fmt(right / auto_items if auto_items else None)}; the gate promoted {promoted} of "
        f"{len(rows)} retrains (held {held} for an admin); "
        f"retrain median {np.median([r['retrain_seconds'] for r in rows]):.1f}s; "
        f"whole run {seconds:.0f}s"
    )
    print("gate messages:")
    for i, r in enumerate(rows, 1):
        print(f"  after chunk {i}: {r['gate']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="in-order", choices=sorted(SCENARIOS))
    parser.add_argument("--items", type=int, default=6000)
    parser.add_argument("--retrain-every", type=int, default=500)
    parser.add_argument("--seed-per-class", type=int, default=5)
    parser.add_argument("--target", type=float, default=0.90)
    args = parser.parse_args()
    if not 0 < args.target <= 1:
        parser.error(f"--target must be in (0, 1], got {args.target}")
    if args.retrain_every < 1 or args.items < 1 or args.seed_per_class < 1:
        parser.error("--items, --retrain-every and --seed-per-class must be positive")
    # A fresh database per run (one scenario per process), so runs never share models.
    work = setup_django()
    scenario = SCENARIOS[args.scenario](args)
    print(f"[{time.strftime('%H:%M:%S')}] {scenario.name}: {scenario.description}")
    print(f"work dir: {work}", flush=True)
    started = time.perf_counter()
    result = run(scenario)
    report(scenario, result, time.perf_counter() - started)


if __name__ == "__main__":
    main()
