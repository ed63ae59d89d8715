"""The drift watch by simulation: false alarms and verdicts to detect, old design beside new.

At a 0.90 target, streams of audit verdicts (1 = the auto-action was right) are drawn:
  - in control: 2,000 verdicts at exactly 0.90 (the worst case the promise allows);
    reported: the share of streams flagged (false alarms over 2,000 verdicts);
  - a drop to 0.85, 0.78 or 0.50 from the start of the watch; reported: how many
    audited verdicts it took to flag (median, 90th percentile).
The same streams go through three watches:
  - the watch of today (triage.monitoring.drift.cusum_design): a drift arm tuned to 2×
    the error rate and a collapse arm tuned to 6×, the level split 80/20, α = 1/2000;
  - the watch before issue 18 (single_cusum_design): one CUSUM tuned to 2×, α = 1/1000;
  - a naive one-sided exact binomial test at 5%, repeated after every verdict.
Other targets can be added with --target.

Run from the project root:  .venv/bin/python benchmarks/drift_watch.py [--streams 2000]
"""

import argparse
import sys
from functools import partial
from pathlib import Path

import numpy as np
from scipy.stats import binom

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from triage.monitoring.drift import WatchDesign, cusum_design, single_cusum_design  # noqa: E402

DROPS = (0.85, 0.78, 0.50)


def watch_alarms(verdicts: np.ndarray, design: WatchDesign) -> np.ndarray:
    """First alarm per stream (1-based verdict count), 0 if never. Vectorised over streams;
    the same arithmetic as WatchDesign.update / statistic (a test holds them equal)."""
    sums = np.zeros((len(design.arms), verdicts.shape[0]))
    logw = np.array([np.log(arm.weight) for arm in design.arms])[:, None]
    right = np.array([arm.step_right for arm in design.arms])[:, None]
    wrong = np.array([arm.step_wrong for arm in design.arms])[:, None]
    alarm = np.zeros(verdicts.shape[0], dtype=int)
    for t in range(verdicts.shape[1]):
        sums = np.maximum(0.0, sums + np.where(verdicts[:, t][None, :], right, wrong))
        statistic = np.maximum(0.0, (sums + logw).max(axis=0))
        new = (statistic >= design.threshold) & (alarm == 0)
        alarm[new] = t + 1
    return alarm


def naive_alarms(verdicts: np.ndarray, target: float, level: float = 0.05) -> np.ndarray:
    n = np.arange(1, verdicts.shape[1] + 1)
    p_values = binom.cdf(np.cumsum(verdicts, axis=1), n, target)
    flagged = p_values < level
    return np.where(flagged.any(axis=1), flagged.argmax(axis=1) + 1, 0)


def delay(alarms: np.ndarray) -> str:
    missed = float(np.mean(alarms == 0))
    # A stream never flagged counts as infinitely late: the median stays honest.
    delays = np.where(alarms > 0, alarms, np.inf)
    median, p90 = np.median(delays), np.percentile(delays, 90)
    text = f"{median:>6.0f} {p90:>6.0f}"
    return text + (f" ({missed:.1%} never)" if missed else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--length", type=int, default=2000, help="verdicts per stream")
    parser.add_argument("--target", type=float, action="append", help="default: 0.90")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(
        f"{args.streams} simulated streams of {args.length} audited verdicts per case; "
        "delays are audited verdicts to the alarm (median, p90)\n"
    )
    for target in args.target or [0.90]:
        calm = rng.random((args.streams, args.length)) < target
        drifted = {d: rng.random((args.streams, args.length)) < d for d in DROPS if d < target}
        new, old = cusum_design(target), single_cusum_design(target)
        methods = [
            (f"new: 2 CUSUMs 2x+6x (h={new.threshold:.2f})", partial(watch_alarms, design=new)),
            (f"old: 1 CUSUM 2x (h={old.threshold:.2f})", partial(watch_alarms, design=old)),
            ("naive repeated binomial 5%", partial(naive_alarms, target=target)),
        ]
        header = "".join(f"{'to ' + format(d, '.2f'):>22}" for d in drifted)
        print(f"target {target:.2f}   {'method':<34}{'false alarms':>13}{header}")
        for name, alarms in methods:
            cells = "".join(f"{delay(alarms(v)):>22}" for v in drifted.values())
            print(f"{'':<14}{name:<34}{np.mean(alarms(calm) > 0):>13.1%}{cells}")
        print()


if __name__ == "__main__":
    main()
