"""Quarantine under repeated looks: how often an honest analyst is quarantined, new beside old.

An analyst agrees with second reviews exactly at the floor (0.80: the worst case an honest
analyst may be), a few checks a day for 90 days, and the rule is looked at after every
check, as reviews.trust.quarantine does. Reported: the share of runs in which the analyst
is ever quarantined, at α = 1%, by
  - the rule of today: the mixture e-value that agreement is below the floor reaches 1/α,
    over all the evidence since the start (triage.stats.rate_below_e_value);
  - the rule before issue 18: the one-look Clopper–Pearson upper bound at α below the
    floor, on a sliding 30-day window.
And the power of each: the share of analysts at 50% agreement caught within 40 checks.

Run from the project root:  .venv/bin/python benchmarks/quarantine_looks.py [--runs 1000]
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.stats import beta

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from triage.stats import clopper_pearson_upper, rate_below_e_value  # noqa: E402

ALPHA, FLOOR, WINDOW_DAYS, DAYS = 0.01, 0.8, 30, 90


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--per-day", type=int, default=3, help="second-review checks a day")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    new = old = 0
    for _ in range(args.runs):
        agreed = rng.random(args.per_day * DAYS) < FLOOR
        day = np.repeat(np.arange(DAYS), args.per_day)
        total = np.cumsum(agreed)
        new += any(
            rate_below_e_value(int(total[t]), t + 1, FLOOR) >= 1 / ALPHA for t in range(len(total))
        )
        first = np.searchsorted(day, day - (WINDOW_DAYS - 1))
        x = total - np.where(first > 0, total[np.maximum(first - 1, 0)], 0)
        n = np.arange(1, len(total) + 1) - first
        upper = beta.ppf(1 - ALPHA, x + 1, np.maximum(n - x, 1e-9))  # Clopper–Pearson
        old += bool(np.any((x < n) & (upper < FLOOR)))
    caught = rng.binomial(40, 0.5, size=args.runs)
    power_new = np.mean([rate_below_e_value(int(k), 40, FLOOR) >= 1 / ALPHA for k in caught])
    power_old = np.mean([clopper_pearson_upper(int(k), 40, ALPHA) < FLOOR for k in caught])
    print(
        f"{args.runs} runs; an analyst at the {FLOOR:.0%} floor, {args.per_day} checks a day "
        f"for {DAYS} days, the rule looked at after every check, alpha {ALPHA:.0%}\n"
    )
    print(f"{'rule':<58}{'quarantined':>12}{'caught at 50%, 40 checks':>27}")
    rows = [
        ("today: mixture e-value >= 1/alpha, since the start", new / args.runs, power_new),
        ("before: one-look Clopper-Pearson, 30-day window", old / args.runs, power_old),
    ]
    for name, false_rate, power in rows:
        print(f"{name:<58}{false_rate:>12.1%}{power:>27.1%}")


if __name__ == "__main__":
    main()
