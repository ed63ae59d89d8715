"""Certified thresholds on the disaster messages: the old rule against the new, side by side.

Two regimes, so both are measured:
- demo: random samples of the train split as large as the demo's history (6,000), the
  study's 10,000 and the whole train split (thin and thick data);
- small: a few hundred examples per category (default 300), over several random samples.

For each regime and target precision (90, 95, 99%):
- old: the head trained on 80% of the sample, temperature from out-of-fold logits on that
  80%, thresholds from the Wilson rule (two-sided 95%, lowest passing threshold among all)
  on the other 20% (the product's holdout before issue 8);
- before 17, per category / pooled: K = 5 heads cross-fitted on the whole sample, thresholds
  certified by fixed-sequence testing with an exact one-sided Clopper-Pearson bound
  (delta 0.05) on the out-of-fold predictions, walks starting at 2·n0, 8·n0, 32·n0, each
  walk alone at delta / walks (a union bound, benchmarks/_union_walks.py);
- default, union-bound walks: the default policy with today's walks each tested alone at
  delta / walks, as before the fallback procedure (the rule of stops 22-25);
- default (thin pooled), per category, pooled: the product's default head (the ensemble of
  the embedding head and a TF-IDF head, cross-fitted) through the product's derive_rules
  with today's walks (n0, 4·n0, 16·n0 and 5/10/20% of the evidence, tested as one
  fallback sequence, triage.routing.certify); the default
  certifies thick categories alone and pools thin ones, delta split across scopes.
  The "before 17" rows use today's embedding head. The served heads are trained on all of
  the sample.
Each rule's thresholds are then applied to its served head on the official test split:
coverage = share of test messages auto-actioned, precision = their realised precision.
"oof est." is the precision the evidence showed above the threshold; the gap to the test
precision measures how far the served head strays from its out-of-fold estimate.

Embeddings come from the real encoder (all-MiniLM-L6-v2), cached on disk by
benchmarks/_embeddings.py. Tuning never looks at the test split.

Run from the project root:  .venv/bin/python benchmarks/quality.py [--small-seeds 5]
"""

import argparse
import functools
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
RULES = (
    "old: holdout + Wilson",
    "before 17: per category",
    "before 17: pooled",
    "default, union-bound walks",
    "default: thin pooled",
    "per category",
    "pooled",
)


def rules_on(x, y, x_test, y_test, *, texts, texts_test, targets, min_support, seed):
    """Coverage and realised precision on test for the old rule and the new ones.

    "before 17" rows: today's embedding head; the others: the product's default head
    (settings.TRIAGE_HEAD: the ensemble, unless configured otherwise)."""
    from _wilson import wilson_threshold
    from django.conf import settings

    from triage.routing.evidence import HoldoutPredictions
    from triage.training.fit import cross_fit_ensemble, cross_fit_head

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
    today_fit = cross_fit_head(x, labels=y)
    today_evidence = HoldoutPredictions.from_scores(today_fit.head.labels, today_fit.oof_probs, y)
    test_today = HoldoutPredictions.from_scores(
        today_fit.head.labels, today_fit.head.predict_proba(x_test), y_test
    )
    started = time.perf_counter()
    ensemble = settings.TRIAGE_HEAD == "ensemble"
    new_fit = cross_fit_ensemble(x, texts, labels=y) if ensemble else today_fit
    new_seconds = time.perf_counter() - started
    new_evidence = HoldoutPredictions.from_scores(new_fit.head.labels, new_fit.oof_probs, y)
    test_old = HoldoutPredictions.from_scores(
        old_fit.head.labels, old_fit.head.predict_proba(x_test), y_test
    )
    test_new = HoldoutPredictions.from_scores(
        new_fit.head.labels,
        new_fit.head.predict_proba(x_test, texts_test)
        if ensemble
        else new_fit.head.predict_proba(x_test),
        y_test,
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
        policy_rules = {
            rule: policy_thresholds(
                today_evidence if rule.startswith("before") else new_evidence,
                labels,
                target,
                mode,
                design,
                min_support,
                union,
            )
            for rule, (mode, design, union) in POLICIES.items()
        }
        for rule in RULES:
            if rule == RULES[0]:
                thresholds, test, evidence = old, test_old, old_evidence
            elif rule.startswith("before"):
                thresholds, test, evidence = policy_rules[rule][0], test_today, today_evidence
            else:
                thresholds, test, evidence = policy_rules[rule][0], test_new, new_evidence
            rows[(rule, target)] = apply(test, thresholds) | {
                "estimate": estimate(evidence, thresholds),
                "certified": sum(t is not None for t in thresholds.values()),
                "evidence": len(evidence),
            }
        rows[("why", target)] = policy_rules[RULES[4]][1]
    from triage.routing.frontier import frontier
    from triage.routing.scopes import Settings

    shape = frontier(
        new_evidence,
        slugs=labels,
        settings=Settings(
            target=None,
            default_threshold=1.0,
            min_support=min_support,
            delta=0.05,
            mode="fallback",
        ),
    )
    rows["highest"] = {**shape.highest, "pooled": shape.highest_pooled}
    rows["seconds"] = {"old": old_seconds, "new": new_seconds}
    return rows


def policy_thresholds(evidence, labels, target, mode, design, min_support, union=False):
    """({slug: threshold}, {slug: why not}) from the product's own derive_rules.

    ``union``: the walks tested each alone at delta / walks (benchmarks/_union_walks.py)
    in place of the product's fallback sequence."""
    from _union_walks import union_walks_threshold

    import triage.routing.certify as certify
    import triage.routing.scopes as scopes
    from triage.routing.scopes import Settings, derive_rules

    settings = Settings(
        target=target, default_threshold=1.0, min_support=min_support, delta=0.05, mode=mode
    )
    saved = certify.certify_threshold.__kwdefaults__["design"]
    saved_rule = scopes.certify_threshold
    certify.certify_threshold.__kwdefaults__["design"] = design
    if union:
        scopes.certify_threshold = functools.partial(union_walks_threshold, design=design)
    try:
        reports = derive_rules(
            dict.fromkeys(labels, target),
            thresholds=dict.fromkeys(labels, 1.0),
            holdout=evidence,
            settings=settings,
        )
    finally:
        certify.certify_threshold.__kwdefaults__["design"] = saved
        scopes.certify_threshold = saved_rule
    return (
        {r.slug: r.rule.threshold for r in reports},
        {r.slug: f"[{r.scope}] {r.rule.note}" for r in reports},
    )


def _policies():
    from triage.routing.walks import DEFAULT_WALKS, GEOMETRIC_ONLY

    return {
        RULES[1]: ("per_category", GEOMETRIC_ONLY, True),
        RULES[2]: ("pooled", GEOMETRIC_ONLY, True),
        RULES[3]: ("fallback", DEFAULT_WALKS, True),
        RULES[4]: ("fallback", DEFAULT_WALKS, False),
        RULES[5]: ("per_category", DEFAULT_WALKS, False),
        RULES[6]: ("pooled", DEFAULT_WALKS, False),
    }


POLICIES: dict = {}


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
    parser.add_argument(
        "--train",
        type=int,
        nargs="+",
        default=[6000, 10000, 0],
        help="demo regimes: train-split sample sizes (0: the whole train split)",
    )
    parser.add_argument("--small", type=int, default=300, help="small regime: examples per desk")
    parser.add_argument("--small-seeds", type=int, default=5, help="random small samples")
    parser.add_argument("--min-support", type=int, default=30)
    args = parser.parse_args()

    work = setup_django()
    POLICIES.update(_policies())
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

    demos = {}
    for size in args.train:
        size = size or len(train)
        demo_idx = random.Random(0).sample(range(len(train)), min(size, len(train)))
        demos[size] = demo = rules_on(
            x_train_all[demo_idx],
            [train[i].desk for i in demo_idx],
            x_test,
            y_test,
            texts=[train[i].text for i in demo_idx],
            texts_test=[m.text for m in test],
            targets=TARGETS,
            min_support=args.min_support,
            seed=0,
        )
        print_table(f"demo regime: {len(demo_idx)} labelled train-split messages", [demo], TARGETS)
        print(
            "  highest target certifiable now (default policy): "
            + ", ".join(f"{k} {fmt(v, '.0%')}" for k, v in demo["highest"].items()),
            flush=True,
        )

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
                texts=[train[i].text for i in idx],
                texts_test=[m.text for m in test],
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
    for size, demo in demos.items():
        print(f"\nwhy not ({size} labels, default policy):")
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
