"""The replay's baseline threshold rules and its tables (benchmarks/replay.py)."""

import argparse

import numpy as np

# A person's decision, by the task's reason: sent to review, a blind audit of an
# automatic action, or a second look at someone's decision.
AUDIT = "audit_sample"
SECOND = ("second_review", "disagreement")


def baseline_thresholds(version, target: float) -> dict[str, dict[str, float | None]]:
    """Point-estimate and old-Wilson thresholds on the version's own evidence."""
    from _wilson import wilson_threshold

    from triage.routing.evidence import load_evidence

    evidence = load_evidence(version)
    out: dict[str, dict[str, float | None]] = {"point estimate": {}, "old Wilson": {}}
    if evidence is None:
        return out
    for slug in evidence.labels:
        conf, right = evidence.for_category(slug)
        # The lowest threshold whose evidence precision reaches the target (at least 5 items).
        top = precise_top(conf, right, target)
        out["point estimate"][slug] = float(conf[top[-1]]) if len(top) >= 5 else None
        out["old Wilson"][slug] = wilson_threshold(conf, right, target=target).threshold
    return out


def precise_top(confidence: np.ndarray, correct: np.ndarray, target: float) -> np.ndarray:
    """Indices of the most confident predictions, most confident first, as many as keep
    their precision at least `target` (none if even the first is wrong)."""
    order = np.argsort(-confidence, kind="stable")
    precision = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    precise = np.flatnonzero(precision >= target)
    return order[: precise[-1] + 1] if len(precise) else order[:0]


def fmt(value, spec=".1%"):
    return "-" if value is None else format(value, spec)


def table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def report_variant(result: dict, *, retrain_every: int) -> None:
    """Per night: who decided, what automated and how well, beside the baseline rules."""
    print(f"\nvariant {result['variant']}: first model: {result['first_model']}")
    rows = []
    for n, night in enumerate(result["nights"], 1):
        auto = night["auto"] * night["items"]
        cells = [
            str(n),
            ",".join(f"v{m}" for m in night["models"]),
            fmt(night["people"]),
            fmt(night["auto"]),
            fmt(night["right"] / auto if auto else None),
        ]
        for rule in ("point estimate", "old Wilson"):
            chosen, right = night["baselines"][rule]
            cells.append(
                f"{fmt(chosen / night['items'])} / {fmt(right / chosen if chosen else None)}"
            )
        cells += [str(night.get("rerouted", 0)), str(night["backlog"]), night["gate"][:70]]
        rows.append(cells)
    table(
        [
            f"night ({retrain_every} items)",
            "models",
            "to people",
            "auto on arrival",
            "auto prec.",
            "point-est. auto/prec.",
            "old Wilson auto/prec.",
            "re-routed",
            "backlog",
            "nightly retrain",
        ],
        rows,
    )


def people_work(result: dict) -> tuple[int, int, int]:
    """Decisions people made: (sent to review, audits, second reviews)."""
    decisions = result["decisions"]
    audits = decisions.get(AUDIT, 0)
    seconds = sum(decisions.get(reason, 0) for reason in SECOND)
    return sum(decisions.values()) - audits - seconds, audits, seconds


def report_variants(results: list[dict], args: argparse.Namespace, seconds: float) -> None:
    """The variants side by side: the figures issue 17 asks for."""
    print(
        f"\n{args.scenario}, {results[0]['items']} items, target {args.target:.0%}, from "
        f"{args.seed_per_class} labels per class; items arrive {args.arrive} at a time, "
        f"analysts decide {args.pace:g} task per arriving item (the rest wait, then are "
        f"drained at the end); a night every {args.retrain_every} items; count trigger "
        f"every {args.count} trusted labels; a new champion re-routes the waiting items: "
        f"{args.reroute}"
    )
    rows = []
    for r in results:
        review, audits, second = people_work(r)
        people = review + audits + second
        count_retrains = r["retrains"].get("count", 0)
        rows.append(
            [
                r["variant"],
                fmt(people / r["items"]),
                f"{review} / {audits} / {second}",
                fmt(r["auto"] / r["items"]),
                fmt(r["auto_right"] / r["auto"] if r["auto"] else None, ".3f"),
                f"{r['rerouted']} ("
                + fmt(r["rerouted_right"] / r["rerouted"] if r["rerouted"] else None, ".3f")
                + ")",
                "never"
                if r["first_auto"] is None
                else f"{r['first_auto']} ({r.get('decided_before_first_auto', '?')})",
                f"{r['retrains'].get('nightly', 0)} / {count_retrains}",
                f"{r['promoted'].get('nightly', 0)} / {r['promoted'].get('count', 0)}",
                f"{r['seconds']:.0f}s",
            ]
        )
    table(
        [
            "variant",
            "people decide",
            "review / audits / 2nd",
            "auto",
            "auto precision",
            "of which re-routed (prec.)",
            "items (decisions) before 1st auto",
            "retrains night/count",
            "promoted night/count",
            "run",
        ],
        rows,
    )
    print(
        "people decide: every decision a person made (sent to review, blind audits of "
        "automatic actions, second reviews) over the items of the stream; before the "
        "first automatic action: the items that passed, and the decisions made by then."
    )
    print(f"whole run {seconds:.0f}s")
