"""Which webhook URLs Triage may send to.

A webhook URL is a request Triage makes on an admin's behalf from inside the
network, so it must not become a way to reach internal services (SSRF): https only,
and no host that resolves to a private, loopback, link-local or otherwise non-global
address, unless TRIAGE_WEBHOOK_ALLOW_PRIVATE is on (the demo and the tests, which
deliver to 127.0.0.1; plain http is then allowed for such local hosts only). The
check runs when the endpoint is saved and again before every attempt, because DNS
answers change.
"""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EndpointError(ValueError):
    pass


def resolve(host: str, *, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise EndpointError(f"the host {host!r} does not resolve ({exc})") from None
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        addresses.append(address)
    return addresses


def check_destination(url: str) -> None:
    """Raise EndpointError, with a reason a person can act on, if url may not be used."""
    parts = urlsplit(url)
    if parts.scheme not in {"https", "http"}:
        raise EndpointError("must start with https://")
    host = parts.hostname
    if not host:
        raise EndpointError("has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise EndpointError("has an invalid port") from None
    if parts.username or parts.password:
        raise EndpointError("must not contain a user name or password")
    allow_private = settings.TRIAGE_WEBHOOK_ALLOW_PRIVATE
    addresses = resolve(host, port=port)
    internal = [a for a in addresses if not a.is_global]
    if internal and not allow_private:
        raise EndpointError(
            f"{host} resolves to {internal[0]}, a private, loopback or link-local address; "
            "such destinations are refused unless TRIAGE_WEBHOOK_ALLOW_PRIVATE is on"
        )
    if parts.scheme == "http" and not (allow_private and len(internal) == len(addresses)):
        raise EndpointError(
            "must use https (plain http is only allowed for a local host, "
            "with TRIAGE_WEBHOOK_ALLOW_PRIVATE on)"
        )
