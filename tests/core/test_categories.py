"""The one code → name mapping."""

import pytest

from core.categories import CATEGORIES, CODES, category, is_known, label, names


def test_27_unique_codes_with_real_shares() -> None:
    assert len(CODES) == 27 == len(set(CODES))
    assert sum(c.share for c in CATEGORIES) == pytest.approx(1.0, abs=0.01)
    assert category(2583).share == pytest.approx(0.1202)  # the largest class
    assert min(CATEGORIES, key=lambda c: c.share).code == 1180


def test_labels_and_names() -> None:
    assert label(2583) == "2583 · Swimming pool and spa equipment"
    assert names("fr")[2705] == "Livres neufs"
    assert label(9999) == "9999 · unknown"


def test_unknown_code_raises_with_the_known_codes() -> None:
    with pytest.raises(KeyError, match="known codes"):
        category(9999)


@pytest.mark.parametrize(
    ("value", "known"), [(10, True), ("2583", True), (11, False), ("abc", False), (None, False)]
)
def test_is_known(value: object, known: bool) -> None:
    assert is_known(value) is known
