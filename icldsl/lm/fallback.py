"""An LM that hands a request to another when its own call fails (`fallback: other`)."""

from __future__ import annotations

import logging

from icldsl.lm.base import LMClient, LMError, LMRequest, LMResponse

log = logging.getLogger(__name__)


class FallbackClient:
    """`LMClient` that tries `primary`, and on LMError (after the primary's own
    retries) sends the same request to `fallback`. Closing it closes the primary
    only: the fallback belongs to its own lm."""

    def __init__(self, primary: LMClient, fallback: LMClient) -> None:
        self.name = primary.name
        self.primary, self.fallback = primary, fallback

    async def complete(self, request: LMRequest) -> LMResponse:
        try:
            return await self.primary.complete(request)
        except LMError as first:
            log.warning("%s failed; trying its fallback %s: %s", self.primary.name, self.fallback.name, first)
            try:
                return await self.fallback.complete(request)
            except LMError as second:
                raise LMError(f"{first}; then the fallback failed too: {second}", retryable=second.retryable) from second

    async def aclose(self) -> None:
        await self.primary.aclose()
