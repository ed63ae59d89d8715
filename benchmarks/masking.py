"""The cost of masking per item, beside one plain regular-expression pass.

On the demo's real texts (the disaster-response messages, all splits), each variant
masks every text once and the time per item is reported (mean, median, p99, max):

  baseline-re   one pass of Python's `re` for e-mail addresses (re.sub): the least a
                masker must do
  baseline-re2  the same pattern on RE2
  masker        the built-ins (e-mail, IBAN, card, phone) for TRIAGE_PHONE_REGIONS=US
  masker+       the same for regions US and HT and two admin patterns
  email, iban, card, phone   each built-in detector alone

Then two adversarial 20,000-character texts (the longest an item may be): letters only
(Python's `re` scans for an e-mail address in quadratic time; RE2 in linear time) and
digits in phone-like groups (the phone matcher's worst case), timed for `re`, the masker
and the phone matcher alone. Finally, how many demo texts each kind of span was found in.

No database and no Django set-up are needed. Run from the project root:

  .venv/bin/python benchmarks/masking.py [--n 26000] [--repeat 3]
"""

import argparse
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from triage.management.demo_data import load_messages  # noqa: E402
from triage.privacy import masking  # noqa: E402
from triage.routing import policy as routing  # noqa: E402

PLAIN_EMAIL = r"[\w.!#$%&'*+/=?^`{|}~-]+@\w(?:[\w-]*\w)?(?:\.\w(?:[\w-]*\w)?)+"


def per_item(fn: Callable[[str], object], texts: list[str], repeat: int) -> list[float]:
    """Seconds per text, the best of `repeat` runs for each text."""
    best = [float("inf")] * len(texts)
    for _ in range(repeat):
        for i, text in enumerate(texts):
            start = time.perf_counter()
            fn(text)
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def row(name: str, seconds: list[float], baseline: float | None) -> str:
    us = sorted(s * 1e6 for s in seconds)
    mean = statistics.fmean(us)
    ratio = f"{mean / baseline:7.1f}x" if baseline else "      —"
    p99 = us[min(len(us) - 1, int(0.99 * len(us)))]
    return f"{name:<14}{mean:>10.1f}{us[len(us) // 2]:>10.1f}{p99:>10.1f}{us[-1]:>11.1f}  {ratio}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=26_000, help="demo texts (default: all)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per text; best is kept")
    args = parser.parse_args()

    texts = [m.text for m in load_messages()][: args.n]
    chars = statistics.fmean(len(t) for t in texts)
    print(f"{len(texts):,} demo texts, {chars:.0f} characters on average; best of {args.repeat}")

    plain = re.compile(PLAIN_EMAIL)
    masker = masking.Masker(regions=("US",))
    patterns = (
        ("case_number", routing.compile_pattern(r"\bcase[- ]?\d{5,}\b")),
        ("passport", routing.compile_pattern(r"\b[a-z]{2}\d{7}\b")),
    )
    masker_plus = masking.Masker(patterns=patterns, regions=("US", "HT"))
    variants: list[tuple[str, Callable[[str], object]]] = [
        ("baseline-re", lambda t: plain.sub("[email]", t)),
        ("baseline-re2", lambda t: masking.EMAIL.sub("[email]", t)),
        ("masker", masker.mask),
        ("masker+", masker_plus.mask),
        ("email", masking.find_emails),
        ("iban", masking.find_ibans),
        ("card", masking.find_cards),
        ("phone", lambda t: masking.find_phones(t, regions=("US",))),
    ]
    print(f"\n{'µs per item':<14}{'mean':>10}{'median':>10}{'p99':>10}{'max':>11}  vs re")
    baseline = None
    for name, fn in variants:
        seconds = per_item(fn, texts, args.repeat)
        print(row(name, seconds, baseline))
        if baseline is None:
            baseline = statistics.fmean(seconds) * 1e6

    letters = "a" * 20_000
    digits = " ".join(f"{i % 1000:03d}-{(i * 7) % 10000:04d}" for i in range(2_300))[:20_000]
    print(f"\n{'ms per 20,000 chars':<22}{'re (e-mail)':>12}{'masker':>10}{'phone only':>12}")
    for name, text in [("letters only", letters), ("phone-like digits", digits)]:
        timed = [
            min(per_item(fn, [text], args.repeat)) * 1e3
            for fn in (plain.search, masker.mask, lambda t: masking.find_phones(t, regions=("US",)))
        ]
        print(f"{name:<22}{timed[0]:>12.2f}{timed[1]:>10.2f}{timed[2]:>12.2f}")

    print()
    for name, each in [("masker", masker), ("masker+", masker_plus)]:
        found: Counter[str] = Counter()
        for text in texts:
            found.update({span.kind for span in each.spans(text)})
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(found.items())) or "none"
        print(f"demo texts with a span of each kind ({name}): {kinds}")


if __name__ == "__main__":
    main()
