"""Atomic file writes: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target` in one rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: Path, payload: Any) -> None:
    write_text(target, json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n")


def write_bytes(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_frame(target: Path, frame: pd.DataFrame, writer: Callable[[pd.DataFrame, Path], None]) -> None:
    """Write a DataFrame with `writer(frame, path)` (e.g. a parquet or CSV writer) atomically."""
    with atomic_path(target) as tmp:
        writer(frame, tmp)


def write_parquet(target: Path, frame: pd.DataFrame) -> None:
    write_frame(target, frame, lambda f, p: f.to_parquet(p, index=False))


def write_csv(target: Path, frame: pd.DataFrame, *, index: bool = False) -> None:
    write_frame(target, frame, lambda f, p: f.to_csv(p, index=index))
