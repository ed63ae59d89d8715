"""The disaster messages with their genre, and their embeddings cached on disk.

Embedding is the slow part of a replay (about 20 texts a second on a shared
2-core machine), so each text is encoded once with the product's configured
encoder and kept in var/bench/ for later runs. Rows are read in place from the
installed package; nothing is copied into the repository.
"""

import csv
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / "var" / "bench"


@dataclass(frozen=True)
class Message:
    id: str
    split: str
    genre: str
    text: str
    desk: str
    food: bool
    water: bool


def load() -> list[Message]:
    from triage.management.demo_data import csv_path, desk_for

    with csv_path().open(encoding="utf-8-sig", newline="") as fh:
        out = []
        for row in csv.DictReader(fh):
            desk = desk_for(row["related"], row["request"])
            if desk is None or not row["message"].strip():
                continue
            out.append(
                Message(
                    id=row["id"],
                    split=row["split"],
                    genre=row["genre"],
                    text=row["message"],
                    desk=desk,
                    food=row["food"] == "1",
                    water=row["water"] == "1",
                )
            )
    return out


def pools(seed: int = 0) -> dict[str, list[Message]]:
    """Shuffled pools: learning sets come from train, streams from validation + test."""
    rng = random.Random(seed)
    messages = load()
    out: dict[str, list[Message]] = {}
    for genre in ("direct", "news", "social"):
        for kind, splits in (("learn", {"train"}), ("stream", {"validation", "test"})):
            pool = [m for m in messages if m.genre == genre and m.split in splits]
            rng.shuffle(pool)
            out[f"{genre}_{kind}"] = pool
    return out


def embeddings(messages: list[Message]) -> dict[str, np.ndarray]:
    """Vectors by message id, encoding only those not cached yet."""
    from triage.ml.encoder import get_encoder

    encoder = get_encoder()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    stem = CACHE_DIR / ("embeddings-" + encoder.encoder_id.replace("/", "_").replace(":", "_"))
    cached: dict[str, np.ndarray] = {}
    if stem.with_suffix(".npz").exists():
        data = np.load(stem.with_suffix(".npz"))
        cached = dict(zip(data["ids"].tolist(), data["vectors"], strict=True))
    missing = list({m.id: m for m in messages if m.id not in cached}.values())
    for start in range(0, len(missing), 500):
        chunk = missing[start : start + 500]
        vectors = encoder.encode([m.text for m in chunk]).astype(np.float32)
        cached.update(zip((m.id for m in chunk), vectors, strict=True))
        ids = list(cached)
        np.savez(stem, ids=np.array(ids), vectors=np.stack([cached[i] for i in ids]))
        print(f"  embedded {start + len(chunk)}/{len(missing)}", flush=True)
    return {m.id: cached[m.id] for m in messages}
