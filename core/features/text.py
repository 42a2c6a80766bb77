"""Text cleaning for product titles and descriptions.

`clean_text` gives readable text (what the console shows): HTML tags removed with block tags turned into
line breaks, entities decoded (also double-encoded ones), mojibake repaired by ftfy, whitespace folded.
`normalize_text` goes further for models: lower case, accents stripped. `model_text` gives both forms a
model needs: the normalized title and title + description (TF-IDF), and the readable passage (sentence
embeddings, which read case and accents).
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from html.parser import HTMLParser
from typing import Final

import ftfy
import pandas as pd
from ftfy.badness import is_bad

_BLOCK_TAGS: Final = frozenset({"br", "p", "div", "li", "ul", "ol", "tr", "h1", "h2", "h3", "h4", "table"})
_SPACES: Final = re.compile(r"[ \t\r\f\v\u00a0]+")
_NEWLINES: Final = re.compile(r"\s*\n\s*")
COLUMNS: Final = ("title", "text", "passage")
PASSAGE_CHARS: Final = 2000


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def strip_html(text: str) -> str:
    """Text content of an HTML fragment; block tags become newlines, entities are decoded."""
    if "<" not in text and "&" not in text:
        return text
    parser = _TextExtractor()
    parser.feed(text)
    parser.close()
    return "".join(parser.parts)


def clean_text(text: object) -> str:
    """Readable plain text from a raw title or description (None, NaN and <NA> give '')."""
    if not isinstance(text, str):
        if text is None or pd.isna(text):  # type: ignore[call-overload]
            return ""
        text = str(text)
    out = strip_html(text)
    if "&" in out or (not out.isascii() and is_bad(out)):
        # mojibake, and entities that were escaped twice; `is_bad` is ftfy's own cheap detector, so
        # clean text skips the full repair (3× faster, same output on the demo and real data).
        out = ftfy.fix_text(out, unescape_html=True)
    else:
        out = unicodedata.normalize("NFC", out)
    out = _SPACES.sub(" ", out)
    return _NEWLINES.sub("\n", out).strip()


def strip_accents(text: str) -> str:
    """`text` decomposed (NFKD) without its combining marks: "é" → "e"."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFKD", text).translate(_combining_marks())


@cache
def _combining_marks() -> dict[int, None]:
    """A `str.translate` table deleting every combining character (built once, on first use)."""
    return dict.fromkeys(c for c in range(sys.maxunicode + 1) if unicodedata.combining(chr(c)))


def normalize_text(text: object) -> str:
    """Model-ready text: cleaned, lower case, accents removed, on one line."""
    return _normalize_clean(clean_text(text))


def _normalize_clean(text: str) -> str:
    return strip_accents(text).lower().replace("\n", " ")


def passage(title: str, description: str, *, limit: int = PASSAGE_CHARS) -> str:
    """A product's readable title and description on one line, cut to `limit` characters (far past what
    a sentence encoder reads: tokenizing a 20,000-character description would only be thrown away)."""
    text = f"{title}. {description}" if title and description else title or description
    return text.replace("\n", " ")[:limit]


def _normalize_pairs(pairs: list[tuple[object, object]]) -> list[tuple[str, str, str]]:
    out = []
    for title, description in pairs:
        clean_title, clean_description = clean_text(title), clean_text(description)
        t = _normalize_clean(clean_title)
        out.append(
            (t, f"{t} {_normalize_clean(clean_description)}".strip(), passage(clean_title, clean_description))
        )
    return out


def model_columns(titles: Sequence[object], descriptions: Sequence[object]) -> dict[str, list[str]]:
    """`model_text` for a few products without a DataFrame (the API's per-request path)."""
    rows = _normalize_pairs(list(zip(titles, descriptions, strict=True)))
    return {name: [row[i] for row in rows] for i, name in enumerate(COLUMNS)}


def model_text(products: pd.DataFrame, *, workers: int = 1, chunk: int = 5000) -> pd.DataFrame:
    """Model inputs from raw `designation` + `description`: `title` and `text` (title + description),
    both normalized, and `passage` (readable). Large tables are cleaned across `workers` processes (same
    result)."""
    pairs = list(zip(products["designation"].tolist(), products["description"].tolist(), strict=True))
    if workers <= 1 or len(pairs) < 2 * chunk:
        rows = _normalize_pairs(pairs)
    else:
        parts = [pairs[i : i + chunk] for i in range(0, len(pairs), chunk)]
        with ProcessPoolExecutor(workers) as pool:
            rows = [row for part in pool.map(_normalize_pairs, parts) for row in part]
    return pd.DataFrame(rows, columns=list(COLUMNS), index=products.index, dtype=object)
