"""Connections to one HTTP endpoint that stay fast with hundreds of requests in flight.

httpx's connection pool does work proportional to the requests it holds times the
connections it holds on every request it starts and finishes, so one pool of 256
connections serves a fifth of what a client can send (bench/README.md, "Hundreds of
calls in flight"). Here each connection is an httpx transport of its own (limited to
one connection) and a request takes an idle one from a free list, so starting a
request costs the same at any concurrency. Requests go to the transports directly,
without `httpx.AsyncClient`, whose per-request layers (auth, redirects, cookies,
default headers) cost about a fifth of a call and do nothing for a JSON POST.
"""

from __future__ import annotations

import functools
import ssl
import urllib.request
from typing import Mapping

import httpx

# One connection per transport; httpcore closes it after this many idle seconds.
_ONE = httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=30.0)


@functools.cache
def default_ssl() -> ssl.SSLContext:
    """The SSL context of every connection: httpx would make one per transport, reading
    the CA bundle each time (~20 ms), even for plain http."""
    return httpx.create_ssl_context()


def proxy_for(url: str) -> httpx.Proxy | None:
    """The proxy the environment names for `url` (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY),
    as `httpx.AsyncClient` would use it."""
    parts = httpx.URL(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.host):
        return None
    return httpx.Proxy(proxy if "://" in proxy else f"http://{proxy}")


class Connections:
    """Keep-alive connections to the origin of `url`, one transport each, made as needed
    (or ahead, `reserve`), that POST with `headers`.

    The caller bounds how many requests are in flight (`HTTPCaller`'s `max_concurrency`),
    so there are never more connections than that. `timeout` bounds connecting, each
    read and each write. Use it within one event loop and `aclose()` it.
    """

    def __init__(self, url: str, *, timeout: float, headers: Mapping[str, str] | None = None,
                 ssl_context: ssl.SSLContext | None = None, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url
        self._headers = httpx.Headers(headers)
        self._given = transport  # tests may route every request through one transport of theirs
        self._timeout = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        self._proxy = proxy_for(url)
        self._ssl = ssl_context
        self._idle: list[httpx.AsyncBaseTransport] = []
        self._all: list[httpx.AsyncBaseTransport] = []
        self._targets: dict[str, tuple[httpx.URL, httpx.Headers]] = {}  # per URL posted to: it parsed, its headers

    def reserve(self, n: int) -> None:
        """Make transports until `n` exist, before the requests that need them: else each
        of the first `n` requests in flight makes its own as it starts (0.3 ms each, and
        the first imports httpcore), and with hundreds the first answers come late."""
        while self._given is None and len(self._all) < n:
            self._idle.append(self._open())

    def __len__(self) -> int:
        """How many connections have been opened (idle or busy)."""
        return len(self._all)

    async def post(self, url: str, body: bytes) -> httpx.Response:
        """POST `body` to `url` (on this endpoint) and read the whole answer."""
        target = self._targets.get(url) or self._target(url)
        headers = httpx.Headers(target[1])
        headers["Content-Length"] = str(len(body))
        # The headers given whole, as httpx would complete them: its completing them (and parsing
        # a URL given as text) cost more than all the rest of making a request.
        request = httpx.Request("POST", target[0], headers=headers, stream=httpx.ByteStream(body),
                                extensions={"timeout": self._timeout})
        request.read()  # as with `content=`: the body stays readable from the request
        # Last in, first out: the warmest connection is reused and the others expire.
        transport = self._given or (self._idle.pop() if self._idle else self._open())
        try:
            response = await transport.handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
        finally:
            if transport is not self._given:
                self._idle.append(transport)
        response.request = request
        return response

    def _target(self, url: str) -> tuple[httpx.URL, httpx.Headers]:
        """`url` parsed, and the headers of a POST to it but its Content-Length, in httpx's order."""
        parsed = httpx.URL(url)
        target = self._targets[url] = (parsed, httpx.Headers([(b"Host", parsed.netloc), *self._headers.raw]))
        return target

    def _open(self) -> httpx.AsyncBaseTransport:
        transport = httpx.AsyncHTTPTransport(limits=_ONE, proxy=self._proxy, verify=self._ssl or default_ssl())
        self._all.append(transport)
        return transport

    async def aclose(self) -> None:
        transports, self._all, self._idle = self._all + ([self._given] if self._given else []), [], []
        for transport in transports:
            await transport.aclose()
