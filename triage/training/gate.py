"""The promotion gate: does a candidate replace the champion?

The rule, in order:

1. Both models are scored on the same examples, ones *neither* trained on (the
   candidate through its out-of-fold predictions, the champion as it serves),
   over the same label set: categories inactive now are left out for both, and
   each model's probabilities are restricted to the active categories.
2. A paired bootstrap of the macro-F1 difference (candidate - champion) on
   those examples gives a 90% interval (5% each side).
   - Its upper end below 0: the candidate is worse. Rejected.
   - Its lower end above 0: the candidate is better.
   - Otherwise the difference is within noise, and the champion stays, unless
     the candidate learned from at least MORE_DATA_RATIO times the champion's
     examples. Why that exception: heads on the same encoder improve with data
     far more often than not, the evidence for thresholds grows with it, and a
     paired test on the few hundred new examples between retrains rarely
     separates two good models; without it the champion would never refresh.
     Why not promote every tie: that is what made the gate flip-flop on
     differences of 0.003.
3. A candidate that would pass is held for an admin (not promoted
   automatically) if, at the current targets, it would automate more than
   MAX_AUTOMATION_DROP less of its evidence than the champion does of its own.

decide() is pure: the numbers in, the decision out.
"""

from dataclasses import dataclass

import numpy as np

MIN_GATE_EXAMPLES = 30
MORE_DATA_RATIO = 1.25
MAX_AUTOMATION_DROP = 0.05
BOOTSTRAP_ROUNDS = 2000
INTERVAL = 0.90
# Memory per array of a chunk of bootstrap resamples (see paired_bootstrap).
CHUNK_BYTES = 32 << 20


@dataclass(frozen=True)
class PairedComparison:
    """Macro-F1 of both models on the same examples, and the bootstrap interval of the gap."""

    n: int
    candidate_f1: float
    champion_f1: float
    low: float
    high: float

    @property
    def difference(self) -> float:
        return self.candidate_f1 - self.champion_f1


def macro_f1(truth: np.ndarray, *, predicted: np.ndarray, n_classes: int) -> float:
    counts = _Counts.of(truth, predicted, n_classes)
    return float(counts.macro_f1(np.ones((1, len(truth))))[0])


@dataclass(frozen=True)
class _Counts:
    """One-hot truth and predictions, so that a row of example weights (bootstrap counts)
    gives each class's true positives, support and predicted count as one product."""

    truth: np.ndarray  # (n, classes)
    predicted: np.ndarray  # (n, classes)
    hits: np.ndarray  # (n, classes): truth * predicted

    @classmethod
    def of(cls, truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> "_Counts":
        # -1 (a class the model cannot predict, or none) is a row of zeros.
        t = np.eye(n_classes + 1)[np.where(truth < 0, n_classes, truth)][:, :n_classes]
        p = np.eye(n_classes + 1)[np.where(predicted < 0, n_classes, predicted)][:, :n_classes]
        return cls(truth=t, predicted=p, hits=t * p)

    def macro_f1(self, weights: np.ndarray) -> np.ndarray:
        """Macro-F1 for each row of example weights, over classes present."""
        tp = weights @ self.hits
        support = weights @ self.truth
        predicted_count = weights @ self.predicted
        denominator = support + predicted_count
        f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
        # A class counts where it occurs in the truth or the predictions of this resample.
        present = denominator > 0
        result: np.ndarray = (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)
        return result


def bootstrap_chunk_rows(n: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    """Resamples per chunk: each holds its draws and their counts, rows × n numbers."""
    return max(1, chunk_bytes // (8 * max(n, 1)))


def paired_bootstrap(
    truth: np.ndarray,
    *,
    candidate: np.ndarray,
    champion: np.ndarray,
    n_classes: int,
    rounds: int = BOOTSTRAP_ROUNDS,
    seed: int = 0,
    chunk_bytes: int = CHUNK_BYTES,
) -> PairedComparison:
    """Resample examples with replacement, score both models on each resample."""
    gaps = bootstrap_gaps(
        truth, candidate, champion, n_classes, rounds=rounds, seed=seed, chunk_bytes=chunk_bytes
    )
    tail = (1 - INTERVAL) / 2
    return PairedComparison(
        n=len(truth),
        candidate_f1=macro_f1(truth, predicted=candidate, n_classes=n_classes),
        champion_f1=macro_f1(truth, predicted=champion, n_classes=n_classes),
        low=float(np.quantile(gaps, tail)),
        high=float(np.quantile(gaps, 1 - tail)),
    )


def bootstrap_gaps(
    truth: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray,
    n_classes: int,
    *,
    rounds: int = BOOTSTRAP_ROUNDS,
    seed: int = 0,
    chunk_bytes: int = CHUNK_BYTES,
) -> np.ndarray:
    """Macro-F1 of the candidate minus the champion's, on each of `rounds` resamples.

    The resamples are drawn and scored in chunks of rows, so memory stays at a few
    times chunk_bytes whatever the number of examples (all 2,000 at once took about
    4.8 GB at 100,000 examples). The gaps are the same to the bit as all at once: the
    generator's stream does not depend on how the draws are split, each resample's
    counts are exact integers whichever way they are summed, and each resample's
    macro-F1 depends on its own row only (tests/test_gate.py holds them equal).
    """
    n = len(truth)
    rng = np.random.default_rng(seed)
    candidate_counts = _Counts.of(truth, candidate, n_classes)
    champion_counts = _Counts.of(truth, champion, n_classes)
    rows = bootstrap_chunk_rows(n, chunk_bytes)
    gaps = np.empty(rounds)
    for start in range(0, rounds, rows):
        k = min(rows, rounds - start)
        draws = rng.integers(0, n, size=(k, n))
        # Row r's draws land in cells r*n … r*n + n-1: one bincount counts every row.
        draws += np.arange(k)[:, None] * n
        weights = np.bincount(draws.ravel(), minlength=k * n).reshape(k, n).astype(np.float64)
        del draws
        gaps[start : start + k] = candidate_counts.macro_f1(weights) - champion_counts.macro_f1(
            weights
        )
    return gaps


@dataclass(frozen=True)
class GateInputs:
    comparison: PairedComparison | None  # None: too few examples neither model trained on
    candidate_examples: int
    champion_examples: int
    # Share of the same examples neither model trained on that each one's certified rules
    # automate at the current targets (None: no such examples).
    candidate_automation: float | None
    champion_automation: float | None
    automation_examples: int | None = None


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    hold_for_admin: bool  # would pass on quality, but cuts automation: an admin decides
    message: str


def decide(inputs: GateInputs) -> GateDecision:
    more_data = inputs.candidate_examples >= MORE_DATA_RATIO * max(inputs.champion_examples, 1)
    data_note = f"trained on {inputs.candidate_examples} examples vs the champion's " + str(
        inputs.champion_examples
    )
    c = inputs.comparison
    if c is None or c.n < MIN_GATE_EXAMPLES:
        seen = 0 if c is None else c.n
        quality = (
            f"only {seen} examples neither model trained on (need {MIN_GATE_EXAMPLES} to compare)"
        )
        passes = more_data
        quality += f"; {data_note}" + (": more data, promoted" if more_data else ": kept champion")
    else:
        quality = (
            f"macro-F1 {c.candidate_f1:.3f} vs champion's {c.champion_f1:.3f} on the same "
            f"{c.n} examples neither trained on (paired bootstrap {INTERVAL:.0%} interval of "
            f"the gap {c.low:+.3f} to {c.high:+.3f})"
        )
        if c.high < 0:
            return GateDecision(False, False, f"kept champion: candidate is worse: {quality}")
        if c.low > 0:
            passes = True
            quality = f"better: {quality}"
        elif more_data:
            passes = True
            quality = f"within noise but {data_note} (≥ {MORE_DATA_RATIO:g}×): {quality}"
        else:
            return GateDecision(
                False, False, f"kept champion: difference within noise: {quality}; {data_note}"
            )
    if not passes:
        return GateDecision(False, False, f"kept champion: {quality}")
    new, old = inputs.candidate_automation, inputs.champion_automation
    if new is not None and old is not None and new < old - MAX_AUTOMATION_DROP:
        return GateDecision(
            False,
            True,
            f"held for an admin: at the current targets the candidate would automate {new:.1%} "
            f"of the {inputs.automation_examples or 0} examples neither trained on vs the "
            f"champion's {old:.1%} (a drop of more than "
            f"{MAX_AUTOMATION_DROP:.0%} points); {quality}. An admin can promote it by hand.",
        )
    automation = (
        ""
        if new is None
        else f"; automation at current targets {new:.1%}"
        + ("" if old is None else f" (champion {old:.1%})")
    )
    return GateDecision(True, False, f"{quality}{automation}")
