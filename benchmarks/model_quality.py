"""Model candidates on the demo data: accuracy, certified coverage, items per second per core.

Each candidate is fitted as the product fits it: cross-fitted on a labelled sample of the
train split (its out-of-fold predictions are the evidence), one temperature fitted on them;
thresholds certified on that evidence at each target by the product's own certification
(triage.routing.certify, called in certify_scopes only), per category and as one pooled
threshold; then the served model (trained on every labelled example) scores the test split,
which nothing was tuned on. Reported: the share of test items each policy automates and
the precision it reaches there. The baseline is today's default, the MiniLM embedding head,
measured in the same run.

Candidates: TF-IDF alone (reference), MiniLM head (baseline), MiniLM ensemble (the head
averaged with a TF-IDF head, plus the nearest labelled examples' vote,
triage.training.fit.cross_fit_ensemble; also without the vote, as before); with --int8 the same
two on the int8 ONNX MiniLM, with --mpnet DIR on all-mpnet-base-v2; with --finetune N a
MiniLM fine-tuned on N labelled texts (1 epoch, length 128), its head calibrated and
certified on the labelled texts it did not see (as triage.training.finetune does).

Items/second/core: one thread (torch and BLAS), 256 test texts, embedding + head.

Run from the project root:
  .venv/bin/python benchmarks/model_quality.py [--train 6000] [--test N] [--mpnet DIR]
      [--finetune 1000]
"""

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _django_env import setup_django  # noqa: E402

TORCH = "triage.ml.encoder.TransformerEncoder"
DELTA, MIN_SUPPORT = 0.05, 30


def certify_scopes(evidence, target):  # type: ignore[no-untyped-def]
    """Thresholds certified on the evidence: per category, and one pooled over all.

    The one call into triage.routing.certify: its signature may change, this stays small.
    """
    from triage.routing.certify import certify_threshold

    thresholds = {}
    for slug in evidence.labels:
        conf, correct = evidence.for_category(slug)
        cert = certify_threshold(conf, correct, target=target, delta=DELTA, min_support=MIN_SUPPORT)
        thresholds[slug] = cert.threshold
    conf, correct = evidence.for_categories(evidence.labels)
    pooled = certify_threshold(conf, correct, target=target, delta=DELTA, min_support=MIN_SUPPORT)
    return thresholds, pooled.threshold


def on_test(labels, probs, truth, thresholds, pooled):  # type: ignore[no-untyped-def]
    """Share of test items automated and its precision, per category and pooled."""
    predicted, confidence = probs.argmax(axis=1), probs.max(axis=1)
    correct = predicted == truth
    out = {}
    chosen_all = np.zeros(len(truth), dtype=bool)
    for k, slug in enumerate(labels):
        mine = predicted == k
        t = thresholds[slug]
        chosen = mine & (confidence >= t) if t is not None else np.zeros_like(mine)
        chosen_all |= chosen
        out[slug] = (chosen.sum() / max(mine.sum(), 1), _precision(correct, chosen))
    out["per-category"] = (chosen_all.mean(), _precision(correct, chosen_all))
    chosen = confidence >= pooled if pooled is not None else np.zeros(len(truth), dtype=bool)
    out["pooled"] = (chosen.mean(), _precision(correct, chosen))
    return out


def _precision(correct, chosen):  # type: ignore[no-untyped-def]
    return float(correct[chosen].mean()) if chosen.any() else None


class Candidate:
    """Calibrated out-of-fold probabilities on the labelled set, and test probabilities."""

    def __init__(self, name, labels, oof, test, per_item):  # type: ignore[no-untyped-def]
        self.name, self.labels, self.oof, self.test = name, labels, oof, test
        self.per_item = per_item  # () -> seconds per item on one core


def head_candidates(name, encoder, vectors, texts, y, test_vectors, test_texts):  # type: ignore[no-untyped-def]
    from triage.ml.heads import head_proba
    from triage.training.fit import cross_fit_ensemble, cross_fit_head

    started = time.process_time()
    single = cross_fit_head(vectors, labels=y)
    middle = time.process_time()
    ensemble = cross_fit_ensemble(vectors, texts, labels=y)
    print(
        f"  cross-fit CPU seconds (5 folds + the served head, cached embeddings): head "
        f"{middle - started:.0f}s, ensemble {time.process_time() - middle:.0f}s",
        flush=True,
    )
    # The settings of earlier releases: C = 10 for both, the logits averaged evenly, no
    # vote; then C = 1 and 0.7 with no vote (stops 24-25).
    before = cross_fit_ensemble(vectors, texts, labels=y, c=10.0, weight=0.5, knn_weight=0)
    no_vote = cross_fit_ensemble(vectors, texts, labels=y, knn_weight=0)
    before_head = cross_fit_head(vectors, labels=y, c=10.0)
    out = []
    fits = (
        ("head (C=10, before)", before_head),
        ("head", single),
        ("ensemble (C=10, even, no vote, before)", before),
        ("ensemble without the vote (before)", no_vote),
        ("ensemble", ensemble),
    )
    for suffix, fit in fits:
        test = head_proba(fit.head, test_vectors, test_texts)
        timing = lambda head=fit.head: _per_item(encoder, head, test_texts)  # noqa: E731
        out.append(Candidate(f"{name} {suffix}", fit.head.labels, fit.oof_probs, test, timing))
    return out


def _per_item(encoder, head, texts):  # type: ignore[no-untyped-def]
    import torch
    from threadpoolctl import threadpool_limits

    from triage.ml.heads import head_proba

    sample = list(texts[:256])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            started = time.process_time()
            head_proba(head, encoder.encode(sample), sample)
            return (time.process_time() - started) / len(sample)
    finally:
        torch.set_num_threads(threads)


def tfidf_candidate(texts, y, test_texts):  # type: ignore[no-untyped-def]
    from threadpoolctl import threadpool_limits

    from triage.ml.calibration import fit_temperature, softmax
    from triage.ml.tfidf import train_tfidf_head
    from triage.training.fit import out_of_fold_logits

    head = train_tfidf_head(texts, y)

    def fold(train_idx, test_idx):  # type: ignore[no-untyped-def]
        h = train_tfidf_head([texts[i] for i in train_idx], [y[i] for i in train_idx])
        return h.labels, h.logits([texts[i] for i in test_idx])

    oof = out_of_fold_logits(y, head.labels, fold, folds=5, seed=0)
    t = fit_temperature(oof, np.array([head.labels.index(v) for v in y]))

    def per_item():  # type: ignore[no-untyped-def]
        with threadpool_limits(limits=1):
            started = time.process_time()
            head.logits(test_texts[:256])
            return (time.process_time() - started) / 256

    test = softmax(head.logits(test_texts), t)
    return Candidate("tfidf alone", head.labels, softmax(oof, t), test, per_item)


def fine_tuned_candidate(n, train, y, test_texts, base_spec):  # type: ignore[no-untyped-def]
    """Encoder tuned on the first n labelled texts; head on them; evidence the rest."""
    from _embeddings import message_vectors
    from django.conf import settings

    from triage.ml.calibration import fit_temperature, softmax
    from triage.ml.encoder import encoder_for, packaged_model_dir
    from triage.ml.finetune import fine_tune_encoder
    from triage.ml.heads import train_logistic_head

    out_dir = Path(settings.TRIAGE_ARTIFACT_DIR) / f"encoder-finetuned-{n}"
    started = time.perf_counter()
    if not out_dir.exists():
        fine_tune_encoder(
            packaged_model_dir(),
            [m.text for m in train[:n]],
            y[:n],
            out_dir=out_dir,
            epochs=1,
            max_length=128,
        )
    print(f"  fine-tuned on {n} texts in {time.perf_counter() - started:.0f}s", flush=True)
    encoder = encoder_for(base_spec | {"path": str(out_dir), "max_length": 128})
    vectors = message_vectors(train, encoder)
    head = train_logistic_head(vectors[:n], y[:n])
    rest = np.array([head.labels.index(v) for v in y[n:]])
    logits = head.logits(vectors[n:])
    t = fit_temperature(logits, rest)
    test_vectors = message_vectors(TEST_MESSAGES, encoder)
    from triage.ml.heads import LinearHead

    served = LinearHead(head.labels, head.weights, head.bias, t)
    cand = Candidate(
        f"minilm fine-tuned ({n})",
        head.labels,
        softmax(logits, t),
        served.predict_proba(test_vectors),
        lambda: _per_item(encoder, served, test_texts),
    )
    cand.evidence_truth = y[n:]
    return cand


TEST_MESSAGES: list = []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--train", type=int, default=6000, help="labelled sample of the train split"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="which random sample (0: the one quality.py reports)"
    )
    parser.add_argument("--test", type=int, default=None, help="cap the test split")
    parser.add_argument("--targets", default="0.9,0.95")
    parser.add_argument("--mpnet", default="", help="an all-mpnet-base-v2 directory")
    parser.add_argument("--finetune", type=int, default=0, help="fine-tune on this many texts")
    parser.add_argument("--int8", action="store_true", help="also MiniLM on the int8 ONNX runtime")
    args = parser.parse_args()
    try:
        targets = [float(t) for t in args.targets.split(",")]
    except ValueError:
        parser.error(f"--targets must be comma-separated numbers, got {args.targets!r}")
    if not all(0 < t < 1 for t in targets):
        parser.error(f"each target must be between 0 and 1, got {args.targets}")
    work = setup_django()
    from _embeddings import message_vectors

    from triage.management.demo_data import load_messages
    from triage.ml.encoder import encoder_for

    train = random.Random(args.seed).sample(load_messages("train"), args.train)
    TEST_MESSAGES.extend(load_messages("test")[: args.test])
    texts, y = [m.text for m in train], [m.desk for m in train]
    test_texts, test_y = [m.text for m in TEST_MESSAGES], [m.desk for m in TEST_MESSAGES]
    print(
        f"model_quality: labelled={len(train)} (train split sample, seed {args.seed}), "
        f"test={len(TEST_MESSAGES)}, targets={targets}, delta={DELTA}, "
        f"min_support={MIN_SUPPORT}\nwork dir: {work}",
        flush=True,
    )
    minilm_spec = {"class": TORCH, "path": "", "max_length": 256}
    candidates = [tfidf_candidate(texts, y, test_texts)]
    encoders = [("minilm", minilm_spec)]
    if args.int8:
        encoders.append(
            ("minilm int8", minilm_spec | {"class": "triage.ml.onnx_encoder.OnnxEncoder"})
        )
    if args.mpnet:
        encoders.append(("mpnet", minilm_spec | {"path": args.mpnet, "family": "mpnet"}))
    for name, spec in encoders:
        encoder = encoder_for(spec)
        print(f"[{time.strftime('%H:%M:%S')}] {name}: embedding (cached) ...", flush=True)
        vectors = message_vectors(train, encoder)
        test_vectors = message_vectors(TEST_MESSAGES, encoder)
        candidates += head_candidates(name, encoder, vectors, texts, y, test_vectors, test_texts)
    if args.finetune:
        candidates.append(fine_tuned_candidate(args.finetune, train, y, test_texts, minilm_spec))
    report(candidates, y, test_y, targets)


def report(candidates, y, test_y, targets):  # type: ignore[no-untyped-def]
    from triage.routing.evidence import HoldoutPredictions

    rows = []
    for c in candidates:
        labels = list(c.labels)
        truth = np.array([labels.index(v) for v in test_y])
        evidence = HoldoutPredictions.from_scores(labels, c.oof, getattr(c, "evidence_truth", y))
        row = {"name": c.name, "acc": float((c.test.argmax(axis=1) == truth).mean())}
        row["oof_acc"] = float((evidence.predicted == evidence.truth).mean())
        for t in targets:
            thresholds, pooled = certify_scopes(evidence, t)
            row[t] = on_test(labels, c.test, truth, thresholds, pooled)
        row["items_per_s"] = 1.0 / max(c.per_item(), 1e-9)
        rows.append(row)
    header = ["candidate", "acc test", "acc oof"]
    for t in targets:
        header += [f"@{t:.0%} per-cat auto/prec", f"@{t:.0%} pooled auto/prec"]
    header.append("items/s/core")
    table = [header]
    for r in rows:
        cells = [r["name"], f"{r['acc']:.3f}", f"{r['oof_acc']:.3f}"]
        for t in targets:
            for scope in ("per-category", "pooled"):
                share, prec = r[t][scope]
                cells.append(f"{share:.1%} / {'-' if prec is None else format(prec, '.3f')}")
        cells.append(f"{r['items_per_s']:.0f}")
        table.append(cells)
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print()
    for k, row in enumerate(table):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if k == 0:
            print("  ".join("-" * w for w in widths))
    for t in targets:
        print(
            f"\nper category at {t:.0%}: share of the category's test predictions automated"
            " / precision reached"
        )
        for r in rows:
            cells = [
                f"{slug}={share:.1%}/{'-' if prec is None else format(prec, '.2f')}"
                for slug, (share, prec) in r[t].items()
                if slug not in ("per-category", "pooled")
            ]
            print(f"  {r['name']}: " + ", ".join(cells))
    base = next(r for r in rows if r["name"] == "minilm ensemble without the vote (before)")
    print(
        "\nbaseline (the default before): minilm ensemble without the nearest examples' vote. "
        "auto = share of ALL test items automated "
        "with thresholds certified (delta 0.05, exact one-sided bound, triage.routing.certify) "
        "on the candidate's out-of-fold evidence; prec = precision reached on them. "
        f"Items/s/core: one thread, 256 test texts (baseline {base['items_per_s']:.0f}). "
        "One seed, one sample; shared 2-core machine, so speeds are rough."
    )


if __name__ == "__main__":
    main()
