"""Serving the int8 ONNX encoder: load a checked export, embed texts.

Building the export (ONNX conversion, SmoothQuant scaling, int8 quantisation) is
build-time work and lives in triage.ml.onnx_export; this module only reads what
it wrote (through triage.ml.onnx_bundle), refusing a file whose sha256 does not match
its manifest.

Activations are quantised per batch, so an embedding depends very slightly on the other texts
in its batch; sorting by length keeps batches homogeneous.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from triage.ml import onnx_bundle as bundle
from triage.ml.artifacts import file_sha256
from triage.ml.encoder import length_sorted_batches
from triage.ml.onnx_bundle import OnnxIntegrityError
from triage.ml.onnx_export import export_onnx_int8
from triage.ml.pooling import mean_pool_normalise_numpy

logger = logging.getLogger(__name__)


class OnnxEncoder:
    """Sentence encoder on the int8 ONNX export: L2-normalised, mask-weighted mean pooling.

    `model_dir` is the source model; its model.safetensors must hash to the sha256 recorded
    in `onnx_dir`/export.json. A missing or stale export is built on the spot (importing torch)
    when `auto_export` is true, else FileNotFoundError is raised. A damaged or tampered
    model.int8.onnx is never rebuilt silently: it raises OnnxIntegrityError.
    """

    encoder_id: str
    dim: int
    prefix = ""  # put before every text (EncoderSpec.prefix)

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> OnnxEncoder:
        """Built from a stored spec; the export lives under the artifact directory."""
        from django.conf import settings

        from triage.ml.encoder import resolve_model_dir
        from triage.ml.encoder_spec import EncoderSpec
        from triage.ml.threads import encoder_threads

        parsed = EncoderSpec.of({"max_length": settings.TRIAGE_MAX_LENGTH} | spec)
        parsed.check_onnx()
        model_dir = resolve_model_dir(parsed.path, family=parsed.family)
        source = file_sha256(bundle.source_weights(model_dir))[:16]
        encoder = cls(
            model_dir,
            onnx_dir=Path(settings.TRIAGE_ARTIFACT_DIR) / "onnx" / source,
            max_length=parsed.max_length,
            batch_size=settings.TRIAGE_BATCH_SIZE,
            max_tokens=settings.TRIAGE_BATCH_TOKENS,
            threads=encoder_threads(),
        )
        encoder.prefix = parsed.prefix
        encoder.encoder_id += parsed.id_suffix()
        return encoder

    def __init__(
        self,
        model_dir: Path,
        *,
        onnx_dir: Path,
        max_length: int = 256,
        batch_size: int = 64,
        max_tokens: int | None = None,
        threads: int | None = None,
        auto_export: bool = True,
    ) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {threads}")
        model_dir = Path(model_dir)
        onnx_dir = Path(onnx_dir)
        source_sha = file_sha256(bundle.source_weights(model_dir))

        manifest = bundle.read_manifest(onnx_dir)
        if manifest is None or manifest.get("source", {}).get("sha256") != source_sha:
            if not auto_export:
                state = "no ONNX export" if manifest is None else "a stale ONNX export"
                raise FileNotFoundError(
                    f"{onnx_dir} holds {state} of {model_dir}; run "
                    "triage.ml.onnx_export.export_onnx_int8(model_dir, onnx_dir) first"
                )
            export_onnx_int8(model_dir, onnx_dir)
            manifest = bundle.read_manifest(onnx_dir)
            assert manifest is not None

        # A damaged or tampered file raises OnnxIntegrityError here; it is never rebuilt.
        blob = bundle.read_verified_int8(onnx_dir, manifest)

        max_positions = int(manifest["max_position_embeddings"])
        if not 2 <= max_length <= max_positions:
            raise ValueError(f"max_length must be in [2, {max_positions}], got {max_length}")

        self.model_dir = model_dir
        self.onnx_dir = onnx_dir
        self.max_length = max_length
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.dim = int(manifest["dim"])
        int8_sha = manifest["int8"]["sha256"]  # verified above
        self.encoder_id = f"{manifest['model_name']}+onnx-int8:{int8_sha[:12]}"

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        if threads is not None:
            options.intra_op_num_threads = threads
        # The runtime's threads spin between a run's operators (fast), but not after the
        # run: they kept a core busy about 40 ms after each encode (0.04 CPU-seconds in a
        # 0.5 s sleep; 0.00 with this), the time in which the classify path's vote, writes
        # and database server run. Spinning restarts at the next run.
        options.add_session_config_entry("session.force_spinning_stop", "1")
        # Loaded from the verified bytes, not the path: what was hashed is what runs.
        self._session = onnxruntime.InferenceSession(
            blob, options, providers=["CPUExecutionProvider"]
        )
        self._input_names = [i.name for i in self._session.get_inputs()]
        unknown = set(self._input_names) - set(bundle.INPUT_NAMES)
        if unknown:
            raise OnnxIntegrityError(
                f"{onnx_dir / bundle.INT8_FILENAME} has unexpected inputs {sorted(unknown)}"
            )

        self._tokenizer = Tokenizer.from_file(str(onnx_dir / "tokenizer.json"))
        self._tokenizer.no_padding()  # padding is done per batch below
        self._tokenizer.enable_truncation(max_length=max_length)
        self._pad_id = self._find_pad_id(onnx_dir)

    def _find_pad_id(self, onnx_dir: Path) -> int:
        pad_token = None
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                value = json.loads((onnx_dir / name).read_text(encoding="utf-8")).get("pad_token")
                if isinstance(value, dict):
                    value = value.get("content")
                if isinstance(value, str):
                    pad_token = value
                    break
        pad_id = self._tokenizer.token_to_id(pad_token) if pad_token else None
        # Padded positions are masked out everywhere, so any id in range would do.
        return int(pad_id) if pad_id is not None else 0

    def __repr__(self) -> str:
        return f"OnnxEncoder({self.encoder_id!r}, dim={self.dim}, max_length={self.max_length})"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed `texts`: float32 array (len(texts), dim), L2-normalised, in input order."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of strings, not a single string")
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] is {type(text).__name__}, not str")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out

        if self.prefix:
            texts = [self.prefix + text for text in texts]
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=True)
        lengths = [len(e.ids) for e in encodings]
        for idx in length_sorted_batches(lengths, self.batch_size, self.max_tokens):
            width = max(lengths[i] for i in idx)
            ids = np.full((len(idx), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            types = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                enc, n = encodings[i], lengths[i]
                ids[row, :n] = enc.ids
                mask[row, :n] = 1
                types[row, :n] = enc.type_ids
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            hidden = self._session.run(None, {k: feed[k] for k in self._input_names})[0]
            out[idx] = mean_pool_normalise_numpy(hidden, mask)
        return out
