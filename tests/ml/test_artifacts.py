import hashlib
import os
import subprocess
import sys
from pathlib import Path

from triage.ml.artifacts import file_sha256

REPO = Path(__file__).resolve().parents[2]


def test_file_sha256_is_the_sha256_of_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    data = bytes(range(256)) * 5000  # larger than one read chunk
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_code_that_checks_artifacts_does_not_import_torch() -> None:
    code = (
        "import sys, django\n"
        "django.setup()\n"
        "import triage.ml.artifacts, triage.ml.onnx_bundle, triage.ml.pooling\n"
        "import triage.cockpit.versions, triage.ml.heads\n"
        "bad = sorted(m for m in ('torch', 'transformers', 'onnxruntime') if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True, timeout=120)
