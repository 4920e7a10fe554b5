"""The engine: one model and one llama.cpp context decoding concurrent requests together
(continuous batching; see the package's docstring). At about 500 lines it stays one module:
its parts share the worker thread's state (slots, KV streams, samplers, batch) and split
apart only by passing all of it around."""

from __future__ import annotations

import ctypes
import json
import logging
import math
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import jinja2
import numpy as np

from ..base import LMConfigError, LMError, LMRequest, LMResponse, Usage
from .machine import ThreadChoice, extra_buffer_types
from .models import bindings, chat_formatter
from .schema import bound_strings, grammar_schema

log = logging.getLogger(__name__)

# Sampling as llama-cpp-python's create_chat_completion does it by default, so
# that answers stay what they were when the client called it.
DEFAULT_TEMPERATURE = 0.2
TOP_K, TYPICAL_P, TOP_P, MIN_P = 40, 1.0, 0.95, 0.05
N_BATCH = 512  # tokens per decode step: the next token of every answer, then prompt chunks
# A request whose prompt shares this many more tokens with another slot's than
# with any free slot's gets a copy of that slot's KV cache instead of evaluating
# them again (a copy takes about as long as evaluating a dozen tokens).
MIN_COPY = 32
# How many of the best tokens the grammar checks, in turn, when it rejects a
# greedy pick, before it checks the whole vocabulary (see Engine._constrained).
SHORTLISTS = (64, 1024, 8192)


@dataclass(eq=False, slots=True)
class Job:
    """One request inside the engine, from its prompt tokens to its answer."""

    prompt: list[int]
    max_tokens: int
    temperature: float
    seed: int
    grammar: Any  # the engine's checked grammar sampler for the schema (cloned per job), or None
    deliver: Callable[[LMResponse | LMError], None]
    cancelled: bool = False
    slot: int = -1
    todo: list[int] = field(default_factory=list)  # prompt tokens not yet in the KV cache
    next: int = -1  # the last sampled token, not yet in the KV cache
    out: list[int] = field(default_factory=list)
    sampler: Any = None  # the chain that picks a token: greedy, or truncation and a seeded draw
    parser: Any = None  # this job's clone of the grammar, advanced token by token
    # A request with choices: each one's text, tokens and prior; the log-probabilities of the
    # token after the prompt (set when the prompt is evaluated); each scored choice's total.
    choices: list[tuple[str, list[int], float]] = field(default_factory=list)
    head: np.ndarray | None = None
    scores: list[float] = field(default_factory=list)


class Engine:
    """One model and one llama.cpp context decoding up to `n_parallel` sequences together.

    Requests queue in `submit`; a worker thread, running while there is work,
    admits them into free sequence slots and decodes one batch per step. Every
    llama.cpp call on the context happens in that thread; tokenizing and grammar
    checks (read-only on the vocabulary) happen in the caller's.
    """

    def __init__(self, name: str, path: Path, *, n_ctx: int, n_threads: int | None, n_parallel: int) -> None:
        ll = self._ll = bindings()
        self.name = name
        if n_parallel > ll.llama_max_parallel_sequences():
            raise LMConfigError(f"{name}: n_parallel may be at most {ll.llama_max_parallel_sequences()}")
        # The first reading of the machine's load; the first choice follows the model's load.
        self.threads = ThreadChoice(n_threads)
        params = self.model_params = ll.llama_model_default_params()
        extra = extra_buffer_types()  # off on AMX CPUs, where default builds crash with them
        if hasattr(type(params), "use_extra_bufts"):
            params.use_extra_bufts = extra
        elif not extra:
            log.warning("this llama-cpp-python cannot turn off extra buffer types; it may crash on AMX CPUs")
        log.info("loading %s from %s", name, path)
        self.model = ll.llama_model_load_from_file(str(path).encode(), params)
        if not self.model:
            raise LMConfigError(f"{name}: llama.cpp cannot load {path}")
        cparams = ll.llama_context_default_params()
        cparams.n_ctx = n_ctx * n_parallel
        cparams.n_batch = cparams.n_ubatch = N_BATCH
        cparams.n_seq_max = n_parallel
        cparams.kv_unified = False  # a KV stream per sequence: attention reads only its own cells
        cparams.n_threads = cparams.n_threads_batch = self.threads.pick()
        cparams.flash_attn_type = ll.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self.ctx = ll.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            ll.llama_model_free(self.model)
            raise LMConfigError(f"{name}: llama.cpp cannot make a context of {n_ctx} x {n_parallel} tokens")
        self.n_ctx = ll.llama_n_ctx_seq(self.ctx)
        self.mem = ll.llama_get_memory(self.ctx)
        self.vocab = ll.llama_model_get_vocab(self.model)
        self.batch = ll.llama_batch_init(N_BATCH, 0, 1)
        self.n_vocab = ll.llama_vocab_n_tokens(self.vocab)
        # Candidate arrays for sampling, reused by the worker thread: one token, or the whole vocabulary.
        self._one = ll.llama_token_data_array((ll.llama_token_data * 1)(), 1, -1, False)
        self._all_data = (ll.llama_token_data * self.n_vocab)()
        self._all_view = np.ctypeslib.as_array(self._all_data)
        self._ids = np.arange(self.n_vocab, dtype=np.int32)
        self._short_data = (ll.llama_token_data * SHORTLISTS[-1])()
        self._short_view = np.ctypeslib.as_array(self._short_data)
        self._short = ll.llama_token_data_array(
            ctypes.cast(self._short_data, ctypes.POINTER(ll.llama_token_data)), SHORTLISTS[-1], -1, False
        )

        self._format = chat_formatter(ll, self.model, self.vocab)

        self._grammars: dict[str, Any] = {}
        self._kv: list[list[int]] = [[] for _ in range(n_parallel)]  # tokens held in each slot's stream
        self._busy: list[Job | None] = [None] * n_parallel
        self._queue: deque[Job] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._rows: dict[Job, int] = {}  # batch row of each job's last token, from the last decode

    # -- the caller's side ------------------------------------------------------

    def job(self, request: LMRequest, seed: int, deliver: Callable[[LMResponse | LMError], None]) -> Job:
        """`request` as a job: prompt tokens, token budget, sampling, grammar."""
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        try:
            formatted = self._format(messages=messages)
        except (ValueError, jinja2.TemplateError) as exc:  # the template refuses these messages
            raise LMError(f"{self.name}: the model's chat template refused the messages: {exc}") from exc
        prompt = self._tokenize(formatted.prompt.encode(), add_special=not formatted.added_special)
        if len(prompt) >= self.n_ctx:
            raise LMError(f"{self.name}: the prompt ({len(prompt)} tokens) does not fit the context window "
                          f"of {self.n_ctx} tokens; shorten it or raise n_ctx")
        room = self.n_ctx - len(prompt)
        if request.choices:
            return self._choosing(prompt, request, deliver)
        wanted = request.max_tokens or 0
        schema = request.schema
        if schema is not None and request.max_tokens:
            schema = bound_strings(schema, request.max_tokens)
        return Job(
            prompt=prompt,
            max_tokens=min(wanted, room) if wanted > 0 else room,
            temperature=DEFAULT_TEMPERATURE if request.temperature is None else request.temperature,
            seed=seed,
            grammar=None if schema is None else self._grammar(schema),
            deliver=deliver,
        )

    def _choosing(self, prompt: list[int], request: LMRequest,
                  deliver: Callable[[LMResponse | LMError], None]) -> Job:
        """A job that scores `request.choices` after `prompt` rather than generating."""
        choices = [(text, self._tokenize(text.encode(), add_special=False), float(prior))
                   for text, prior in request.choices]
        longest = max(len(tokens) for _, tokens, _ in choices)
        if any(not tokens for _, tokens, _ in choices) or longest >= N_BATCH:
            raise LMError(f"{self.name}: a choice must be from 1 to {N_BATCH - 1} tokens long")
        if len(prompt) + longest > self.n_ctx:
            raise LMError(f"{self.name}: the prompt ({len(prompt)} tokens) and its longest choice ({longest}) "
                          f"do not fit the context window of {self.n_ctx} tokens; shorten them or raise n_ctx")
        return Job(prompt=prompt, max_tokens=0, temperature=0.0, seed=0, grammar=None, deliver=deliver,
                   choices=choices)

    def submit(self, job: Job) -> None:
        with self._cond:
            if self._closed:
                raise LMError(f"{self.name}: the client is closed")
            self._queue.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"icldsl {self.name}", daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Finish the work in hand, then free llama.cpp's memory."""
        with self._cond:
            self._closed = True
            while self._thread is not None:
                self._cond.wait()
        ll = self._ll
        for sampler in self._grammars.values():
            ll.llama_sampler_free(sampler)
        self._grammars.clear()
        ll.llama_batch_free(self.batch)
        ll.llama_free(self.ctx)
        ll.llama_model_free(self.model)

    def _grammar(self, schema: Mapping[str, Any]) -> Any:
        """The grammar sampler for `schema`, built (about 1 ms) and checked by llama.cpp once per schema."""
        key = json.dumps(schema, sort_keys=True)
        with self._cond:
            if key in self._grammars:
                return self._grammars[key]
        from llama_cpp.llama_grammar import json_schema_to_gbnf

        try:
            gbnf = json_schema_to_gbnf(json.dumps(grammar_schema(schema)))
        except (AssertionError, KeyError, ValueError, TypeError, NotImplementedError) as exc:
            raise LMConfigError(f"{self.name}: JSON schema unsupported for constrained output: {exc!r}") from exc
        sampler = self._ll.llama_sampler_init_grammar(self.vocab, gbnf.encode(), b"root")
        if not sampler:
            raise LMConfigError(f"{self.name}: llama.cpp rejected the grammar built from the JSON schema")
        with self._cond:
            if key in self._grammars:  # built twice at once: keep the first
                self._ll.llama_sampler_free(sampler)
            else:
                self._grammars[key] = sampler
            return self._grammars[key]

    def _tokenize(self, text: bytes, *, add_special: bool) -> list[int]:
        ll = self._ll
        size = len(text) + 8
        tokens = (ll.llama_token * size)()
        n = ll.llama_tokenize(self.vocab, text, len(text), tokens, size, add_special, True)
        if n < 0:
            size = -n
            tokens = (ll.llama_token * size)()
            n = ll.llama_tokenize(self.vocab, text, len(text), tokens, size, add_special, True)
        if n < 0:
            raise LMError(f"{self.name}: cannot tokenize the prompt")
        return list(tokens[:n])

    # -- the worker thread ------------------------------------------------------

    def _run(self) -> None:
        idle = False
        try:
            while True:
                with self._cond:
                    self._admit()
                    jobs = [job for job in self._busy if job is not None]
                    if not jobs:
                        self._thread, idle = None, True
                        self._cond.notify_all()
                        return
                self._step(jobs)
        finally:
            if not idle:  # an error escaped: no caller may wait forever
                with self._cond:
                    self._fail([*filter(None, self._busy), *self._queue], "the decoding thread stopped")
                    self._queue.clear()
                    self._thread = None
                    self._cond.notify_all()

    def _admit(self) -> None:
        """Drop cancelled jobs; start queued ones in free slots, reusing cached prompt prefixes.

        A job starts in the free slot whose cache shares most of its prompt. If
        another slot holds (or is evaluating) a longer shared prefix, the job
        gets a copy of that slot's cache instead, waiting if the prefix is not
        evaluated yet: requests with the same instructions and examples then
        evaluate them once, not once per slot.
        """
        for job in self._busy:
            if job is not None and job.cancelled:
                self._release(job)
        free = [slot for slot, job in enumerate(self._busy) if job is None]
        waiting: list[Job] = []
        while free and self._queue and len(waiting) < 2 * len(self._busy):
            job = self._queue.popleft()
            if job.cancelled:
                continue
            slot = max(free, key=lambda s: common_prefix(self._kv[s], job.prompt))
            keep = common_prefix(self._kv[slot], job.prompt)
            source, shared = max(
                ((s, common_prefix(self._planned(s), job.prompt)) for s in range(len(self._busy))),
                key=lambda pair: pair[1],
            )
            if shared >= keep + MIN_COPY:
                if common_prefix(self._kv[source], job.prompt) < shared:
                    waiting.append(job)  # the shared prefix is still being evaluated there
                    continue
                # Cross-stream copies are whole streams; llama.cpp does it before the next decode.
                self._ll.llama_memory_seq_cp(self.mem, source, slot, -1, -1)
                self._kv[slot] = list(self._kv[source])
                keep = shared
            free.remove(slot)
            keep = max(0, min(keep, len(job.prompt) - 2))  # the last two prompt tokens give logits (_step)
            if not self._ll.llama_memory_seq_rm(self.mem, slot, keep, -1):
                keep = 0
                self._ll.llama_memory_seq_rm(self.mem, slot, -1, -1)
            del self._kv[slot][keep:]
            job.slot, job.todo = slot, job.prompt[keep:]
            job.sampler = self._sampler(job.temperature, job.seed)
            if job.grammar is not None:
                job.parser = self._ll.llama_sampler_clone(job.grammar)
            self._busy[slot] = job
        self._queue.extendleft(reversed(waiting))

    def _planned(self, slot: int) -> list[int]:
        """The tokens `slot` holds once its job's prompt is evaluated."""
        job = self._busy[slot]
        return self._kv[slot] + job.todo if job is not None and job.todo else self._kv[slot]

    def _sampler(self, temperature: float, seed: int) -> Any:
        ll = self._ll
        chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        if temperature == 0:
            steps = [ll.llama_sampler_init_greedy()]
        elif temperature < 0:
            steps = [ll.llama_sampler_init_dist(seed)]
        else:
            steps = [ll.llama_sampler_init_top_k(TOP_K), ll.llama_sampler_init_typical(TYPICAL_P, 1),
                     ll.llama_sampler_init_top_p(TOP_P, 1), ll.llama_sampler_init_min_p(MIN_P, 1),
                     ll.llama_sampler_init_temp(temperature), ll.llama_sampler_init_dist(seed)]
        for step in steps:
            ll.llama_sampler_chain_add(chain, step)
        return chain

    def _sample(self, job: Job, index: int) -> int:
        """The next token of `job` from the logits at batch `index`.

        Checking a whole vocabulary against the grammar costs more than a
        decode step, so the token is picked first and checked alone; only if
        the grammar rejects it is it picked again among the tokens the grammar
        allows (llama.cpp's server does the same). At temperature 0 this is
        exactly the greedy choice among allowed tokens.
        """
        ll = self._ll
        if job.temperature == 0:
            logits = np.ctypeslib.as_array(ll.llama_get_logits_ith(self.ctx, index), shape=(self.n_vocab,))
            token = int(logits.argmax())
        else:
            token = ll.llama_sampler_sample(job.sampler, self.ctx, index)
        if job.parser is None:
            return token
        one = self._one
        one.data[0].id, one.data[0].logit, one.data[0].p = token, 0.0, 0.0
        one.size, one.selected, one.sorted = 1, -1, False
        ll.llama_sampler_apply(job.parser, ctypes.byref(one))
        if one.data[0].logit == -math.inf:
            token = self._constrained(job, index)
        ll.llama_sampler_accept(job.parser, token)
        return token

    def _constrained(self, job: Job, index: int) -> int:
        """The token `job.sampler` picks among those the grammar allows, from the logits at batch `index`."""
        logits = np.ctypeslib.as_array(self._ll.llama_get_logits_ith(self.ctx, index), shape=(self.n_vocab,))
        return self._allowed_pick(job.parser, job.sampler, job.temperature, logits)

    def _allowed_pick(self, parser: Any, sampler: Any, temperature: float, logits: np.ndarray,
                      shortlists: tuple[int, ...] = SHORTLISTS) -> int:
        """The token `sampler` picks from `logits` among those `parser` (a grammar) allows.

        At temperature 0 that is the allowed token with the highest logit (the
        lowest id among equals, as llama.cpp's greedy sampler picks): the
        grammar checks the 64 best tokens first, in one call, then the 1,024
        and 8,192 best, and the whole vocabulary (about 6 ms) only if none of
        them is allowed, or if the pick ties with a token left out.
        """
        ll = self._ll
        for size in shortlists if temperature == 0 else ():
            if size >= self.n_vocab:
                break
            best = np.argpartition(logits, -size - 1)[-size - 1:]
            best = best[np.lexsort((best, -logits[best]))]  # highest logit first, then lowest id
            view = self._short_view[:size]
            view["id"], view["logit"], view["p"] = best[:size], logits[best[:size]], 0.0
            short = self._short
            short.size, short.selected, short.sorted = size, -1, False
            ll.llama_sampler_apply(parser, ctypes.byref(short))
            allowed = np.flatnonzero(view["logit"] != -np.inf)
            # No token left out has a higher logit than the edge: a pick above it is the best allowed.
            if allowed.size and logits[best[allowed[0]]] > logits[best[size]]:
                return int(best[allowed[0]])
        self._all_view["id"] = self._ids
        self._all_view["logit"] = logits
        self._all_view["p"] = 0.0
        every = ll.llama_token_data_array(
            ctypes.cast(self._all_data, ctypes.POINTER(ll.llama_token_data)), self.n_vocab, -1, False
        )
        ll.llama_sampler_apply(parser, ctypes.byref(every))
        ll.llama_sampler_apply(sampler, ctypes.byref(every))
        return int(every.data[every.selected].id)

    def _step(self, jobs: list[Job]) -> None:
        """One step: a decode of the next token of every answer, one of a prompt chunk; then sampling.

        Answer tokens and prompt chunks go to llama.cpp in separate batches, one
        prompt per batch with logits for its last two tokens: batches mixing
        them are split by llama.cpp into parts whose sums run in another order,
        and at a near tie an answer then depended on what it was decoded with
        (2 of 24 GSM8K answers). Kept apart, the answers measured the same alone
        and in batches of 4 and 8.
        """
        generating = [job for job in jobs if not job.todo and not job.choices]
        if generating:
            entries = [(job, [job.next], len(self._kv[job.slot]), 1) for job in generating]
            if not self._decode(entries):
                return
            for job in generating:
                self._pick(job, self._rows[job])
        prefilling = next((job for job in jobs if job.todo), None)
        if prefilling is not None:
            chunk = prefilling.todo[:N_BATCH - 1]
            if len(prefilling.todo) - len(chunk) == 1:  # keep two tokens for the last chunk
                chunk = chunk[:-1]
            final = len(chunk) == len(prefilling.todo)
            if not self._decode([(prefilling, chunk, len(self._kv[prefilling.slot]), 2 if final else 0)]):
                return
            if final and prefilling.choices:
                prefilling.head = self._log_probs(self._rows[prefilling])
            elif final:
                self._pick(prefilling, self._rows[prefilling])
        scoring = next((job for job in jobs if job.head is not None and self._busy[job.slot] is job), None)
        if scoring is not None:
            self._score(scoring)

    def _log_probs(self, index: int) -> np.ndarray:
        """The log-probabilities of the next token, from the logits at batch `index`."""
        logits = np.ctypeslib.as_array(self._ll.llama_get_logits_ith(self.ctx, index), shape=(self.n_vocab,))
        shifted = logits.astype(np.float64) - logits.max()
        return shifted - np.log(np.exp(shifted).sum())

    def _score(self, job: Job) -> None:
        """Score `job`'s next choice: its tokens' log-probabilities after the prompt, plus its
        prior. The choice's tokens leave the cache after, so the next choice follows the prompt
        too; with the last one scored, the job answers the text of the best (the first of equals)."""
        _, tokens, prior = job.choices[len(job.scores)]
        total = float(job.head[tokens[0]])
        if len(tokens) > 1:
            start = len(self._kv[job.slot])
            if not self._decode([(job, tokens[:-1], start, len(tokens) - 1)]):
                return
            total += sum(float(self._log_probs(row)[token]) for row, token in enumerate(tokens[1:]))
            self._ll.llama_memory_seq_rm(self.mem, job.slot, start, -1)
            del self._kv[job.slot][start:]
        job.scores.append(total + prior)
        if len(job.scores) == len(job.choices):
            best = int(np.argmax(job.scores))
            log.debug("%s: choices scored %s", self.name, dict(zip((c[0] for c in job.choices), job.scores)))
            self._release(job)
            job.deliver(LMResponse(text=job.choices[best][0],
                                   usage=Usage(len(job.prompt), sum(len(c[1]) for c in job.choices))))

    def _decode(self, entries: list[tuple[Job, list[int], int, int]]) -> bool:
        """Decode each job's tokens from its position, with logits for its last `outputs` tokens.

        Fills `self._rows` with the batch row of each job's last token. On a
        failed decode the jobs fail with an LMError and their caches are dropped.
        """
        ll, batch = self._ll, self.batch
        n = 0
        self._rows = {}

        def add(token: int, seq: int, pos: int, logits: bool) -> None:
            nonlocal n
            batch.token[n], batch.pos[n], batch.n_seq_id[n], batch.logits[n] = token, pos, 1, logits
            batch.seq_id[n][0] = seq
            n += 1

        for job, tokens, start, outputs in entries:
            for i, token in enumerate(tokens):
                add(token, job.slot, start + i, i >= len(tokens) - outputs)
            self._rows[job] = n - 1
        batch.n_tokens = n
        threads = self.threads.current
        if self.threads.pick() != threads:
            ll.llama_set_n_threads(self.ctx, self.threads.current, self.threads.current)
        status = ll.llama_decode(self.ctx, batch)
        if status != 0:
            failed = [job for job, *_ in entries]
            for job in failed:
                ll.llama_memory_seq_rm(self.mem, job.slot, -1, -1)
                self._kv[job.slot].clear()
            self._fail(failed, f"llama_decode failed (status {status})")
            return False
        for job, tokens, _, _ in entries:
            self._kv[job.slot].extend(tokens)
            if job.todo:
                del job.todo[: len(tokens)]
        return True

    def _pick(self, job: Job, index: int) -> None:
        """Sample `job`'s next token from batch row `index`; finish the job at its end."""
        token = self._sample(job, index)
        if self._ll.llama_vocab_is_eog(self.vocab, token):
            self._finish(job)
            return
        job.out.append(token)
        if len(job.out) >= job.max_tokens:
            log.debug("%s: answer cut at max_tokens=%d", self.name, job.max_tokens)
            self._finish(job)
        else:
            job.next = token

    def _finish(self, job: Job) -> None:
        text = self._detokenize(job.out)
        self._release(job)
        job.deliver(LMResponse(text=text, usage=Usage(len(job.prompt), len(job.out))))

    def _fail(self, jobs: list[Job], why: str) -> None:
        for job in jobs:
            if job.slot >= 0:
                self._release(job)
            job.deliver(LMError(f"{self.name}: {why}"))

    def _release(self, job: Job) -> None:
        for sampler in (job.sampler, job.parser):
            if sampler is not None:
                self._ll.llama_sampler_free(sampler)
        job.sampler = job.parser = None
        self._busy[job.slot] = None

    def _detokenize(self, tokens: list[int]) -> str:
        ll = self._ll
        buffer = ctypes.create_string_buffer(64)
        pieces = []
        for token in tokens:
            n = ll.llama_token_to_piece(self.vocab, token, buffer, len(buffer), 0, False)
            if n < 0:
                buffer = ctypes.create_string_buffer(-n)
                n = ll.llama_token_to_piece(self.vocab, token, buffer, len(buffer), 0, False)
            pieces.append(buffer.raw[:n])
        return b"".join(pieces).decode("utf-8", errors="ignore")


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens `a` and `b` share (slice comparisons run in C)."""
    low, high = 0, min(len(a), len(b))
    if a[:high] == b[:high]:
        return high
    while low < high - 1:  # a[:low] == b[:low] and a[:high] != b[:high]
        middle = (low + high) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle
    return low
