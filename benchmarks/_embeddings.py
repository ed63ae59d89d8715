"""The real encoder's vectors for the demo messages, computed once and kept on disk.

Embedding 26,000 messages takes minutes on 2 cores; every benchmark run after
the first reads them back in a second. The cache file is named after the
encoder id (the embedding space), so a different encoder never reuses it. The
vectors are derived from the demo data and stay outside the repository (var/).

Run on its own to fill the cache:  .venv/bin/python benchmarks/_embeddings.py
"""

import hashlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / "var" / "bench-cache"
CHUNK = 2000


def message_vectors(messages: Sequence, encoder) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Vectors for these demo messages (in order), from the cache where possible."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(encoder.encoder_id.encode()).hexdigest()[:16]
    path = CACHE_DIR / f"disaster-{key}.npz"
    cached: dict[str, np.ndarray] = {}
    if path.exists():
        with np.load(path) as data:
            cached = dict(zip(data["ids"].tolist(), data["vectors"], strict=True))
    missing = list({m.id: m for m in messages if m.id not in cached}.values())
    started = time.perf_counter()
    for start in range(0, len(missing), CHUNK):
        # In chunks, saved as they finish: an interrupted run keeps what it embedded.
        part = missing[start : start + CHUNK]
        fresh = encoder.encode([m.text for m in part]).astype(np.float32)
        cached.update((m.id, v) for m, v in zip(part, fresh, strict=True))
        ids = np.array(list(cached))
        np.savez(path, ids=ids, vectors=np.stack([cached[i] for i in ids]))
        print(
            f"embedded {start + len(part)}/{len(missing)} messages with {encoder.encoder_id} "
            f"({time.perf_counter() - started:.0f}s)",
            flush=True,
        )
    return np.stack([cached[m.id] for m in messages])


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _django_env import setup_django

    setup_django()
    from triage.management.demo_data import load_messages
    from triage.ml.encoder import configured_spec, encoder_for

    vectors = message_vectors(load_messages(), encoder_for(configured_spec()))
    print(f"{len(vectors)} vectors cached in {CACHE_DIR}")
