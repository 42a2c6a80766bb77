"""Progress of long core steps: core functions take a callback, the edges (CLI, console) draw it."""

from __future__ import annotations

from collections.abc import Callable

StageProgress = Callable[[str, int, int], None]
"""Called as `progress(stage, done, total)`, e.g. `progress("images (train)", 1200, 84916)`."""


def silent(stage: str, done: int, total: int) -> None:
    """The callback to use when nobody is watching."""
