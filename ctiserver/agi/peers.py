"""Which peers may open a FastAGI session: the PBXes' addresses, as IP networks. Pure, no sockets.

FastAGI has no authentication: whoever connects gets an IVR session and can feed it replies. So the server
accepts only the addresses of the configured PBXes (cti.yaml ``agi.allow``) and refuses everyone else.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

Network = IPv4Network | IPv6Network
AllowList = tuple[Network, ...]

# What a server built without an allow-list accepts: this machine only.
LOOPBACK: AllowList = (IPv4Network("127.0.0.0/8"), IPv6Network("::1/128"))


def allow_list(entries: Iterable[str | Network]) -> AllowList:
    """``["10.0.0.10", "10.0.1.0/24"]`` -> networks; a bare address is a network of one.

    Raises ValueError for an entry that is neither (``ipaddress``'s message says why: host bits set ...).
    """
    return tuple(e if isinstance(e, (IPv4Network, IPv6Network)) else ip_network(e) for e in entries)


def peer_allowed(host: object, allow: AllowList) -> bool:
    """Whether the peer address ``host`` (from ``getpeername``) lies in one of the networks."""
    try:
        addr = ip_address(str(host))
    except ValueError:
        return False
    # A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d: judge them by their IPv4 address.
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr in net for net in allow)
