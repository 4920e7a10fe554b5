"""The one protocol every LM client speaks, and the values that cross it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Protocol, Sequence

from ..errors import Error


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class LMRequest:
    """A chat request whose answer must be a JSON object matching `schema`.

    `schema` is the JSON schema of the expected object (pydantic's
    `model_json_schema()`); `schema_name` names it for providers that want a name.
    `None` for temperature or max_tokens leaves the provider's default.

    `choices`, when given, are the only answers allowed, each a text with a prior (a log
    weight): the model answers the text whose log-probability after the prompt, plus its
    prior, is highest, instead of generating. Only clients that can score a text (the local
    provider) take them; the others refuse the request.
    """

    messages: tuple[Message, ...]
    schema: Mapping[str, Any] | None = None
    schema_name: str = "output"
    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    choices: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens)


@dataclass(frozen=True, slots=True)
class LMResponse:
    """The raw text the model produced, before any parsing. `answered_by` names the lm
    block whose fallback answered (`fallback: other`), None for the LM asked."""

    text: str
    usage: Usage = field(default_factory=Usage)
    answered_by: str | None = None


class LMError(Exception):
    """A call that could not produce an answer (after any retries).

    The runtime counts it as a failed prediction; it never ends a run.
    `retryable` says whether the same call could succeed later.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def refuse_choices(name: str, request: LMRequest) -> None:
    """For a client that generates only: a request with `choices` is an error it cannot answer
    (`check` refuses programs that would send one to such an LM)."""
    if request.choices:
        raise LMError(f"{name}: this provider cannot score choices (only the local provider can)")


class LMConfigError(Error):
    """Settings that cannot work at all (missing key, missing package, bad path)."""


class LMClient(Protocol):
    """An LM reachable by `complete`.

    `name` is the provider-prefixed target, for example `openai/gpt-4.1-mini`.
    """

    name: str

    async def complete(self, request: LMRequest) -> LMResponse: ...

    async def aclose(self) -> None: ...


class Embedder(Protocol):
    """A text embedding model: one vector per text, in order.

    `name` is the provider-prefixed target, for example `local/all-minilm-l6-v2`.
    """

    name: str

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...

    async def aclose(self) -> None: ...
