"""The encoder spec: every choice that changes vectors is in the id; unsafe directories refused."""

import json
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from triage.ml.checks import configured_encoder_is_safe
from triage.ml.encoder import (
    TransformerEncoder,
    clear_encoders,
    configured_spec,
    packaged_model_dir,
)
from triage.ml.encoder_spec import EncoderConfigurationError, EncoderSpec, check_model_dir

TORCH = "triage.ml.encoder.TransformerEncoder"


def test_a_spec_stored_before_the_new_keys_keeps_its_id():
    # Versions recorded before EncoderSpec stored class, path and max_length only; their
    # ids (and so their cached vectors) must not change.
    old = EncoderSpec.of({"class": TORCH, "path": "", "max_length": 256})
    assert old.id_suffix() == ""
    assert EncoderSpec.of({"class": TORCH, "path": "", "max_length": 128}).id_suffix() == "@128"


@pytest.mark.parametrize(
    "change",
    [
        {"pooling": "cls"},
        {"prefix": "query: "},
        {"normalise": False},
        {"max_length": 384},
        {"device": "cuda"},
    ],
)
def test_every_choice_that_changes_vectors_changes_the_id(change):
    base = EncoderSpec.of({"class": TORCH})
    changed = EncoderSpec.of(base.as_dict() | change)
    assert changed.id_suffix() != base.id_suffix()


def test_two_prefixes_give_two_ids():
    a = EncoderSpec(runtime=TORCH, prefix="query: ")
    b = EncoderSpec(runtime=TORCH, prefix="passage: ")
    assert a.id_suffix() != b.id_suffix()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("family", "bert", "encoder family 'bert'"),
        ("pooling", "max", "encoder pooling 'max'"),
        ("device", "tpu", "encoder device 'tpu'"),
        ("max_length", 1, "max_length"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field(field, value, message):
    with pytest.raises(EncoderConfigurationError, match=message):
        EncoderSpec.of({"class": TORCH, field: value})


def _model_dir(tmp_path, *, weights="model.safetensors", config=None):
    model = tmp_path / "model-dir"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(config or {"model_type": "bert"}))
    if weights:
        (model / weights).write_bytes(b"x")
    return model


def test_a_safe_directory_is_accepted(tmp_path):
    model = _model_dir(tmp_path)
    assert check_model_dir(model) == model


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "absent", "does not exist"),
        (lambda p: _model_dir(p, weights="pytorch_model.bin"), "has only pytorch_model.bin"),
        (lambda p: _model_dir(p, weights=None), "no model.safetensors"),
        (lambda p: _model_dir(p, config={"auto_map": {"AutoModel": "x.Y"}}), "auto_map"),
    ],
)
def test_an_unsafe_directory_is_refused_in_one_line(tmp_path, make, message):
    with pytest.raises(EncoderConfigurationError, match=message) as caught:
        check_model_dir(make(tmp_path))
    assert "\n" not in str(caught.value)


def test_a_directory_shipping_python_code_is_refused(tmp_path):
    model = _model_dir(tmp_path)
    (model / "modeling_custom.py").write_text("print('hello')\n")
    with pytest.raises(EncoderConfigurationError, match="ships Python code"):
        check_model_dir(model)


def test_the_start_up_check_refuses_a_missing_encoder_directory(tmp_path):
    with override_settings(TRIAGE_ENCODER_CLASS="", TRIAGE_ENCODER_PATH=str(tmp_path / "gone")):
        errors = configured_encoder_is_safe()
    assert [e.id for e in errors] == ["triage.E010"]
    assert "does not exist" in errors[0].msg


def test_the_start_up_check_refuses_custom_code(tmp_path):
    model = _model_dir(tmp_path, config={"auto_map": {"AutoModel": "remote.Model"}})
    with override_settings(TRIAGE_ENCODER_CLASS="", TRIAGE_ENCODER_PATH=str(model)):
        errors = configured_encoder_is_safe()
    assert len(errors) == 1 and "auto_map" in errors[0].msg


def test_a_family_without_a_packaged_model_needs_a_path():
    with override_settings(TRIAGE_ENCODER_CLASS="", TRIAGE_ENCODER_FAMILY="bge"):
        errors = configured_encoder_is_safe()
    assert len(errors) == 1 and "TRIAGE_ENCODER_PATH" in errors[0].msg


def test_the_onnx_runtime_refuses_cls_pooling_at_start_up(tmp_path):
    with override_settings(
        TRIAGE_ENCODER_CLASS="",
        TRIAGE_ENCODER_RUNTIME="onnx-int8",
        TRIAGE_ENCODER_FAMILY="bge",
        TRIAGE_ENCODER_PATH=str(packaged_model_dir()),
    ):
        errors = configured_encoder_is_safe()
    assert len(errors) == 1 and "needs TRIAGE_ENCODER_RUNTIME=torch" in errors[0].msg


def test_the_family_sets_pooling_and_prefix():
    with override_settings(TRIAGE_ENCODER_CLASS="", TRIAGE_ENCODER_FAMILY="e5"):
        assert configured_spec()["prefix"] == "query: "
    with override_settings(TRIAGE_ENCODER_CLASS="", TRIAGE_ENCODER_FAMILY="bge"):
        assert configured_spec()["pooling"] == "cls"


@pytest.mark.django_db
def test_register_model_refuses_a_directory_with_custom_code(tmp_path):
    model = _model_dir(tmp_path, config={"id2label": {"0": "a"}})
    (model / "modeling_evil.py").write_text("import os\n")
    with pytest.raises(CommandError, match="ships Python code"):
        call_command("register_model", str(model), stdout=StringIO())


@pytest.mark.django_db
def test_register_model_refuses_a_missing_directory(tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        call_command("register_model", str(tmp_path / "nope"), stdout=StringIO())


@pytest.mark.slow
def test_pooling_and_prefix_change_the_real_vectors_and_their_id(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    clear_encoders()
    mean = TransformerEncoder.from_spec({"class": TORCH, "path": ""})
    cls = TransformerEncoder.from_spec({"class": TORCH, "path": "", "pooling": "cls"})
    prefixed = TransformerEncoder.from_spec({"class": TORCH, "path": "", "prefix": "query: "})
    ids = {mean.encoder_id, cls.encoder_id, prefixed.encoder_id}
    assert len(ids) == 3
    texts = ["We need water and food in Leogane"]
    assert not np.allclose(mean.encode(texts), cls.encode(texts))
    assert not np.allclose(mean.encode(texts), prefixed.encode(texts))
    assert np.allclose(np.linalg.norm(cls.encode(texts), axis=1), 1.0, atol=1e-5)
