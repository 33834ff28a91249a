"""Who the client is, by address: the socket's peer, or what a trusted proxy says.

A client can write any ``X-Forwarded-For`` it likes, so the header counts only when the
peer is one of ``GATEWAY_TRUSTED_PROXIES``: then the client is the right-most address in
it that is not itself a trusted proxy. Decisions are remembered per address (bounded),
so a request parses no address it has seen before.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

_CACHE_SIZE = 4096


class Networks:
    """A set of networks; ``contains`` answers for an address string, cached."""

    def __init__(self, networks: Iterable[str]) -> None:
        self._networks: list[IPv4Network | IPv6Network] = [
            ip_network(n, strict=False) for n in networks]
        self._seen: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self._networks)

    def contains(self, address: str) -> bool:
        known = self._seen.get(address)
        if known is not None:
            return known
        try:
            parsed = ip_address(address)
        except ValueError:
            inside = False
        else:
            inside = any(parsed in network for network in self._networks)
        if len(self._seen) >= _CACHE_SIZE:
            self._seen.clear()
        self._seen[address] = inside
        return inside


class ClientAddresses:
    """The client address of a request, given its peer and ``X-Forwarded-For`` values."""

    def __init__(self, trusted_proxies: Iterable[str]) -> None:
        self.trusted = Networks(trusted_proxies)

    def client(self, peer: str, forwarded_for: list[bytes]) -> str:
        if not forwarded_for or not self.trusted.contains(peer):
            return peer
        chain = [hop.strip() for value in forwarded_for
                 for hop in value.decode("latin-1").split(",")]
        client = peer
        for hop in reversed(chain):
            if not _is_address(hop):
                break  # garbage from beyond the trusted proxies: the last good hop stands
            client = hop
            if not self.trusted.contains(hop):
                break
        return client

    def trusts(self, peer: str) -> bool:
        return self.trusted.contains(peer)


def _is_address(value: str) -> bool:
    try:
        ip_address(value)
    except ValueError:
        return False
    return True
