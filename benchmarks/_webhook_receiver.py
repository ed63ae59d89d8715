"""A webhook receiver in its own process, for the delivery benchmark: it verifies every
signature, dedups by message id (webhook-id) and writes one line per event id (first
arrival time, signature ok, how many times it arrived). It speaks HTTP/1.1: a sender may
keep its connection open.

Started by start_receiver(); run directly as `python _webhook_receiver.py --serve PORT_FILE
OUT_FILE EXPECTED` with RECEIVER_SECRET in the environment.
"""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path


def run_receiver(port_file: str, out_file: str, expected: int, secret: str) -> None:
    """Serve until `expected` distinct event ids arrived; write "id time verified count"."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    verifier = Webhook(secret)
    first_seen: dict[str, tuple[float, bool]] = {}
    arrivals: dict[str, int] = {}
    lock = threading.Lock()
    done = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received = time.time()
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                verifier.verify(raw, headers)
                ok = True
            except WebhookVerificationError:
                ok = False
            msg_id = headers.get("webhook-id", "?")
            with lock:
                first_seen.setdefault(msg_id, (received, ok))
                arrivals[msg_id] = arrivals.get(msg_id, 0) + 1
                if len(first_seen) >= expected:
                    done.set()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    import signal

    # Terminated by the parent when deliveries stall: write what arrived, then exit.
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Path(port_file).write_text(str(server.server_address[1]))
    done.wait()
    time.sleep(1.0)  # a duplicate sent on the heels of the last event is still counted
    with lock, open(out_file, "w") as fh:
        for event_id, (at, ok) in first_seen.items():
            fh.write(f"{event_id} {at:.6f} {int(ok)} {arrivals[event_id]}\n")
    server.shutdown()


def start_receiver(work: Path, expected: int, secret: str) -> tuple[subprocess.Popen, int, Path]:
    tag = uuid.uuid4().hex[:8]
    port_file, out_file = work / f"port-{tag}", work / f"receipts-{tag}"
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port_file), str(out_file), str(expected)],
        env=os.environ | {"RECEIVER_SECRET": secret},
    )
    for _ in range(200):
        if port_file.exists() and port_file.read_text():
            return process, int(port_file.read_text()), out_file
        time.sleep(0.05)
    raise RuntimeError("the receiver did not start")


def read_receipts(path: Path) -> dict[str, tuple[float, bool, int]]:
    """Per event id: first arrival time, signature ok, number of arrivals."""
    receipts = {}
    for line in path.read_text().splitlines():
        event_id, at, ok, count = line.split()
        receipts[event_id] = (float(at), ok == "1", int(count))
    return receipts


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        run_receiver(sys.argv[2], sys.argv[3], int(sys.argv[4]), os.environ["RECEIVER_SECRET"])
    else:
        sys.exit("usage: _webhook_receiver.py --serve PORT_FILE OUT_FILE EXPECTED")
