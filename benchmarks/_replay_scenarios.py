"""The replay's scenarios (an ordered stream and the settings it runs under) and its
variants (benchmarks/replay.py)."""

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field

VARIANTS: dict[str, dict] = {
    "nightly": {"count_trigger": False, "queue_order": "oldest"},
    "count": {"count_trigger": True, "queue_order": "oldest"},
    "nightly+margin": {"count_trigger": False, "queue_order": "smallest_margin"},
    "count+margin": {"count_trigger": True, "queue_order": "smallest_margin"},
}


@dataclass(frozen=True)
class Scenario:
    """An ordered stream and the product settings it runs under."""

    name: str
    description: str
    seed: list  # labelled messages imported before the stream starts
    stream: list  # messages in arrival order
    retrain_every: int = 500  # items per "night"
    target: float = 0.90
    certification: str = "fallback"  # the product's default scope
    delta: float = 0.05
    audit_rate: float = 0.05
    arrive: int = 100
    pace: float = 0.5
    count: int = 100  # TRIAGE_RETRAIN_AFTER_LABELS when the count trigger is on
    count_trigger: bool = False
    queue_order: str = "oldest"
    reroute_waiting: bool = True  # a new champion re-routes the waiting items (the default)
    # What an analyst answers for a message (default: its true desk).
    truth: Callable = field(default=lambda message: message.desk)


def first_per_desk(messages: list, per_desk: int) -> list:
    seen: dict[str, int] = {}
    chosen = []
    for m in messages:
        if seen.get(m.desk, 0) < per_desk:
            seen[m.desk] = seen.get(m.desk, 0) + 1
            chosen.append(m)
    return chosen


def in_order(args: argparse.Namespace, *, certification: str = "fallback") -> Scenario:
    from triage.management.demo_data import load_messages

    messages = load_messages("train")  # the CSV's own order
    seed = first_per_desk(messages, args.seed_per_class)
    seed_ids = {m.id for m in seed}
    stream = [m for m in messages if m.id not in seed_ids][: args.items]
    return Scenario(
        name="in-order" if certification == "fallback" else f"in-order-{certification}",
        description=(
            f"train split in file order, {args.seed_per_class} labels per class to start, "
            f"{len(stream)} items, certification {certification}"
        ),
        seed=seed,
        stream=stream,
        retrain_every=args.retrain_every,
        target=args.target,
        certification=certification,
        arrive=args.arrive,
        pace=args.pace,
        count=args.count,
        reroute_waiting=args.reroute == "on",
    )


SCENARIOS: dict[str, Callable[[argparse.Namespace], Scenario]] = {
    "in-order": in_order,
    "in-order-pooled": lambda args: in_order(args, certification="pooled"),
    "in-order-per-category": lambda args: in_order(args, certification="per_category"),
}
