"""Test settings: the real settings, with a fake encoder and fast hashing."""

import os
import tempfile
from pathlib import Path

os.environ["TRIAGE_ENV_FILE"] = ""
os.environ.setdefault("SECRET_KEY", "test-only-secret")
# The test client and live server speak plain HTTP (tests of the HTTPS settings run
# `check --deploy` in a subprocess with production variables).
os.environ.setdefault("TRIAGE_HTTPS", "0")
os.environ.setdefault("TRIAGE_ENCODER_CLASS", "tests.fakes.FakeEncoder")
# The suite's fixtures are keyword texts: a TF-IDF half would learn them alone and hide
# what a test does to the embedding head. The ensemble has its own tests (tests/ml).
os.environ.setdefault("TRIAGE_HEAD", "embedding")
os.environ.setdefault("TRIAGE_ARTIFACT_DIR", tempfile.mkdtemp(prefix="triage-test-models-"))
os.environ.setdefault("TRIAGE_SIMILAR_INDEX_DIR", tempfile.mkdtemp(prefix="triage-test-similar-"))

from triage.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
CELERY_TASK_ALWAYS_EAGER = True
STATIC_ROOT = Path(tempfile.mkdtemp(prefix="triage-test-static-"))
# No random second reviews unless a test asks for them (they would add tasks at random);
# second reviews of confident overturns stay on, as in production.
TRIAGE_SECOND_REVIEW_SHARE = 0.0
TRIAGE_SECOND_REVIEW_BULK_SHARE = 0.0
# No retrain on a count of new labels unless a test asks for one: a test that records
# hundreds of labels outside a transaction would otherwise retrain in the middle.
TRIAGE_RETRAIN_AFTER_LABELS = 0
