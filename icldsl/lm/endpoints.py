"""The servers behind one LM (`base_url: ["http://a/v1", "http://b/v1"]`): which one
takes the next request, and which are out.

A request goes to the healthy endpoint with the fewest requests in flight. One that
fails in a way another server could fix (refused or dropped connection, 5xx, timeout)
is taken out for a cooldown that doubles with each failure in a row (1 s up to 30 s);
when it is over, one request probes it, and a success takes it back in. With a single
endpoint nothing is ever taken out: retries with backoff are all there is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

from icldsl.lm.connections import Connections

COOLDOWN = 1.0  # seconds out after a first failure; doubles per failure in a row
MAX_COOLDOWN = 30.0


@dataclass(eq=False, slots=True)
class Endpoint:
    """One server: its URL (`base_url`), connections, requests in flight, and health."""

    url: str
    connections: Connections
    in_flight: int = 0
    failures: int = 0  # in a row; 0 when healthy
    out_until: float = 0.0  # on the client's clock
    last_error: str = ""
    served: int = 0  # answers it gave, for logs and tests

    @property
    def healthy(self) -> bool:
        return self.failures == 0


class Endpoints:
    """Chooses an endpoint per attempt and keeps their health; one per LM client."""

    def __init__(self, urls: Sequence[str], make: Callable[[str], Connections],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.all = tuple(Endpoint(url, make(url)) for url in urls)
        self._clock = clock

    def __len__(self) -> int:
        return len(self.all)

    def pick(self) -> Endpoint | None:
        """The least busy endpoint that may take a request now, or None when all are out.

        An endpoint whose cooldown is over takes one request at a time (the probe)
        until it answers.
        """
        if len(self.all) == 1:
            return self.all[0]
        now = self._clock()
        ready = [e for e in self.all if e.healthy or (e.out_until <= now and e.in_flight == 0)]
        if not ready:
            return None
        return min(ready, key=lambda e: (e.healthy, e.in_flight))  # a due probe first

    def next_ready(self) -> float:
        """Seconds until an endpoint that is out may be probed (0 if one may be now)."""
        now = self._clock()
        return max(min(e.out_until for e in self.all) - now, 0.0)

    def succeeded(self, endpoint: Endpoint) -> None:
        endpoint.served += 1
        endpoint.failures, endpoint.out_until, endpoint.last_error = 0, 0.0, ""

    def failed(self, endpoint: Endpoint, reason: str) -> None:
        """Take `endpoint` out for its cooldown (never the only one); the cooldown doubles
        when the probe after it fails too."""
        endpoint.last_error = reason
        now = self._clock()
        if len(self.all) == 1 or endpoint.out_until > now:
            return  # the only one, or already out: requests sent before it went out failing too
        endpoint.failures += 1
        endpoint.out_until = now + min(COOLDOWN * 2 ** (endpoint.failures - 1), MAX_COOLDOWN)

    def describe(self) -> str:
        """Each endpoint that is out and why, for an error message."""
        return "; ".join(f"{e.url}: {e.last_error or 'probing'}" for e in self.all if not e.healthy)

    async def aclose(self) -> None:
        for endpoint in self.all:
            await endpoint.connections.aclose()
