"""Coverage of live precision's 95% interval, exact and weighted, by simulation.

Two strata, as the audit floor makes them: a busy category audited at the base
rate and a quiet one audited at a much higher rate. The true overall precision
is the volume-weighted mix. For several targets (the busy category's precision)
and two sizes, each simulated period is audited and the interval computed:
  - IPW (Hájek) with Clopper–Pearson at Kish's effective n (what the product uses);
  - the baseline: plain Clopper–Pearson on the pooled, unweighted verdicts.
Reported: mean estimate, coverage of the truth, mean interval width.

Run from the project root:  .venv/bin/python benchmarks/live_precision.py [--periods 2000]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from triage.monitoring.precision import weighted_precision  # noqa: E402

SIZES = {
    # name: (busy volume, busy rate, quiet volume, quiet rate)
    "small week": (2000, 0.01, 100, 0.2),
    "large month": (80_000, 0.05, 2000, 0.2),
}
QUIET_PRECISION = 0.85


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--periods", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(
        f"{args.periods} simulated periods; quiet category precision {QUIET_PRECISION}\n"
        f"{'size':<12}{'target':>7}{'truth':>7}  {'method':<10}{'audited':>8}"
        f"{'estimate':>9}{'coverage':>9}{'width':>7}"
    )
    for size, (busy_n, busy_rate, quiet_n, quiet_rate) in SIZES.items():
        for target in (0.9, 0.95, 0.99):
            truth = (busy_n * target + quiet_n * QUIET_PRECISION) / (busy_n + quiet_n)
            stats: dict[str, list[tuple[float, bool, float]]] = {"ipw": [], "unweighted": []}
            audited = []
            for _ in range(args.periods):
                correct: list[bool] = []
                probability: list[float] = []
                for n, rate, precision in [
                    (busy_n, busy_rate, target),
                    (quiet_n, quiet_rate, QUIET_PRECISION),
                ]:
                    k = rng.binomial(n, rate)
                    correct.extend((rng.random(k) < precision).tolist())
                    probability.extend([rate] * k)
                audited.append(len(correct))
                for name, probs in [("ipw", probability), ("unweighted", [1.0] * len(correct))]:
                    e = weighted_precision(correct, probabilities=probs)
                    if e.precision is not None:
                        covered = e.lower <= truth <= e.upper
                        stats[name].append((e.precision, covered, e.upper - e.lower))
            for name, rows in stats.items():
                arr = np.array(rows, dtype=float)
                print(
                    f"{size:<12}{target:>7.2f}{truth:>7.3f}  {name:<10}{np.mean(audited):>8.0f}"
                    f"{arr[:, 0].mean():>9.3f}{arr[:, 1].mean():>9.1%}{arr[:, 2].mean():>7.3f}"
                )


if __name__ == "__main__":
    main()
