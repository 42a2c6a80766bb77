"""Data expectations on a generated set: it must look like the real download (DATA_FORMAT.md)."""

import re

import numpy as np
import pandas as pd
import pytest

from core.categories import CATEGORIES
from core.data.demo.generator import DemoSpec, generate_tables

ROWS = 20_000


@pytest.fixture(scope="module")
def tables():
    return generate_tables(DemoSpec(rows=ROWS, seed=11))


def test_class_shares_match_the_real_data(tables) -> None:
    shares = tables.y_train["prdtypecode"].value_counts(normalize=True)
    for cat in CATEGORIES:
        assert shares[cat.code] == pytest.approx(cat.share, abs=0.006), cat.code
    assert shares.idxmax() == 2583


def test_about_35_percent_empty_descriptions(tables) -> None:
    rate = tables.x_train["description"].isna().mean()
    assert 0.32 < rate < 0.38


def test_titles_present_and_bounded(tables) -> None:
    lengths = tables.x_train["designation"].str.len()
    assert lengths.min() >= 1 and lengths.max() <= 250
    assert tables.x_train["designation"].str.strip().ne("").all()


def test_descriptions_carry_html_entities_and_some_mojibake(tables) -> None:
    desc = tables.x_train["description"].dropna()
    assert desc.str.contains(r"<(?:br|p|b|li|span)\b", regex=True).mean() > 0.5
    assert desc.str.contains(r"&(?:#39|amp|nbsp|eacute);", regex=True).mean() > 0.2
    assert 0.005 < desc.str.contains("Ã", regex=False).mean() < 0.08
    assert desc.str.len().max() > 1000  # some long spec sheets


def test_mostly_french_with_german_and_english(tables) -> None:
    text = (tables.x_train["designation"] + " " + tables.x_train["description"].fillna("")).str.lower()

    def share(words: str) -> float:
        return text.str.contains(rf"\b(?:{words})\b", regex=True).mean()

    assert share("de|la|le|pour|avec|lot|et|en") > 0.6
    assert 0.02 < share("und|für|mit|der|die|das") < 0.3
    assert 0.02 < share("with|for|and|the") < 0.3


def test_ids_are_unique_and_realistic(tables) -> None:
    ids = pd.concat([tables.x_train, tables.x_test])
    assert ids["productid"].is_unique and ids["imageid"].is_unique
    assert ids["productid"].between(1, 4_300_000_000).all()


def test_related_classes_share_vocabulary(tables) -> None:
    """New books, used books and book lots must overlap: a title word alone should not decide."""
    words = {}
    for code in (10, 2705, 2403):
        titles = tables.x_train.loc[tables.y_train["prdtypecode"] == code, "designation"].str.lower()
        words[code] = {w for t in titles for w in re.findall(r"\w{4,}", t)}
    overlap = len(words[10] & words[2705]) / len(words[10] | words[2705])
    assert overlap > 0.15


def test_no_class_is_trivially_separable_by_title_length(tables) -> None:
    med = tables.x_train.groupby(tables.y_train["prdtypecode"])["designation"].apply(
        lambda s: s.str.len().median()
    )
    assert np.ptp(med.to_numpy()) < 60
