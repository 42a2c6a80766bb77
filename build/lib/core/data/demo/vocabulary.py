"""Class vocabularies of the demo generator, kept as data in `vocabulary.toml` beside this module.

Loaded once, on first use (never at import time), and checked: every one of the 27 codes has words in
French, German and English, and every sentence template uses only `{noun}`, `{brand}` and `{attr}`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Final

from core.categories import CODES

LANGS: Final = ("fr", "de", "en")


@dataclass(frozen=True)
class ClassVocabulary:
    """Words of one product type code."""

    nouns: Mapping[str, tuple[str, ...]]  # per language: product nouns, key terms, short phrases
    attributes: tuple[str, ...]  # French qualifiers: materials, formats, sizes, states
    brands: tuple[str, ...]  # brands, series, authors or publishers
    sentences: tuple[str, ...]  # French description templates with {noun} {brand} {attr}


@dataclass(frozen=True)
class Vocabulary:
    classes: Mapping[int, ClassVocabulary]
    groups: Mapping[str, tuple[int, ...]]  # related classes that share words
    group_nouns: Mapping[str, Mapping[str, tuple[str, ...]]]
    generic: Mapping[str, tuple[str, ...]]  # marketplace filler words per language
    generic_sentences: Mapping[str, tuple[str, ...]]


def _per_lang(table: Mapping[str, list[str]]) -> dict[str, tuple[str, ...]]:
    return {lang: tuple(table[lang]) for lang in LANGS}


@cache
def vocabulary() -> Vocabulary:
    """The vocabulary shipped with the package (parsed and validated once per process)."""
    raw = tomllib.loads(files("core.data.demo").joinpath("vocabulary.toml").read_text(encoding="utf-8"))
    classes = {
        int(code): ClassVocabulary(
            nouns=_per_lang(entry),
            attributes=tuple(entry["attributes"]),
            brands=tuple(entry["brands"]),
            sentences=tuple(entry["sentences"]),
        )
        for code, entry in raw["classes"].items()
    }
    vocab = Vocabulary(
        classes=classes,
        groups={name: tuple(g["codes"]) for name, g in raw["groups"].items()},
        group_nouns={name: _per_lang(g) for name, g in raw["groups"].items()},
        generic=_per_lang(raw["generic"]),
        generic_sentences=_per_lang(raw["generic_sentences"]),
    )
    _check(vocab)
    return vocab


def _check(vocab: Vocabulary) -> None:
    if set(vocab.classes) != set(CODES):
        raise ValueError(
            f"vocabulary.toml must cover the 27 codes; differs by {set(vocab.classes) ^ set(CODES)}"
        )
    for name, codes in vocab.groups.items():
        if not set(codes) <= set(CODES):
            raise ValueError(f"group {name} has unknown codes {set(codes) - set(CODES)}")
    templates = [s for c in vocab.classes.values() for s in c.sentences]
    templates += [s for lang in LANGS for s in vocab.generic_sentences[lang]]
    for template in templates:
        template.format(noun="", brand="", attr="")  # raises on any other placeholder
    for code, c in vocab.classes.items():
        if not all(c.nouns[lang] for lang in LANGS) or not (c.attributes and c.brands and c.sentences):
            raise ValueError(f"class {code} has an empty word list in vocabulary.toml")
