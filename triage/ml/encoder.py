"""Text encoders: texts in, L2-normalised sentence vectors out.

This package is the only code that imports torch or transformers. The model is
loaded lazily, once per process (get_encoder), never at import time, so
`migrate` and ordinary tests do not pay for torch.
"""

import dataclasses
import functools
import gc
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from django.conf import settings
from django.utils.module_loading import import_string

from triage.ml import packaged
from triage.ml.artifacts import file_sha256
from triage.ml.encoder_spec import (
    FAMILIES,
    EncoderConfigurationError,
    EncoderSpec,
    check_model_dir,
)
from triage.ml.pooling import pool
from triage.ml.threads import encoder_threads, set_torch_threads


class Encoder(Protocol):
    """Anything that turns texts into unit-length vectors.

    encoder_id names the embedding space: vectors with different ids are not
    comparable, and a head only ever scores vectors of the id it was trained on.
    """

    encoder_id: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def packaged_model_dir() -> Path:
    """The default encoder's directory (all-MiniLM-L6-v2, from its PyPI package)."""
    return packaged.minilm_dir()


def resolve_model_dir(path: str, *, family: str = "minilm") -> Path:
    """A checked local transformers directory; the empty path means the family's packaged one."""
    if path:
        model_dir = Path(path)
    elif family == "minilm":
        model_dir = packaged.minilm_dir()
    elif family == "mpnet":
        model_dir = packaged.mpnet_dir(Path(settings.TRIAGE_ARTIFACT_DIR))
    else:
        raise EncoderConfigurationError(
            f"TRIAGE_ENCODER_FAMILY={family} ships no packaged model: set TRIAGE_ENCODER_PATH "
            f"to a local {family} directory (safetensors weights)"
        )
    return check_model_dir(model_dir)


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
    """Pooled (and by default L2-normalised) embeddings from a local transformers model.

    Every choice that changes the vectors comes from the EncoderSpec and is part of the
    encoder id (EncoderSpec.id_suffix), so no cached vector is reused across choices.
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        max_length: int,
        batch_size: int,
        max_tokens: int | None = None,
        spec: EncoderSpec | None = None,
        threads: int | None = None,
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        set_torch_threads(threads)

        base = spec or EncoderSpec(runtime="triage.ml.encoder.TransformerEncoder")
        self.spec = dataclasses.replace(base, max_length=max_length)
        self.encoder_id = model_fingerprint(model_dir) + self.spec.id_suffix()
        self.max_length = max_length
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = (
            AutoModel.from_pretrained(model_dir, local_files_only=True, use_safetensors=True)
            .eval()
            .to(self.spec.device)
        )
        self.dim = int(self.model.config.hidden_size)
        self._torch = torch

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "TransformerEncoder":
        parsed = EncoderSpec.of(
            {"max_length": settings.TRIAGE_MAX_LENGTH} | spec | {"class": ENCODER_RUNTIMES["torch"]}
        )
        return cls(
            resolve_model_dir(parsed.path, family=parsed.family),
            max_length=parsed.max_length,
            batch_size=settings.TRIAGE_BATCH_SIZE,
            max_tokens=settings.TRIAGE_BATCH_TOKENS,
            spec=parsed,
            threads=encoder_threads(),
        )

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        if self.spec.prefix:
            texts = [self.spec.prefix + text for text in texts]
        batches = padded_batches(
            self.tokenizer,
            texts,
            max_length=self.max_length,
            batch_size=self.batch_size,
            max_tokens=self.max_tokens,
        )
        with torch.inference_mode():
            for batch, features in batches:
                features = features.to(self.spec.device)
                hidden = self.model(**features).last_hidden_state
                pooled = pool(
                    hidden,
                    features["attention_mask"],
                    pooling=self.spec.pooling,
                    normalise=self.spec.normalise,
                )
                out[batch] = pooled.cpu().numpy()
        return out


ENCODER_RUNTIMES = {
    "torch": "triage.ml.encoder.TransformerEncoder",
    "onnx-int8": "triage.ml.onnx_encoder.OnnxEncoder",
}


def configured_spec() -> dict[str, Any]:
    """The encoder that new models are trained on, from settings (an EncoderSpec as a dict)."""
    runtime = settings.TRIAGE_ENCODER_RUNTIME
    if runtime not in ENCODER_RUNTIMES:
        raise EncoderConfigurationError(
            f"TRIAGE_ENCODER_RUNTIME={runtime!r}; choose one of {', '.join(ENCODER_RUNTIMES)}"
        )
    family = settings.TRIAGE_ENCODER_FAMILY
    if family not in FAMILIES:
        raise EncoderConfigurationError(
            f"TRIAGE_ENCODER_FAMILY={family!r}; choose one of {', '.join(FAMILIES)}"
        )
    spec = EncoderSpec(
        runtime=settings.TRIAGE_ENCODER_CLASS or ENCODER_RUNTIMES[runtime],
        path=str(settings.TRIAGE_ENCODER_PATH),
        family=family,
        pooling=FAMILIES[family].pooling,
        prefix=FAMILIES[family].prefix,
        max_length=settings.TRIAGE_MAX_LENGTH,
        device=settings.TRIAGE_ENCODER_DEVICE,
    )
    return spec.as_dict()


def check_configured_encoder() -> None:
    """Refuse, with one line, a configured encoder whose directory is missing or unsafe.

    Run at start-up (a system check, and when a worker starts): never first at serving time.
    A custom TRIAGE_ENCODER_CLASS owns its files and is not checked here.
    """
    spec = EncoderSpec.of(configured_spec())
    if spec.runtime in ENCODER_RUNTIMES.values():
        resolve_model_dir(spec.path, family=spec.family)
        if spec.runtime == ENCODER_RUNTIMES["onnx-int8"]:
            spec.check_onnx()


@functools.cache
def _build(spec_json: str) -> Encoder:
    spec = json.loads(spec_json)
    cls = import_string(spec["class"])
    encoder: Encoder = cls.from_spec(spec)
    _settle_heap()
    return encoder


_heap_settled = False


def _settle_heap() -> None:
    """Once per process, after the first model loads: collect, then freeze what is alive.

    The model and the libraries it imported (torch or onnxruntime, transformers, sklearn,
    Django: ~190,000 objects) live as long as the process. Without this, every full
    collection walks them all: 0.1-0.3 s, about once per 2,000 items classified, a few per
    cent of an int8 encode. Frozen objects are still freed by reference counting; only a
    cycle among them is never collected.
    """
    global _heap_settled
    if not _heap_settled:
        _heap_settled = True
        gc.collect()
        gc.freeze()


def encoder_for(spec: dict[str, Any]) -> Encoder:
    """The encoder a spec describes, built on first use and kept for the process."""
    return _build(json.dumps(spec, sort_keys=True))


def get_encoder() -> Encoder:
    """The configured encoder (for cold start and for training new models)."""
    return encoder_for(configured_spec())


def clear_encoders() -> None:
    _build.cache_clear()
