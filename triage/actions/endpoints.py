"""Which webhook URLs Triage may send to.

A webhook URL is a request Triage makes on an admin's behalf from inside the
network, so it must not become a way to reach internal services (SSRF): https only,
and no host that resolves to a private, loopback, link-local or otherwise non-global
address, unless TRIAGE_WEBHOOK_ALLOW_PRIVATE is on (the demo and the tests, which
deliver to 127.0.0.1; plain http is then allowed for such local hosts only). The
check runs when the endpoint is saved and again before every attempt, because DNS
answers change; the attempt then connects to the very addresses that were checked
(triage.actions.delivery), never resolving the name a second time, so a DNS answer that
changes between the check and the connection (rebinding) cannot reach inside.

IPv6 can spell an IPv4 address in several ways that reach it: IPv4-mapped
(::ffff:a.b.c.d), NAT64 (64:ff9b::/96), 6to4 (2002::/16) and IPv4-compatible (::/96).
Each is judged by the IPv4 address inside it as well as by itself.
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EndpointError(ValueError):
    pass


NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


@dataclass(frozen=True)
class Destination:
    """A URL that passed the check, with the addresses it was checked at."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[IPAddress, ...]


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address reaches through a translation, if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64 or (address in IPV4_COMPATIBLE and int(address) > 0xFFFF):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_internal(address: IPAddress) -> bool:
    """Not a global address, itself or through the IPv4 address it spells."""
    inner = embedded_ipv4(address)
    return not address.is_global or (inner is not None and not inner.is_global)


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


def check_destination(url: str) -> Destination:
    """The destination to connect to, or EndpointError with a reason a person can act on."""
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
    internal = [a for a in addresses if is_internal(a)]
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
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Destination(parts.scheme, host, port, path, tuple(dict.fromkeys(addresses)))
