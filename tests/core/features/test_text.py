"""Text cleaning: what the console shows and what models read."""

import pandas as pd
import pytest

from core.features.text import clean_text, normalize_text, strip_html


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("<p>Piscine &amp; spa</p><br />Très <b>bien</b>", "Piscine & spa\nTrès bien"),
        ('<span class="a-list-item">Lot de 3</span>&nbsp;<span>neuf</span>', "Lot de 3 neuf"),
        ("L&#39;art Et Son Marche", "L'art Et Son Marche"),
        ("caf&amp;eacute; double-encoded", "café double-encoded"),
        ("Ã©tÃ© chaud", "été chaud"),  # mojibake repaired
        ("<ul><li>a</li><li>b</li></ul>", "a\nb"),
        ("taille < 5 cm & plus", "taille < 5 cm & plus"),  # not HTML: kept as written
        ("  many   spaces \t here ", "many spaces here"),
        ("", ""),
        (None, ""),
        (float("nan"), ""),
        (pd.NA, ""),
    ],
)
def test_clean_text(raw: object, clean: str) -> None:
    assert clean_text(raw) == clean


def test_normalize_lowercases_strips_accents_and_joins_lines() -> None:
    assert normalize_text("<p>Élégant</p><p>Hélicoptère RC</p>") == "elegant helicoptere rc"


def test_strip_html_leaves_plain_text_untouched() -> None:
    text = "Nintendo Switch - 32 Go"
    assert strip_html(text) is text
