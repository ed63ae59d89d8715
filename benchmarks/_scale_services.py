"""benchmarks/scale.py's services: a private redis-server, gunicorn, HTTP clients in threads."""

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise SystemExit(f"scale: timed out waiting for {what}")


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    if shutil.which("redis-server") is None:
        raise SystemExit("scale: redis-server is needed (the broker classification is handed to)")
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        + ["--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    return process, f"redis://127.0.0.1:{port}/0"


def request(
    url: str,
    method: str = "GET",
    body: Any = None,
    token: str = "",
    cookie: str = "",
    timeout: float = 120,
) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if cookie:
        req.add_header("Cookie", cookie)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def start_gunicorn(
    workdir: Path, workers: int, app: str = "triage.wsgi", timeout: int = 120
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", app, "--bind", f"127.0.0.1:{port}"]
        + ["--workers", str(workers), "--timeout", str(timeout)],
        cwd=ROOT,
        # Throughput, not throttling: one token sends thousands of requests here, which
        # the per-token rate limit (600/min by default) would answer 429.
        env=os.environ | {"ALLOWED_HOSTS": "127.0.0.1,localhost", "TRIAGE_API_RATE_LIMIT": "off"},
        stdout=subprocess.DEVNULL,
        stderr=open(workdir / "gunicorn.log", "wb"),  # noqa: SIM115
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return request(url + "/api/openapi.json")[0] == 200
        except OSError:
            return False

    wait_until(up, 60, "gunicorn")
    return process, url


def in_threads(clients: int, work: Callable[[int], list[float]]) -> tuple[list[float], float]:
    """Run work(client) in `clients` threads at once; all latencies and the wall time.

    A client that fails stops the benchmark: a thread's exception (even SystemExit) is
    otherwise lost, and the figures would be computed over the clients that survived.
    """
    results: list[list[float]] = [[] for _ in range(clients)]
    failures: list[str] = []

    def run(k: int) -> None:
        try:
            results[k] = work(k)
        except BaseException as exc:  # noqa: BLE001 - reported below, in the main thread
            failures.append(f"client {k}: {exc}")

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise SystemExit("scale: " + "; ".join(failures))
    return [x for r in results for x in r], time.perf_counter() - started
