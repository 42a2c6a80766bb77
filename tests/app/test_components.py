"""Shared console pieces that are pure functions: counts with their noun."""

from __future__ import annotations

import pytest

from core.ui.components import plural


@pytest.mark.parametrize(
    ("count", "expected"),
    [(0, "0 photos"), (1, "1 photo"), (2, "2 photos"), (1_200, "1,200 photos")],
)
def test_plural_is_singular_for_exactly_one(count: int, expected: str) -> None:
    assert plural(count, "photo") == expected


def test_plural_takes_an_irregular_form() -> None:
    assert plural(1, "more prediction is", "more predictions are") == "1 more prediction is"
    assert plural(3, "query", "queries") == "3 queries"
