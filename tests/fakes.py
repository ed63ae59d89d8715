"""A small, deterministic stand-in for the transformer encoder.

Each word is hashed to a few fixed dimensions, so texts that share words get
similar vectors and a linear head can learn keyword categories in milliseconds.
"""

import hashlib
import re
from collections.abc import Sequence

import numpy as np

DIM = 64


class FakeEncoder:
    encoder_id = "fake-hashing-encoder:v1"
    dim = DIM

    def __init__(self) -> None:
        self.calls = 0

    @classmethod
    def from_spec(cls, spec: dict) -> "FakeEncoder":
        return cls()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                digest = hashlib.sha256(word.encode()).digest()
                for k in range(3):
                    out[row, digest[k] % DIM] += 1.0 if digest[k + 3] % 2 else -1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
        return out
