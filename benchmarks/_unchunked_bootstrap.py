"""The gate's paired bootstrap as it was before chunking: every resample drawn and weighed
at once (about 4.8 GB at 100,000 examples). Kept as the reference the chunked one in
triage.training.gate must match to the bit (tests/test_gate.py) and as the memory baseline
of benchmarks/hot_paths.py."""

import numpy as np


def unchunked_gaps(
    truth: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray,
    n_classes: int,
    *,
    rounds: int = 2000,
    seed: int = 0,
) -> np.ndarray:
    """Macro-F1 of the candidate minus the champion's, on each resample."""

    def weighted_f1(predicted: np.ndarray, weights: np.ndarray) -> np.ndarray:
        t = np.eye(n_classes + 1)[np.where(truth < 0, n_classes, truth)][:, :n_classes]
        p = np.eye(n_classes + 1)[np.where(predicted < 0, n_classes, predicted)][:, :n_classes]
        tp, support, counted = weights @ (t * p), weights @ t, weights @ p
        denominator = support + counted
        f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
        present = denominator > 0
        result: np.ndarray = (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)
        return result

    n = len(truth)
    draws = np.random.default_rng(seed).integers(0, n, size=(rounds, n))
    weights = np.zeros((rounds, n))
    np.add.at(weights, (np.repeat(np.arange(rounds), n), draws.ravel()), 1.0)
    return weighted_f1(candidate, weights) - weighted_f1(champion, weights)
