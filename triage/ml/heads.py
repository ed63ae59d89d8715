"""Classifier heads over sentence embeddings, and their safetensors artifacts.

A head is a linear layer (weights, bias) plus a calibration temperature.
Artifacts are safetensors with JSON metadata: nothing is ever unpickled, and
the sha256 recorded in the database is checked before a file is trusted.
"""

import functools
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from triage.ml.artifacts import file_sha256
from triage.ml.calibration import softmax

# Zero-shot cosine similarities lie in a narrow band; dividing by a small
# temperature spreads them into a usable ranking. Cold start never auto-acts,
# so this only orders suggestions for the reviewer.
ZERO_SHOT_TEMPERATURE = 0.05


class ArtifactError(Exception):
    pass


@dataclass(frozen=True)
class LinearHead:
    labels: tuple[str, ...]
    weights: np.ndarray  # (n_labels, dim)
    bias: np.ndarray  # (n_labels,)
    temperature: float = 1.0

    def logits(self, vectors: np.ndarray) -> np.ndarray:
        logits: np.ndarray = vectors @ self.weights.T + self.bias
        return logits

    def predict_proba(self, vectors: np.ndarray) -> np.ndarray:
        return softmax(self.logits(vectors), self.temperature)


def train_logistic_head(
    vectors: np.ndarray, labels: Sequence[str], *, c: float = 10.0
) -> LinearHead:
    """Multinomial logistic regression; seconds on cached embeddings."""
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ValueError(f"need at least two categories to train a head, got {classes}")
    index = {label: i for i, label in enumerate(classes)}
    y = np.array([index[label] for label in labels])
    model = LogisticRegression(C=c, max_iter=2000)
    # One thread: on a machine whose cores are busy (web, workers, the database), the
    # solver's OpenMP/BLAS threads spin-wait on each other; measured 5x faster on 2 busy
    # cores at 10,000 and 100,000 examples (benchmarks/scale.py).
    with threadpool_limits(limits=1):
        model.fit(vectors, y)
    weights, bias = model.coef_, model.intercept_
    if len(classes) == 2:
        # sklearn keeps one row for two classes; expand so softmax sees both.
        weights = np.vstack([-weights[0] / 2, weights[0] / 2])
        bias = np.array([-bias[0] / 2, bias[0] / 2])
    return LinearHead(
        labels=tuple(classes),
        weights=np.ascontiguousarray(weights, dtype=np.float32),
        bias=np.ascontiguousarray(bias, dtype=np.float32),
    )


def zero_shot_proba(vectors: np.ndarray, label_vectors: np.ndarray) -> np.ndarray:
    """Scores by cosine similarity to each category's description (vectors are unit length)."""
    return softmax(vectors @ label_vectors.T, ZERO_SHOT_TEMPERATURE)


def save_head(head: LinearHead, path: Path, *, metadata: dict[str, Any]) -> str:
    """Write the head atomically and return its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "labels": json.dumps(list(head.labels)),
        "temperature": repr(head.temperature),
        "triage": json.dumps(metadata, sort_keys=True, default=str),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        # safetensors writes the raw buffer: a Fortran-ordered array would come back transposed.
        tensors = {"weights": head.weights, "bias": head.bias}
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return file_sha256(path)


def check_artifact(path: str, sha256: str) -> None:
    """Raise ArtifactError unless the file is there with the sha256 it was trained with."""
    file = Path(path)
    if not file.is_file():
        raise ArtifactError(f"model artifact {path} is missing")
    actual = file_sha256(file)
    if actual != sha256:
        raise ArtifactError(
            f"model artifact {path} has sha256 {actual[:12]}…, expected {sha256[:12]}…; "
            "refusing to load a file that changed since it was trained"
        )


def read_head(path: str, sha256: str) -> LinearHead:
    """Read a head from its file after checking its sha256, every time (not cached)."""
    check_artifact(path, sha256)
    try:
        tensors = load_file(path)
        with safe_open(path, framework="numpy") as fh:
            meta = fh.metadata() or {}
        labels = tuple(json.loads(meta["labels"]))
        temperature = float(meta.get("temperature", "1.0"))
    except (SafetensorError, KeyError, ValueError, json.JSONDecodeError) as exc:
        raise ArtifactError(
            f"model artifact {path} is not a valid safetensors head: {exc}"
        ) from exc
    return LinearHead(
        labels=labels, weights=tensors["weights"], bias=tensors["bias"], temperature=temperature
    )


@functools.lru_cache(maxsize=8)
def load_head(path: str, sha256: str) -> LinearHead:
    """read_head, cached per process: serving reads the file once per version.

    The cache keeps the parsed file; scoring still checks the file's sha256 before
    every batch (check_artifact), so a file changed later is refused at once.
    """
    return read_head(path, sha256)
