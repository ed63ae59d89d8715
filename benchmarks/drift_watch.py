"""The drift watch by simulation: detection delay and false alarms, against a naive test.

For each target precision p0, streams of audit verdicts (1 = the auto-action was
right) are drawn:
  - no drift: 2,000 verdicts at exactly p0 (the worst case the promise allows);
    reported: the share of streams flagged (false-alarm rate over 2,000 items);
  - a drop: verdicts at a lower precision from the start of the watch; reported:
    how many audited verdicts it took to flag (median, 90th percentile).
The same streams go through the baseline: a one-sided exact binomial test at 5%,
repeated after every verdict on all verdicts so far (what one gets by running a
fixed-n test continuously).

Run from the project root:  .venv/bin/python benchmarks/drift_watch.py [--streams 2000]
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.stats import binom

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from triage.monitoring.drift import cusum_design  # noqa: E402

# (target, precision after the drop): the 0.95 → 0.89, and the same
# relative fall of the error rate (×2.2) at two other targets.
CASES = [(0.95, 0.89), (0.90, 0.78), (0.97, 0.934)]


def cusum_alarms(verdicts: np.ndarray, target: float) -> np.ndarray:
    """First alarm per stream (1-based verdict count), 0 if never. Vectorised over streams."""
    design = cusum_design(target)
    statistic = np.zeros(verdicts.shape[0])
    alarm = np.zeros(verdicts.shape[0], dtype=int)
    for t in range(verdicts.shape[1]):
        step = np.where(verdicts[:, t], design.step_right, design.step_wrong)
        statistic = np.maximum(0.0, statistic + step)
        new = (statistic >= design.threshold) & (alarm == 0)
        alarm[new] = t + 1
    return alarm


def naive_alarms(verdicts: np.ndarray, target: float, level: float = 0.05) -> np.ndarray:
    n = np.arange(1, verdicts.shape[1] + 1)
    p_values = binom.cdf(np.cumsum(verdicts, axis=1), n, target)
    flagged = p_values < level
    return np.where(flagged.any(axis=1), flagged.argmax(axis=1) + 1, 0)


def summary(alarms: np.ndarray) -> str:
    hit = alarms[alarms > 0]
    if not len(hit):
        return "never flagged"
    missed = float(np.mean(alarms == 0))
    return f"median {np.median(hit):.0f}, p90 {np.percentile(hit, 90):.0f}" + (
        f", {missed:.1%} not flagged" if missed else ""
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--length", type=int, default=2000, help="verdicts per stream")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"{args.streams} simulated streams of {args.length} audited verdicts per case\n")
    print(f"{'target':>7}{'drop to':>9}  {'method':<28}{'false alarms':>13}  detection delay")
    for target, dropped in CASES:
        calm = rng.random((args.streams, args.length)) < target
        drifted = rng.random((args.streams, args.length)) < dropped
        design = cusum_design(target)
        for name, alarms in [
            (f"CUSUM e-detector (h={design.threshold:.2f})", cusum_alarms),
            ("naive repeated binomial 5%", naive_alarms),
        ]:
            false_alarms = float(np.mean(alarms(calm, target) > 0))
            print(
                f"{target:>7.2f}{dropped:>9.3f}  {name:<28}{false_alarms:>13.1%}  "
                f"{summary(alarms(drifted, target))}"
            )


if __name__ == "__main__":
    main()
