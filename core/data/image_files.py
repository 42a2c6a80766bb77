"""Product image checks: is the file there, does it decode, what size is it.

Decoding uses JPEG draft mode: the decoder scales down by 8, skipping most of the inverse DCT, but still
reads every byte of the entropy stream, so a truncated or corrupt file is caught.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Final, Literal

from PIL import Image, UnidentifiedImageError

ImageCheck = Literal["decode", "exists", "none"]
Progress = Callable[[int, int], None]
EXPECTED_SIZE: Final = (500, 500)
_CHUNK: Final = 256


def check_image(path: str) -> str:
    """`ok`, `odd_size` (decodes, not 500×500), `corrupt` or `missing`."""
    try:
        with Image.open(path) as im:
            size = im.size
            im.draft("RGB", (size[0] // 8 or 1, size[1] // 8 or 1))
            im.load()
    except FileNotFoundError:
        return "missing"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return "corrupt"
    return "ok" if size == EXPECTED_SIZE else "odd_size"


def _check_chunk(paths: Sequence[str]) -> list[str]:
    return [check_image(p) for p in paths]


def check_images(
    paths: Sequence[str],
    *,
    mode: ImageCheck = "decode",
    workers: int = 1,
    progress: Progress | None = None,
) -> list[str]:
    """Status of every path (same order). `exists` only looks for the file; `none` checks nothing."""
    total = len(paths)
    if mode == "none":
        return ["unchecked"] * total
    existing = _existing_names({Path(p).parent for p in paths})
    status = ["ok" if Path(p).name in existing.get(str(Path(p).parent), ()) else "missing" for p in paths]
    if mode == "exists":
        if progress:
            progress(total, total)
        return status

    todo = [i for i, s in enumerate(status) if s == "ok"]
    chunks = [todo[i : i + _CHUNK] for i in range(0, len(todo), _CHUNK)]
    done = total - len(todo)
    if progress:
        progress(done, total)
    if workers > 1 and len(chunks) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = pool.map(_check_chunk, [[paths[i] for i in c] for c in chunks])
            for chunk, res in zip(chunks, results, strict=True):
                done = _store(status, chunk, res, done, total, progress)
    else:
        for chunk in chunks:
            done = _store(status, chunk, _check_chunk([paths[i] for i in chunk]), done, total, progress)
    return status


def _store(
    status: list[str], chunk: list[int], res: list[str], done: int, total: int, progress: Progress | None
) -> int:
    for i, s in zip(chunk, res, strict=True):
        status[i] = s
    done += len(chunk)
    if progress:
        progress(done, total)
    return done


def _existing_names(folders: set[Path]) -> dict[str, frozenset[str]]:
    """File names per folder, listed once (one directory scan instead of a stat per image)."""
    out: dict[str, frozenset[str]] = {}
    for folder in folders:
        try:
            with os.scandir(folder) as it:
                out[str(folder)] = frozenset(e.name for e in it if e.is_file())
        except (FileNotFoundError, NotADirectoryError):
            out[str(folder)] = frozenset()
    return out
