"""How much of the replay's stream any rule could automate: the ceiling beside the product.

The replay (benchmarks/replay.py) asks how much of its stream people decide. This asks
how much less they could decide at best, on the same stream in the same order, with two
handicaps of the replay removed:

- every label is known: before each block of `--block` items, the product's model
  (triage.training.fit.cross_fit_ensemble, the served ensemble) is fitted on the seed and
  every earlier item, with its true desk. Nothing is starved: no auto-actioned item goes
  unlabelled, and no analyst falls behind;
- `certified`: the product's own rules (triage.routing.scopes.derive_rules, the default
  scope, target `--target`, delta 0.05) certified on that model's out-of-fold evidence,
  then applied to the next block. A valid rule can do this;
- `point`: per category, the lowest threshold whose out-of-fold precision is at least the
  target, no bound (a look at the evidence without the margin that makes it valid);
- `oracle`: per category, the largest share of the next block's predictions whose
  precision is at least the target, the threshold chosen by looking at the block's own
  true labels. No rule can do that: it is the ceiling.

The people's share counts, as the replay does, every decision a person makes: an item
not automated is decided once, plus a blind second review at the product's share
(TRIAGE_SECOND_REVIEW_SHARE); an automated one is audited at the policy's base rate. The
replay's audits run higher (the audit floor), so these people's shares are lower bounds.
The first block is decided by people in both (the seed alone is 5 labels per class).

Run from the project root:
  .venv/bin/python benchmarks/replay_ceiling.py [--block 500] [--target 0.9]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from triage.models import RoutingPolicy
    from triage.routing.evidence import HoldoutPredictions

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _django_env import setup_django  # noqa: E402
from _replay_report import precise_top  # noqa: E402


def oracle_share(confidence: np.ndarray, correct: np.ndarray, target: float) -> np.ndarray:
    """The most of these predictions (most confident first) whose precision is >= target."""
    chosen = np.zeros(len(confidence), dtype=bool)
    chosen[precise_top(confidence, correct, target)] = True
    return chosen


def point_thresholds(evidence: HoldoutPredictions, target: float) -> dict[str, float | None]:
    """Per category, the lowest evidence confidence whose top-down precision is >= target."""
    out = {}
    for slug in evidence.labels:
        confidence, correct = evidence.for_category(slug)
        top = precise_top(confidence, correct, target)
        out[slug] = float(confidence[top[-1]]) if len(top) else None
    return out


def certified_thresholds(
    evidence: HoldoutPredictions, policy: RoutingPolicy
) -> dict[str, float | None]:
    """The product's rules on the evidence, under this policy's settings: {slug: threshold
    or None}."""
    from triage.routing.scopes import Settings, derive_rules

    reports = derive_rules(
        dict.fromkeys(evidence.labels, policy.target_precision),
        thresholds=dict.fromkeys(evidence.labels, policy.default_threshold),
        holdout=evidence,
        settings=Settings.of(policy),
    )
    return {r.slug: r.rule.threshold for r in reports}


def main() -> None:
    setup_django()  # first: the scopes and the policy's defaults are the model's
    from triage.models import RoutingPolicy

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block", type=int, default=500, help="items between refits")
    parser.add_argument("--items", type=int, default=6000)
    parser.add_argument("--seed-per-class", type=int, default=5)
    parser.add_argument("--target", type=float, default=0.90)
    parser.add_argument(
        "--scope",
        default=RoutingPolicy.Certification.FALLBACK,
        choices=RoutingPolicy.Certification.values,
        help="the certification scope",
    )
    args = parser.parse_args()
    if args.block < 1 or args.items < args.block or args.seed_per_class < 1:
        parser.error("--block and --seed-per-class must be positive, --items at least --block")
    if not 0 < args.target < 1:
        parser.error(f"--target must be in (0, 1), got {args.target}")
    # Unsaved: the policy's defaults (delta, min support, audit rate) with this target.
    policy = RoutingPolicy(target_precision=args.target, certification=args.scope)
    from _embeddings import message_vectors
    from _replay_scenarios import in_order
    from django.conf import settings

    from triage.ml.encoder import configured_spec, encoder_for
    from triage.ml.heads import head_proba
    from triage.routing.evidence import HoldoutPredictions
    from triage.training.fit import cross_fit_ensemble

    scenario = in_order(
        argparse.Namespace(
            seed_per_class=args.seed_per_class,
            items=args.items,
            retrain_every=args.block,
            target=args.target,
            arrive=100,
            pace=0.5,
            count=100,
            reroute="on",
        ),
        certification=args.scope,
    )
    messages = scenario.seed + scenario.stream
    vectors = message_vectors(messages, encoder_for(configured_spec()))
    texts, desks = [m.text for m in messages], [m.desk for m in messages]
    seed, n = len(scenario.seed), len(scenario.stream)
    second = settings.TRIAGE_SECOND_REVIEW_SHARE
    print(
        f"{scenario.description}; blocks of {args.block}, target {args.target:.0%}, "
        f"second reviews {second:.0%}, audits {policy.audit_rate:.0%}",
        flush=True,
    )
    print(
        "items      | certified auto, precision | point       | oracle      "
        "| per category (certified/point/oracle)"
    )
    auto = {name: np.zeros(n, dtype=bool) for name in ("certified", "point", "oracle")}
    right = np.zeros(n, dtype=bool)
    started = time.perf_counter()
    for start in range(args.block, n, args.block):
        known = seed + start
        fit = cross_fit_ensemble(vectors[:known], texts[:known], labels=desks[:known])
        labels = list(fit.head.labels)
        block = slice(known, min(known + args.block, seed + n))
        probs = head_proba(fit.head, vectors[block], texts[block])
        predicted, confidence = probs.argmax(axis=1), probs.max(axis=1)
        correct = np.array([labels[k] == d for k, d in zip(predicted, desks[block], strict=True)])
        evidence = HoldoutPredictions.from_scores(labels, fit.oof_probs, desks[:known])
        thresholds = {
            "certified": certified_thresholds(evidence, policy),
            "point": point_thresholds(evidence, args.target),
        }
        rows = slice(start, start + len(correct))
        right[rows] = correct
        parts = []
        for k, slug in enumerate(labels):
            mine = predicted == k
            chosen: dict[str, np.ndarray] = {}
            for name, by_slug in thresholds.items():
                t = by_slug[slug]
                chosen[name] = mine & (confidence >= t) if t is not None else np.zeros_like(mine)
            chosen["oracle"] = np.zeros_like(mine)
            chosen["oracle"][mine] = oracle_share(confidence[mine], correct[mine], args.target)
            for name, picked in chosen.items():
                auto[name][rows] |= picked
            counts = "/".join(str(chosen[name].sum()) for name in auto)
            parts.append(f"{slug} {counts} of {mine.sum()}")
        cells = [f"{auto[k][rows].mean():6.1%} {_precision(correct, auto[k][rows])}" for k in auto]
        print(
            f"{start:>5}-{start + len(correct):<5}| {cells[0]:<25} | {cells[1]:<11} | "
            f"{cells[2]:<11} | " + "; ".join(parts),
            flush=True,
        )
    print(f"\n{n} items, {time.perf_counter() - started:.0f}s; the first {args.block} by people")
    for name, acted in auto.items():
        people = (~acted).sum() * (1 + second) + acted.sum() * policy.audit_rate
        print(
            f"{name:>9}: auto {acted.mean():.1%} at precision {_precision(right, acted)}; "
            f"people decide at least {people / n:.1%} of the items"
        )


def _precision(correct: np.ndarray, chosen: np.ndarray) -> str:
    return f"{correct[chosen].mean():.3f}" if chosen.any() else "  —  "


if __name__ == "__main__":
    main()
