"""Build-time half of the int8 fast path: export the transformer to ONNX, quantise to int8.

:func:`export_onnx_int8` (needs torch + transformers): exports the model's
``last_hidden_state`` to ONNX with the legacy TorchScript exporter (no extra packages),
checks the fp32 graph against torch, quantises it (triage.ml.onnx_quantise) and writes,
atomically, an export directory (its layout: triage.ml.onnx_bundle).

Serving it is triage.ml.onnx_encoder.OnnxEncoder (onnxruntime + tokenizers + numpy only).

This module must stay importable without importing torch (or transformers, which imports
torch): both are imported inside :func:`_build_export` only.
"""

from __future__ import annotations

import inspect
import json
import logging
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from triage.ml import onnx_bundle as bundle
from triage.ml.artifacts import file_sha256
from triage.ml.onnx_quantise import quantisation_record, quantise_int8, smooth_linears

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
OPSET = 17
# Largest element-wise difference allowed between the fp32 graph and torch.
_MAX_GRAPH_ERROR = 1e-3


def export_onnx_int8(
    model_dir: Path, out_dir: Path, *, model_name: str = DEFAULT_MODEL_NAME
) -> Path:
    """Export `model_dir` (a local Hugging Face model) to an int8 ONNX export in `out_dir`.

    Returns `out_dir`. Idempotent: an existing export of the same source weights (sha256 of
    model.safetensors) whose int8 file is intact is returned as is. The export is built in a
    temporary sibling directory and renamed into place, so `out_dir` never holds a half export.
    """
    model_dir = Path(model_dir).resolve()
    out_dir = Path(out_dir).resolve()
    source_sha = file_sha256(bundle.source_weights(model_dir))
    if not (model_dir / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{model_dir / 'tokenizer.json'} not found (fast tokenizer needed)")

    if bundle.is_current(out_dir, source_sha, model_name):
        return out_dir
    bundle.check_replaceable(out_dir)  # fail before the slow part, not after it

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with bundle.export_lock(out_dir):
        # Another process may have finished the same export while we waited for the lock.
        if bundle.is_current(out_dir, source_sha, model_name):
            return out_dir
        if (out_dir / bundle.MANIFEST_FILENAME).exists():
            logger.warning("replacing stale or damaged ONNX export in %s", out_dir)
        # Leftovers of crashed exports (we hold the lock, so none of them is live).
        bundle.remove_leftovers(out_dir)

        tmp = bundle.staging_dir(out_dir)
        try:
            _build_export(model_dir, tmp, source_sha=source_sha, model_name=model_name)
            bundle.publish(tmp, out_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _build_export(model_dir: Path, tmp: Path, *, source_sha: str, model_name: str) -> None:
    import warnings

    import onnx
    import onnxruntime
    import torch
    import transformers
    from transformers import AutoModel, AutoTokenizer

    started = time.perf_counter()
    # Eager attention traces to plain MatMul/Softmax; the SDPA path adds tracer-only branches.
    model = AutoModel.from_pretrained(
        model_dir, local_files_only=True, trust_remote_code=False, attn_implementation="eager"
    )
    model = model.float().eval()
    tokenizer = AutoTokenizer.from_pretrained(
        model_dir, local_files_only=True, trust_remote_code=False, use_fast=True
    )
    accepted = inspect.signature(model.forward).parameters
    input_names = [name for name in bundle.INPUT_NAMES if name in accepted]
    if input_names[:2] != ["input_ids", "attention_mask"]:
        raise ValueError(f"{type(model).__name__} does not take input_ids and attention_mask")

    class _LastHidden(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: torch.Tensor) -> Any:
            return self.inner(**dict(zip(input_names, args, strict=True))).last_hidden_state

    # Two texts of different lengths, so the sample batch is padded and the mask is not all 1.
    sample = tokenizer(
        ["an export sample of a few more words than the other", "short"],
        padding=True,
        return_tensors="pt",
    )
    args = tuple(sample[name] for name in input_names)
    check = tokenizer(
        ["a third text, longer than both of the texts used while tracing the graph", "x", ""],
        padding=True,
        return_tensors="pt",
    )
    # References from the untouched model: they check smoothing and export together.
    with torch.no_grad():
        expected = [
            model(**{n: batch[n] for n in input_names}).last_hidden_state.numpy()
            for batch in (sample, check)
        ]
    smoothed = smooth_linears(model, tokenizer, input_names)

    fp32_path = tmp / "model.fp32.onnx"
    axes = {name: {0: "batch", 1: "sequence"} for name in [*input_names, bundle.OUTPUT_NAME]}
    wrapper = _LastHidden(model).eval()
    with torch.no_grad(), warnings.catch_warnings():
        # The legacy (TorchScript) exporter warns that it is deprecated, and tracing warns about
        # shape checks turned into constants; the graph is checked against torch below instead.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # type: ignore[attr-defined]
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*aten::index.*")
        torch.onnx.export(
            wrapper,
            args,
            str(fp32_path),
            input_names=input_names,
            output_names=[bundle.OUTPUT_NAME],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    exported_at = time.perf_counter()

    # The traced graph must reproduce torch, on the padded sample and on a longer unseen batch.
    feeds = [{n: batch[n].numpy() for n in input_names} for batch in (sample, check)]
    error = _graph_error(fp32_path, feeds, expected)
    if not error < _MAX_GRAPH_ERROR:
        raise RuntimeError(f"exported ONNX graph disagrees with torch (max abs error {error:.3g})")

    int8_path = tmp / bundle.INT8_FILENAME
    fp32_nodes = quantise_int8(fp32_path, int8_path)
    fp32_path.unlink()
    for leftover in tmp.glob("*.data"):  # none for a model this size; never ship fp32 weights
        leftover.unlink()
    quantised_at = time.perf_counter()

    for name in bundle.TOKENIZER_FILES:
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, tmp / name)

    config = model.config
    manifest = {
        "format": bundle.FORMAT_VERSION,
        "model_name": model_name,
        "source": {"file": bundle.SOURCE_WEIGHTS_FILENAME, "sha256": source_sha},
        "int8": {
            "file": bundle.INT8_FILENAME,
            "sha256": file_sha256(int8_path),
            "bytes": int8_path.stat().st_size,
        },
        "inputs": input_names,
        "output": bundle.OUTPUT_NAME,
        "dim": int(config.hidden_size),
        "max_position_embeddings": int(getattr(config, "max_position_embeddings", 512)),
        "opset": OPSET,
        "quantization": quantisation_record(fp32_nodes, smoothed),
        "fp32_graph_max_abs_error": float(error),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        "seconds": {
            "export": round(exported_at - started, 2),
            "quantise": round(quantised_at - exported_at, 2),
        },
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (tmp / bundle.MANIFEST_FILENAME).write_text(
        json.dumps(manifest, indent=2) + "\n", encoding="utf-8"
    )


def _graph_error(
    fp32_path: Path, feeds: list[dict[str, np.ndarray]], expected: list[np.ndarray]
) -> float:
    """Largest absolute difference between the ONNX graph's outputs and torch's, over feeds."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(fp32_path), providers=["CPUExecutionProvider"])
    return max(
        float(np.abs(session.run(None, feed)[0] - want).max())
        for feed, want in zip(feeds, expected, strict=True)
    )
