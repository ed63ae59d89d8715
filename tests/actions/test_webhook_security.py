"""Webhooks stay outside: the checked address is the one connected to, IPv6 spellings of
internal IPv4 addresses are refused, and a failed attempt queues its own retry."""

import socket
import threading
from datetime import timedelta

import pytest

from triage.actions import delivery as delivery_service
from triage.actions import endpoints, transport
from triage.actions.endpoints import EndpointError, check_destination

from .test_delivery import send

PUBLIC = "93.184.216.34"  # a global address (example.com)


@pytest.mark.parametrize(
    "spelling",
    [
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "::7f00:1",  # IPv4-compatible 127.0.0.1
        "::ffff:7f00:1",  # IPv4-mapped (refused before too)
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
        "::a9fe:a9fe",  # IPv4-compatible 169.254.169.254 (cloud metadata)
    ],
)
def test_ipv6_spellings_of_internal_ipv4_are_refused(spelling, settings):
    settings.TRIAGE_WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(EndpointError, match="private, loopback or link-local"):
        check_destination(f"https://[{spelling}]/hooks")
    # And at delivery: the attempt is not made.
    result = transport.post(f"https://[{spelling}]/hooks", body=b"{}", headers={}, timeout=0.5)
    assert result.status_code is None and "private, loopback" in result.error


@pytest.mark.parametrize("spelling", ["64:ff9b::5db8:d822", "2002:5db8:d822::1"])
def test_translated_spellings_of_a_public_address_pass(spelling, settings):
    settings.TRIAGE_WEBHOOK_ALLOW_PRIVATE = False
    assert check_destination(f"https://[{spelling}]/hooks").host == spelling


class Listener:
    """A TCP listener on 127.0.0.1 that counts the connections reaching it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.sock.close()


def test_a_dns_answer_that_changes_after_the_check_is_not_followed(settings, monkeypatch):
    """Rebinding: the name resolves to a public address for the check, then to 127.0.0.1.
    The attempt connects to the address checked, never to the second answer."""
    settings.TRIAGE_WEBHOOK_ALLOW_PRIVATE = False
    listener = Listener()
    answers = [PUBLIC, "127.0.0.1", "127.0.0.1", "127.0.0.1"]
    real = socket.getaddrinfo
    connected_to = []

    def rebinding(host, port, *args, **kwargs):
        if host != "rebind.example":
            return real(host, port, *args, **kwargs)
        address = answers.pop(0) if answers else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    def create_connection(address, *args, **kwargs):
        connected_to.append(address[0])
        if address[0] == PUBLIC:  # no internet in tests: as if the public host refused
            raise ConnectionRefusedError("refused")
        return real_create(address, *args, **kwargs)

    real_create = socket.create_connection
    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    try:
        result = transport.post(
            f"https://rebind.example:{listener.port}/hooks", body=b"{}", headers={}, timeout=1
        )
    finally:
        listener.stop()
    assert listener.connections == 0
    assert connected_to == [PUBLIC]
    assert result.status_code is None and "refused" in result.error


def test_the_connection_names_the_host_for_tls_and_the_host_header(monkeypatch):
    """Pinned to an address, the request still carries the host's name."""
    conn = transport._PinnedHTTPSConnection(
        "hooks.example", 443, address=endpoints.ipaddress.ip_address(PUBLIC), timeout=1
    )
    wrapped = {}

    class Context:
        def wrap_socket(self, sock, server_hostname):
            wrapped["sni"] = server_hostname
            return sock

    monkeypatch.setattr(socket, "create_connection", lambda address, timeout: address)
    conn.tls = Context()
    conn.connect()
    assert conn.sock == (PUBLIC, 443) and wrapped["sni"] == "hooks.example"
    assert conn.host == "hooks.example"  # http.client's Host header


def test_a_failed_attempt_queues_its_retry_with_a_countdown(
    endpoint, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    """Retries do not wait for beat: a failed batch queues its endpoint's task for then."""
    receiver.script = [500]
    queued = []

    class Signature:
        def delay(self, endpoint_id):  # the first attempt, as a worker would make it
            delivery_service.deliver_endpoint(endpoint_id=endpoint_id)

        def apply_async(self, args, countdown):
            queued.append((args, countdown))

    send(capture=django_capture_on_commit_callbacks)  # in-process tasks: nothing queued
    assert queued == []
    monkeypatch.setitem(delivery_service.current_app.conf, "task_always_eager", False)
    monkeypatch.setattr(delivery_service.current_app, "signature", lambda name: Signature())
    receiver.script = [500]
    event, delivery = send(capture=django_capture_on_commit_callbacks)
    delivery.refresh_from_db()
    [(args, countdown)] = queued
    assert args == (endpoint.pk,)
    wait = (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()
    assert wait <= countdown <= wait + 2  # the retry is due when the task runs
    assert 15 <= countdown <= 32  # the README's first retry: 15-30 s
    assert timedelta(seconds=countdown) < timedelta(minutes=1)
