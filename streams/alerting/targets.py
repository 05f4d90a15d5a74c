"""Where a webhook may point (issue 13, item 7): public addresses only, unless a setting allows others.

A ward's webhook URL is typed by an operator but could be anyone's; the dispatcher sends a signed body
there. So loopback, link-local, private, shared, reserved, multicast and unspecified addresses are
refused (``ALERTS_WEBHOOK_ALLOW_PRIVATE`` lifts this, e.g. for a receiver on the same host in tests):

- at registration (``truyvet webhook set``): the host is resolved and every address must be public;
- at delivery, after DNS resolution: :class:`PublicOnlyResolver` drops non-public answers and fails
  the connection if none is left (a name that changed since registration, DNS rebinding), and an
  address written in the URL is checked before connecting (aiohttp does not resolve literals).
Redirects are never followed (the dispatcher posts with ``allow_redirects=False``).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from urllib.parse import urlparse

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver


def refused(address: str) -> bool:
    """Whether ``address`` (an IP literal) is not a public unicast address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def literal_host(url: str) -> str | None:
    """The URL's host if it is an IP literal, else None."""
    host = urlparse(url).hostname or ""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    return host


def check_url(url: str, *, allow_private: bool) -> str | None:
    """Why ``url`` may not be a webhook (None: it may): scheme, host, and every address it resolves to."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return f"not an http(s) URL: {url}"
    if parsed.username or parsed.password:
        return "a webhook URL may not carry credentials"
    if allow_private:
        return None
    try:
        infos = socket.getaddrinfo(parsed.hostname, parsed.port or 443, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"cannot resolve {parsed.hostname}: {exc}"
    bad = sorted({str(info[4][0]) for info in infos if refused(str(info[4][0]))})
    if bad:
        return (f"{parsed.hostname} resolves to non-public address(es) {', '.join(bad)}; "
                "set ALERTS_WEBHOOK_ALLOW_PRIVATE=1 only for a receiver on a trusted network")
    return None


class PublicOnlyResolver(AbstractResolver):
    """aiohttp resolver that keeps only public addresses: a connection to anything else fails."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET,
                      ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        kept = [a for a in answers if not refused(a["host"])]
        if not kept:
            # errno and strerror set: aiohttp shows strerror in the error the dispatcher records.
            raise OSError(errno.EADDRNOTAVAIL, f"{host} resolves only to non-public addresses "
                          f"({', '.join(sorted({a['host'] for a in answers}))}); refused")
        return kept

    async def close(self) -> None:
        await self._inner.close()
