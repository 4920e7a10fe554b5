"""An LM that hands a request to another when its own call fails (`fallback: other`)."""

from __future__ import annotations

import dataclasses
import logging

from .base import LMClient, LMError, LMRequest, LMResponse

log = logging.getLogger(__name__)


class FallbackClient:
    """`LMClient` that tries `primary`, and on LMError (after the primary's own
    retries) sends the same request to `fallback`, the client of lm `fallback_lm`, whose
    name its answers carry (`answered_by`; the usage tables count them under it). Closing
    it closes the primary only: the fallback belongs to its own lm."""

    def __init__(self, primary: LMClient, fallback: LMClient, fallback_lm: str) -> None:
        self.name = primary.name
        self.primary, self.fallback, self.fallback_lm = primary, fallback, fallback_lm

    async def complete(self, request: LMRequest) -> LMResponse:
        try:
            return await self.primary.complete(request)
        except LMError as first:
            log.warning("%s failed; trying its fallback %s: %s", self.primary.name, self.fallback.name, first)
            try:
                response = await self.fallback.complete(request)
            except LMError as second:
                raise LMError(f"{first}; then the fallback failed too: {second}", retryable=second.retryable) from second
            # the fallback's own fallback may have answered: that one is named already
            return response if response.answered_by else dataclasses.replace(response, answered_by=self.fallback_lm)

    async def aclose(self) -> None:
        await self.primary.aclose()
