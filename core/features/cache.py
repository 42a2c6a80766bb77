"""Content-addressed image feature cache: each picture is encoded once per encoder version, ever.

Features are keyed by a hash of the file's bytes, not its path, so renamed or re-ingested images and every
retrain reuse them. One store per encoder name and version, `<folder>/<name>-v<version>/`: `keys.npy` (hex
digests) and `features.npy` (float32 matrix), plus `part-*.npz` chunks written while an encode runs — an
interrupted encode keeps every finished chunk, and the next call resumes after them. At the end of a call
the chunks are merged into the two files.
"""
# Size: the image feature cache's keying, storage, batching and repair are one consistency story.

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
from filelock import FileLock
from PIL import Image

from core.compute.cluster import map_ordered, task_window
from core.errors import ImageDecodeError
from core.features.image import ENCODERS, ImageEncoder, get_encoder, open_image
from core.io import atomic_path
from core.progress import StageProgress, silent

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

STAGE: Final = "image features"
_DIGEST_SIZE: Final = 16
_KEY_DTYPE: Final = f"S{_DIGEST_SIZE * 2}"  # hex digest: fixed width, and never ends in a NUL numpy drops
_HASH_THREADS: Final = 8
_BATCH: Final = 32  # pictures per network forward pass
_FLUSH: Final = 512  # new features written to a chunk file at least this often
_TASK: Final = _BATCH * 4  # pictures per cluster task (whole batches: the same forward passes as here)


@dataclass(frozen=True)
class CacheStats:
    """What the last `features` call did: `hits` images served from the store, `encoded` distinct new
    contents encoded, `failed` images that could not be read (ok=False)."""

    images: int = 0
    hits: int = 0
    encoded: int = 0
    failed: int = 0

    def summary(self) -> str:
        """E.g. `3,000 images: 2,990 cached, 10 encoded, 0 unreadable`."""
        return (
            f"{self.images:,} images: {self.hits:,} cached, {self.encoded:,} encoded, "
            f"{self.failed:,} unreadable"
        )


def content_hash(path: str | Path) -> str | None:
    """Hex blake2b (16 bytes) of the file's bytes, or None when it cannot be read."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    return hashlib.blake2b(data, digest_size=_DIGEST_SIZE).hexdigest()


@lru_cache(maxsize=4)
def _worker_encoder(name: str) -> ImageEncoder:
    # One encoder per worker process (a CNN would load its weights once, not once per image).
    return get_encoder(name)


def _open(path: str, side: int) -> Image.Image | None:
    try:
        return open_image(path, side)
    except ImageDecodeError as exc:
        log.debug("%s", exc)
        return None


def _encode_with(encoder: ImageEncoder, path: str) -> np.ndarray | None:
    image = _open(path, encoder.side)
    return None if image is None else np.asarray(encoder.encode(image), dtype=np.float32)


def _encode_file(job: tuple[str, str]) -> np.ndarray | None:
    """Process-pool worker: features of the image at `path` with the registered encoder `name`."""
    path, name = job
    return _encode_with(_worker_encoder(name), path)


def _encode_pictures(
    encoder: ImageEncoder, pictures: Sequence[Image.Image | None]
) -> list[np.ndarray | None]:
    """One network forward pass over the readable pictures of a batch (None stays None)."""
    readable = [p for p in pictures if p is not None]
    encoded = iter(encoder.encode_batch(readable) if readable else [])
    return [None if p is None else np.asarray(next(encoded), dtype=np.float32) for p in pictures]


def _encode_task(paths: list[str], name: str) -> list[np.ndarray | None]:
    """Cluster task: features of `paths` with the registered encoder `name` (loaded once per worker
    process), in the batches this process would have made of them."""
    encoder = _worker_encoder(name)
    if not encoder.batched:
        return [_encode_with(encoder, path) for path in paths]
    out: list[np.ndarray | None] = []
    for at in range(0, len(paths), _BATCH):
        out.extend(_encode_pictures(encoder, [_open(p, encoder.side) for p in paths[at : at + _BATCH]]))
    return out


class FeatureStore:
    """Rows of features keyed by content digests, on disk under `store`: `keys.npy` + `features.npy`, and
    `part-*.npz` chunks written while an encode runs (merged by `_save`). Subclasses decide what a key
    hashes (an image file's bytes, a text) and how missing rows are computed."""

    def __init__(self, store: Path, n_features: int, label: str) -> None:
        self.store = store
        self.n_features = n_features
        self.label = label  # what the store's warnings name: "image", "text"
        self._keys: list[str] | None = None
        self._index: dict[str, int] = {}
        self._rows: list[np.ndarray] = []  # loaded matrix first, then rows appended by this object
        self._loaded_parts: list[Path] = []  # the chunk files `_load` read

    def __len__(self) -> int:
        return len(self._load())

    def _append(self, digest: str, row: np.ndarray) -> None:
        keys = self._load()
        self._index[digest] = len(keys)
        keys.append(digest)
        self._rows.append(row)

    def _load(self) -> list[str]:
        if self._keys is None:
            self._keys = []
            self._rows = []
            self._index = {}
            keys_file, features_file = self.store / "keys.npy", self.store / "features.npy"
            if keys_file.exists() and features_file.exists():
                self._read(keys_file, features_file)
            self._loaded_parts = self._parts()
            for part in self._loaded_parts:
                self._read_part(part)
        return self._keys

    def _parts(self) -> list[Path]:
        return sorted(self.store.glob("part-*.npz")) if self.store.is_dir() else []

    def _read(self, keys_file: Path, features_file: Path) -> None:
        try:
            keys = np.load(keys_file, allow_pickle=False)
            matrix = np.load(features_file, allow_pickle=False)
        except (OSError, ValueError) as exc:
            log.warning("feature cache %s is unreadable (%s); features will be recomputed", self.store, exc)
            return
        # Features are saved before keys, so an interrupted save leaves extra rows, never missing ones.
        if not self._fits(matrix) or len(matrix) < len(keys):
            return
        self._add([k.decode("ascii") for k in keys.tolist()], matrix[: len(keys)])

    def _read_part(self, part: Path) -> None:
        try:
            with np.load(part, allow_pickle=False) as data:
                keys, matrix = data["keys"], data["features"]
        except (OSError, ValueError, KeyError) as exc:
            log.warning(
                "feature cache chunk %s is unreadable (%s); its %ss will be re-encoded", part, exc, self.label
            )
            return
        if self._fits(matrix) and len(matrix) == len(keys):
            self._add([k.decode("ascii") for k in keys.tolist()], matrix)

    def _fits(self, matrix: np.ndarray) -> bool:
        if matrix.ndim == 2 and matrix.shape[1] == self.n_features:
            return True
        log.warning(
            "feature cache %s does not hold %d features per row; features will be recomputed",
            self.store,
            self.n_features,
        )
        return False

    def _add(self, keys: list[str], matrix: np.ndarray) -> None:
        assert self._keys is not None
        rows = matrix.astype(np.float32, copy=False)
        for key, row in zip(keys, rows, strict=True):
            if key not in self._index:  # a chunk merged just before an interruption repeats rows
                self._index[key] = len(self._keys)
                self._keys.append(key)
                self._rows.append(row)

    def _write_part(self, rows: Sequence[tuple[str, np.ndarray]]) -> None:
        """One finished chunk of new features, on disk at once (what an interrupted encode keeps)."""
        keys = np.array([k for k, _ in rows], dtype=_KEY_DTYPE)
        matrix = np.vstack([r for _, r in rows]).astype(np.float32, copy=False)
        self.store.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.store / f"part-{uuid.uuid4().hex}.npz") as tmp, tmp.open("wb") as fh:
            np.savez(fh, keys=keys, features=matrix)

    def _save(self) -> None:
        """Merge the two files and every chunk on disk (this object's, and any other process's) into
        `features.npy` + `keys.npy`, then drop the chunks merged. Under a lock, re-read first: two
        encodes at once (a training on the worker and a CLI step) neither lose nor mismatch rows."""

        self.store.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.store.parent / f".{self.store.name}.lock"), timeout=600):
            self._keys = None  # what is on disk now: the last merge first, then every chunk
            self._load()
            keys = np.array(self._keys or [], dtype=_KEY_DTYPE)
            matrix = (
                np.vstack(self._rows).astype(np.float32, copy=False)
                if self._rows
                else np.zeros((0, self.n_features), dtype=np.float32)
            )
            # features before keys: a reader between the two sees extra rows, never missing ones
            for target, array in (("features.npy", matrix), ("keys.npy", keys)):
                with atomic_path(self.store / target) as tmp, tmp.open("wb") as fh:
                    np.save(fh, array, allow_pickle=False)
            for part in self._loaded_parts:
                part.unlink(missing_ok=True)
        log.debug("saved %d cached %s features to %s", len(keys), self.label, self.store)


class ImageFeatureCache(FeatureStore):
    """Features of image files for one encoder, cached by content under `folder`.

    After each `features` call, `last_stats` (and `last_hits`, `last_misses`) say what was reused.
    """

    def __init__(self, folder: Path, encoder: ImageEncoder) -> None:
        super().__init__(Path(folder) / f"{encoder.name}-v{encoder.version}", encoder.n_features, "image")
        self.encoder = encoder
        self.last_stats = CacheStats()

    @property
    def last_hits(self) -> int:
        return self.last_stats.hits

    @property
    def last_misses(self) -> int:
        return self.last_stats.encoded

    def features(
        self,
        paths: Sequence[str | Path],
        *,
        workers: int = 1,
        progress: StageProgress | None = None,
        client: Client | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """`(matrix (n, n_features) float32, ok (n,) bool)` for `paths`, in order.

        Unreadable, corrupt or missing images give `ok=False` and a zero row; they are never cached.
        New features reach the store in chunks as they are encoded (an interruption keeps them) and
        are merged into its two files at the end. With a Dask `client`, the pictures not cached yet are
        encoded on its workers (which read them from the same paths: shared storage), in order.
        """
        step: StageProgress = progress or silent
        names = [str(p) for p in paths]
        total = len(names)
        keys = self._load()
        n_stored = len(keys)
        step(STAGE, 0, total)
        with ThreadPoolExecutor(max_workers=_HASH_THREADS) as pool:
            digests = list(pool.map(content_hash, names))

        todo: dict[str, str] = {}  # digest -> first path holding that content
        waiting: dict[str, int] = {}  # digest -> how many paths wait for it
        for name, digest in zip(names, digests, strict=True):
            if digest is not None and digest not in self._index:
                todo.setdefault(digest, name)
                waiting[digest] = waiting.get(digest, 0) + 1
        hits = sum(1 for d in digests if d is not None and d in self._index)
        done = total - sum(waiting.values())
        step(STAGE, done, total)

        failed_contents = 0
        pending: list[tuple[str, np.ndarray]] = []
        encoded = self._encode(list(todo.values()), workers, client, progress)
        for digest, row in zip(todo, encoded, strict=True):
            if row is None:
                failed_contents += 1
            else:
                self._append(digest, row)
                pending.append((digest, row))
                if len(pending) >= _FLUSH:
                    self._write_part(pending)
                    pending = []
            done += waiting[digest]
            step(STAGE, done, total)
        if pending:
            self._write_part(pending)
        if len(self._keys or []) > n_stored or self._parts():
            self._save()

        matrix = np.zeros((total, self.encoder.n_features), dtype=np.float32)
        ok = np.zeros(total, dtype=bool)
        for i, digest in enumerate(digests):
            row_at = self._index.get(digest) if digest is not None else None
            if row_at is not None:
                matrix[i] = self._rows[row_at]
                ok[i] = True
        failed = int((~ok).sum())
        if failed:
            log.warning("%d of %d images could not be read; they get zero image features", failed, total)
        self.last_stats = CacheStats(total, hits, len(todo) - failed_contents, failed)
        log.info("%s (%s)", self.last_stats.summary(), self.store.name)
        return matrix, ok

    def _encode(
        self,
        paths: list[str],
        workers: int,
        client: Client | None = None,
        progress: StageProgress | None = None,
    ) -> Iterator[np.ndarray | None]:
        """Features of `paths` in order (None where unreadable): on the cluster's workers when there is
        one (the encoder rebuilt there by name); else a network runs on batches in this process
        (pictures decoded by threads meanwhile), other encoders one picture at a time, across `workers`
        processes when the encoder is a registered one."""
        if client is not None and paths and self._registered():
            tasks = [paths[at : at + _TASK] for at in range(0, len(paths), _TASK)]
            for rows in map_ordered(
                client, _encode_task, tasks, self.encoder.name, window=task_window(client), progress=progress
            ):
                yield from rows
        elif self.encoder.batched:
            yield from self._encode_batches(paths, workers)
        elif workers > 1 and len(paths) > 1 and self._registered():
            chunksize = max(1, min(64, len(paths) // (workers * 4)))
            with ProcessPoolExecutor(max_workers=workers) as pool:
                yield from pool.map(
                    _encode_file, [(p, self.encoder.name) for p in paths], chunksize=chunksize
                )
        else:
            for path in paths:
                yield _encode_with(self.encoder, path)

    def _encode_batches(self, paths: list[str], workers: int) -> Iterator[np.ndarray | None]:
        side = self.encoder.side
        batches = [paths[i : i + _BATCH] for i in range(0, len(paths), _BATCH)]
        with ThreadPoolExecutor(max_workers=max(2, workers)) as pool:

            def decode(batch: list[str]) -> list[Future[Image.Image | None]]:
                return [pool.submit(_open, p, side) for p in batch]

            ahead = decode(batches[0]) if batches else []
            for i in range(len(batches)):
                pictures = [f.result() for f in ahead]
                ahead = decode(batches[i + 1]) if i + 1 < len(batches) else []  # decoded while we encode
                yield from _encode_pictures(self.encoder, pictures)

    def _registered(self) -> bool:
        # Worker processes rebuild the encoder by name: only right if the registry gives this very encoder.
        factory = ENCODERS.get(self.encoder.name)
        if factory is None:
            return False
        registered = factory()
        mine = (type(self.encoder), self.encoder.version, self.encoder.n_features)
        return (type(registered), registered.version, registered.n_features) == mine
