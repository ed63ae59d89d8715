"""A webhook receiver to try Triage with: prints each event and whether its signature verifies."""

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from triage.actions.models import Endpoint


class Command(BaseCommand):
    help = (
        "Listen for Triage webhooks on 127.0.0.1 and print each event with its signature check "
        "(Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8001, help="port (0: any free one)")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument(
            "--secret",
            default="",
            help="the endpoint's signing secret (whsec_…); default: the secret of the "
            "endpoint registered at this port",
        )
        parser.add_argument(
            "--status", type=int, default=200, help="status to answer with, e.g. 500 to see retries"
        )
        parser.add_argument(
            "--activate", action="store_true", help="switch on the endpoint registered at this port"
        )

    def handle(
        self, *args: Any, port: int, host: str, secret: str, status: int, **options: Any
    ) -> None:
        if not 100 <= status <= 599:
            raise CommandError(f"--status {status} is not an HTTP status code")
        endpoint = None
        if not secret or options["activate"]:
            endpoint = Endpoint.objects.filter(url__contains=f"://{host}:{port}/").first()
        if not secret:
            if endpoint is None:
                raise CommandError(f"no endpoint is registered at {host}:{port}: pass --secret")
            secret = endpoint.secret
        try:
            verifier = Webhook(secret)
        except Exception as exc:
            raise CommandError(f"--secret is not a Standard Webhooks secret: {exc}") from None
        if endpoint is not None and options["activate"]:
            Endpoint.objects.filter(pk=endpoint.pk).update(is_active=True, disabled_reason="")
            self.stdout.write(f"Activated the endpoint {endpoint.url}")
        out = self.stdout
        style = self.style

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    verifier.verify(raw, headers)
                    check = style.SUCCESS("signature OK")
                    answer = status
                except (WebhookVerificationError, ValueError) as exc:
                    check = style.ERROR(f"signature INVALID ({exc})")
                    answer = 401
                out.write(f"{headers.get('webhook-id', '?')} {check} → {answer}  {describe(raw)}")
                out.flush()
                self.send_response(answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

        server = ThreadingHTTPServer((host, port), Handler)
        self.stdout.write(
            f"Listening on http://{host}:{server.server_address[1]}/ (Ctrl-C to stop)"
        )
        self.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()


def describe(raw: bytes) -> str:
    try:
        payload = json.loads(raw)
        data = payload.get("data", {})
    except (ValueError, AttributeError):
        return raw[:200].decode("utf-8", errors="replace")
    item = data.get("item") or {}
    parts = [
        payload.get("type", "?"),
        f"{item.get('external_id', '')} → {data.get('category')}",
        f"by {data.get('decided_by')}",
    ]
    if data.get("confidence") is not None:
        parts.append(f"confidence {data['confidence']:.2f}")
    if data.get("previous_category"):
        parts.append(f"was {data['previous_category']}")
    text = str(item.get("text", ""))
    parts.append(repr(text[:60] + ("…" if len(text) > 60 else "")))
    return " | ".join(parts)
