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
    # As in production: DEBUG off (with it on, Django keeps and formats every query).
    os.environ["DEBUG"] = "0"
    os.environ.setdefault("SECRET_KEY", "benchmark-only-not-secret")
    os.environ.setdefault("ALLOWED_HOSTS", "localhost")
    # Benchmarks talk plain HTTP on 127.0.0.1: no HTTPS redirect or secure-only cookies.
    os.environ.setdefault("TRIAGE_HTTPS", "0")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{work / 'bench.sqlite3'}")
    os.environ.setdefault("TRIAGE_ARTIFACT_DIR", str(work / "artifacts"))
    os.environ.setdefault("TRIAGE_SIMILAR_INDEX_DIR", str(work / "similar"))
    # Tasks run in-process here, so a count retrain would land inside whatever a benchmark
    # times; replay.py, which measures it, turns it on per variant.
    os.environ.setdefault("TRIAGE_RETRAIN_AFTER_LABELS", "0")
    if runtime:
        os.environ["TRIAGE_ENCODER_RUNTIME"] = runtime

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return work


def fresh_postgres_database(server_url: str, name: str) -> str:
    """Create (or re-create) database `name` on the server of `server_url`; its URL."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg
    from psycopg import sql

    parts = urlsplit(server_url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        ident = sql.Identifier(name)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))
    return urlunsplit(parts._replace(path="/" + name))


def peak_rss_mb() -> float:
    import resource

    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
