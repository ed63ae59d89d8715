"""Shared benchmark set-up: throwaway database and artifacts, then django.setup()."""

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django(*, runtime: str | None = None, workdir: str | None = None) -> Path:
    """Configure the environment, set Django up and migrate. Returns the temp work dir.

    Must run before anything imports django settings. DATABASE_URL is honoured if
    given; otherwise a fresh SQLite file in the work dir is used.
    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="triage-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["DJANGO_SETTINGS_MODULE"] = "triage.settings"
    os.environ["DEBUG"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{work / 'bench.sqlite3'}")
    os.environ.setdefault("TRIAGE_ARTIFACT_DIR", str(work / "artifacts"))
    if runtime:
        os.environ["TRIAGE_ENCODER_RUNTIME"] = runtime

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return work


def peak_rss_mb() -> float:
    import resource

    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
