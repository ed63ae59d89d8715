"""Certified thresholds on the disaster messages: the old rule against the new, side by side.

Two regimes, so both are measured:
- demo: a random sample of the train split as large as the demo's history (6,000);
- small: a few hundred examples per category (default 300), over several random samples.

For each regime and target precision (90, 95, 99%):
- old: the head trained on 80% of the sample, temperature from out-of-fold logits on that
  80%, thresholds from the Wilson rule (two-sided 95%, lowest passing threshold among all)
  on the other 20% (the product's holdout before issue 8);
- new, per category / pooled: K = 5 heads cross-fitted on the whole sample, thresholds
  certified by fixed-sequence testing with an exact one-sided Clopper-Pearson bound
  (delta 0.05) on the out-of-fold predictions; the served head is trained on all of them.
Each rule's thresholds are then applied to its served head on the official test split:
coverage = share of test messages auto-actioned, precision = their realised precision.
"oof est." is the precision the evidence showed above the threshold; the gap to the test
precision measures how far the served head strays from its out-of-fold estimate.

Embeddings come from the real encoder (all-MiniLM-L6-v2), cached on disk by
benchmarks/_embeddings.py. Tuning never looks at the test split.

Run from the project root:  .venv/bin/python benchmarks/quality.py [--small-seeds 5]
"""

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _django_env import setup_django  # noqa: E402

TARGETS = (0.90, 0.95, 0.99)
RULES = ("old: holdout + Wilson", "new: per category", "new: pooled")


def rules_on(x, y, x_test, y_test, *, targets, min_support, seed):
    """Coverage and realised precision on test for the old rule and the new ones."""
    from _wilson import wilson_threshold

    from triage.routing.certify import certify_threshold
    from triage.routing.evidence import HoldoutPredictions
    from triage.training.fit import cross_fit_head

    labels = sorted(set(y))
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(0.8 * len(y))
    train_idx, holdout_idx = order[:cut], order[cut:]
    started = time.perf_counter()
    old_fit = cross_fit_head(x[train_idx], labels=[y[i] for i in train_idx])
    old_seconds = time.perf_counter() - started
    old_evidence = HoldoutPredictions.from_scores(
        old_fit.head.labels, old_fit.head.predict_proba(x[holdout_idx]), [y[i] for i in holdout_idx]
    )
    started = time.perf_counter()
    new_fit = cross_fit_head(x, labels=y)
    new_seconds = time.perf_counter() - started
    new_evidence = HoldoutPredictions.from_scores(new_fit.head.labels, new_fit.oof_probs, y)
    test_old = HoldoutPredictions.from_scores(
        old_fit.head.labels, old_fit.head.predict_proba(x_test), y_test
    )
    test_new = HoldoutPredictions.from_scores(
        new_fit.head.labels, new_fit.head.predict_proba(x_test), y_test
    )

    def apply(test, thresholds):
        chosen = np.zeros(len(test), dtype=bool)
        for k, slug in enumerate(test.labels):
            if thresholds.get(slug) is not None:
                chosen |= (test.predicted == k) & (test.confidence >= thresholds[slug])
        right = test.predicted == test.truth
        worst = None
        for k in range(len(test.labels)):
            mask = chosen & (test.predicted == k)
            if mask.any():
                p = float(right[mask].mean())
                worst = p if worst is None else min(worst, p)
        return {
            "coverage": float(chosen.mean()),
            "precision": float(right[chosen].mean()) if chosen.any() else None,
            "worst_category": worst,
        }

    def estimate(evidence, thresholds):
        chosen = np.zeros(len(evidence), dtype=bool)
        for k, slug in enumerate(evidence.labels):
            if thresholds.get(slug) is not None:
                chosen |= (evidence.predicted == k) & (evidence.confidence >= thresholds[slug])
        right = evidence.predicted == evidence.truth
        return float(right[chosen].mean()) if chosen.any() else None

    rows = {}
    for target in targets:
        old = {
            s: wilson_threshold(
                *old_evidence.for_category(s), target=target, min_support=min_support
            ).threshold
            for s in labels
        }
        per_category = {
            s: certify_threshold(
                *new_evidence.for_category(s), target=target, min_support=min_support
            ).threshold
            for s in labels
        }
        pooled_t = certify_threshold(
            new_evidence.confidence,
            new_evidence.predicted == new_evidence.truth,
            target=target,
            min_support=min_support,
        )
        pooled = dict.fromkeys(labels, pooled_t.threshold)
        for rule, thresholds, test, evidence in (
            (RULES[0], old, test_old, old_evidence),
            (RULES[1], per_category, test_new, new_evidence),
            (RULES[2], pooled, test_new, new_evidence),
        ):
            rows[(rule, target)] = apply(test, thresholds) | {
                "estimate": estimate(evidence, thresholds),
                "certified": sum(t is not None for t in thresholds.values()),
                "evidence": len(evidence),
            }
        rows[("why", target)] = {
            "pooled": pooled_t.reason,
            **{
                s: certify_threshold(
                    *new_evidence.for_category(s), target=target, min_support=min_support
                ).reason
                for s in labels
            },
        }
    rows["seconds"] = {"old": old_seconds, "new": new_seconds}
    return rows


def fmt(value, spec=".1%"):
    return "-" if value is None else format(value, spec)


def print_table(title, runs, targets):
    print(f"\n{title}")
    header = ["rule", "target", "coverage", "precision", "worst cat.", "oof est.", "certified"]
    table = []
    for target in targets:
        for rule in RULES:
            cells = [r[(rule, target)] for r in runs]
            cov = [c["coverage"] for c in cells]
            prec = [c["precision"] for c in cells if c["precision"] is not None]
            worst = [c["worst_category"] for c in cells if c["worst_category"] is not None]
            est = [c["estimate"] for c in cells if c["estimate"] is not None]
            table.append(
                [
                    rule,
                    f"{target:.0%}",
                    fmt(float(np.mean(cov))),
                    fmt(float(np.mean(prec)) if prec else None),
                    fmt(min(worst) if worst else None),
                    fmt(float(np.mean(est)) if est else None),
                    f"{sum(c['certified'] for c in cells)}/{len(cells) * 3}",
                ]
            )
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *table]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=6000, help="demo regime: train-split sample")
    parser.add_argument("--small", type=int, default=300, help="small regime: examples per desk")
    parser.add_argument("--small-seeds", type=int, default=5, help="random small samples")
    parser.add_argument("--min-support", type=int, default=30)
    args = parser.parse_args()

    work = setup_django()
    from _embeddings import message_vectors

    from triage.management.demo_data import load_messages
    from triage.ml.encoder import configured_spec, encoder_for

    encoder = encoder_for(configured_spec())
    train = load_messages("train")
    test = load_messages("test")
    vectors = message_vectors(train + test, encoder)
    x_train_all, x_test = vectors[: len(train)], vectors[len(train) :]
    y_test = [m.desk for m in test]
    print(
        f"quality: encoder {encoder.encoder_id}; test split {len(test)} messages "
        f"{dict(Counter(y_test))}; min_support {args.min_support}; delta 0.05\nwork dir: {work}",
        flush=True,
    )

    rng = random.Random(0)
    demo_idx = rng.sample(range(len(train)), args.train)
    demo = rules_on(
        x_train_all[demo_idx],
        [train[i].desk for i in demo_idx],
        x_test,
        y_test,
        targets=TARGETS,
        min_support=args.min_support,
        seed=0,
    )
    print_table(f"demo regime: {args.train} labelled train-split messages", [demo], TARGETS)

    by_desk: dict[str, list[int]] = {}
    for i, m in enumerate(train):
        by_desk.setdefault(m.desk, []).append(i)
    small_runs = []
    for seed in range(args.small_seeds):
        r = random.Random(100 + seed)
        idx = [i for desk in sorted(by_desk) for i in r.sample(by_desk[desk], args.small)]
        small_runs.append(
            rules_on(
                x_train_all[idx],
                [train[i].desk for i in idx],
                x_test,
                y_test,
                targets=TARGETS,
                min_support=args.min_support,
                seed=seed,
            )
        )
    print_table(
        f"small regime: {args.small} per desk ({3 * args.small} messages), "
        f"mean over {args.small_seeds} random samples (worst cat.: the minimum)",
        small_runs,
        TARGETS,
    )
    print("\nwhy not (demo regime, new rule):")
    for target in TARGETS:
        for scope, reason in demo[("why", target)].items():
            print(f"  {target:.0%} {scope}: {reason}")
    print(
        f"\nhead fitting, demo regime: old (one head + 5 folds on 80%) "
        f"{demo['seconds']['old']:.1f}s, new (cross-fit on all) {demo['seconds']['new']:.1f}s"
    )
    print(
        "\ncoverage / precision: share of the test split auto-actioned and its realised "
        "precision; worst cat.: the least precise category's auto-actions; oof est.: "
        "precision shown by the evidence above the thresholds; certified: categories with a "
        "threshold (pooled counts each category). One seed for the demo regime."
    )


if __name__ == "__main__":
    main()
