"""Real services for the fault tests: a private redis-server, Celery workers and gunicorn
in subprocesses, all on the test database (PostgreSQL only: SQLite cannot be shared)."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from django.db import connection

from tests.factories import make_keyword_categories, make_token
from tests.services import needs_postgres, needs_redis_server
from tests.test_end_to_end import drop_broker_connections
from triage.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll until predicate() is true; the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """Print a measured figure in the test run's output (the coordinator quotes them)."""
    with capsys.disabled():
        print(f"\n[fault] {line}", flush=True)


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def terminate_other_backends() -> int:
    """pg_terminate_backend every connection to the test database but this test's own."""
    own = connection.connection.info.backend_pid if connection.connection else 0
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> %s",
            [own],
        ).fetchall()
    return len(rows)


@pytest.fixture
def postgres():
    needs_postgres("other processes share the test database")


@pytest.fixture
def categories(postgres, transactional_db):
    return make_keyword_categories()


@pytest.fixture
def token(categories):
    return make_token()


# --- A private Redis ------------------------------------------------------------


class PrivateRedis:
    """A redis-server of our own on a free port, without persistence: stopping it loses
    every queued and unacknowledged message, the worst a broker restart can do."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=1)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_until(up, 10, "redis-server to start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # with --save "": gone, with everything it held
            self.process.wait(10)
            self.process = None


@pytest.fixture
def private_redis(postgres, tmp_path):
    needs_redis_server()
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def publish_to(private_redis):
    """This process's tasks go to the private broker (tests otherwise run them eagerly)."""
    saved = {k: celery_app.conf[k] for k in ("broker_url", "task_always_eager")}
    celery_app.conf.update(broker_url=private_redis.url, task_always_eager=False)
    drop_broker_connections()
    yield private_redis
    celery_app.conf.update(saved)
    drop_broker_connections()


# --- Workers and web servers ------------------------------------------------------


@dataclass
class Services:
    tmp_path: Path
    processes: list[subprocess.Popen[bytes]]

    def env(self, **extra: str) -> dict[str, str]:
        return os.environ | {"DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1"} | extra

    def worker(
        self,
        broker_url: str,
        *,
        beat: bool = False,
        pool: str = "solo",
        concurrency: int = 1,
        **env: str,
    ) -> subprocess.Popen[bytes]:
        """`pool="prefork"`: `concurrency` child processes (one by default), which the
        worker replaces when they die."""
        command = [sys.executable, "-m", "celery", "-A", "triage", "worker", "--pool", pool]
        if pool == "prefork":
            command += ["--concurrency", str(concurrency)]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        command += ["--loglevel", "info"]
        if beat:
            command += ["--beat", "--schedule", str(self.tmp_path / "beat-schedule")]
        log = open(self.tmp_path / f"worker-{len(self.processes)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env(
                DJANGO_SETTINGS_MODULE="tests.faults.worker_settings",
                CELERY_BROKER_URL=broker_url,
                **env,
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def gunicorn(self, *, workers: int, threads: int = 1) -> "Gunicorn":
        port = free_port()
        log_path = self.tmp_path / f"gunicorn-{port}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "triage.wsgi", "--bind", f"127.0.0.1:{port}"]
            + ["--workers", str(workers), "--threads", str(threads), "--timeout", "60"],
            cwd=ROOT,
            env=self.env(
                DJANGO_SETTINGS_MODULE="tests.settings",
                DEBUG="0",
                ALLOWED_HOSTS="127.0.0.1",
                CELERY_BROKER_URL="",
            ),
            stdout=subprocess.DEVNULL,
            stderr=open(log_path, "wb"),  # noqa: SIM115
            # Its own process group: killing it at the end takes gunicorn's workers too.
            start_new_session=True,
        )
        self.processes.append(process)
        server = Gunicorn(f"http://127.0.0.1:{port}", log_path)
        wait_until(server.up, 30, "gunicorn to answer")
        return server


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Gunicorn:
    url: str
    log_path: Path

    def request(self, method: str, path: str, body: Any = None, token: str = "") -> Answer:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                status, headers, raw = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            status, headers, raw = exc.code, dict(exc.headers), exc.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw.decode(errors="replace")
        return Answer(status, headers, parsed)

    def up(self) -> bool:
        try:
            return self.request("GET", "/api/openapi.json").status == 200
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def running(postgres, transactional_db, tmp_path) -> Iterator[Services]:
    running = Services(tmp_path, [])
    yield running
    for process in running.processes:
        # The whole group (gunicorn's master and workers), before the test database goes.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
