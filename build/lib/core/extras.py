"""Optional extras (`vision`, `embeddings`): whether their packages are importable, and the error that
names the install command when something asks for one that is not."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

from core.errors import MissingExtraError


def missing(modules: Sequence[str]) -> list[str]:
    """The `modules` that cannot be imported here."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


def require(extra: str, modules: Sequence[str], *, needed_by: str, install: str, instead: str) -> None:
    """Raise `MissingExtraError` unless every module of `extra` is importable: what needs it, what is
    missing, the install command and the setting that avoids it."""
    absent = missing(modules)
    if absent:
        raise MissingExtraError(
            f"{needed_by} needs the {extra} extra ({', '.join(absent)} not installed). "
            f"Install it with: {install}. Or {instead}."
        )
