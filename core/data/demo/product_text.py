"""Titles and descriptions for demo products, drawn from overlapping class vocabularies.

Difficulty comes from the same places as in the real data: each product mixes words of its own class
with words of related classes and generic marketplace filler (how much is drawn per product, so some
products are easy and some ambiguous); words appear in variant spellings (typos, missing accents,
plurals, glued compounds) that word features miss and character n-grams catch; descriptions are often
empty, otherwise HTML with entities and now and then mojibake.
"""

from __future__ import annotations

import html
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Final

from core.data.demo.vocabulary import ClassVocabulary, vocabulary

LANG_WEIGHTS: Final = (("fr", 0.84), ("de", 0.09), ("en", 0.07))
EMPTY_DESCRIPTION_RATE: Final = 0.35
MOJIBAKE_RATE: Final = 0.03
_ENTITIES: Final = {
    "é": "&eacute;",
    "è": "&egrave;",
    "à": "&agrave;",
    "'": "&#39;",
    "&": "&amp;",
    "ç": "&ccedil;",
}
_ACCENTS: Final = str.maketrans("éèêëàâäîïôöûüùçÉÈÀÇ", "eeeeaaaiioouuucEEAC")


@dataclass(frozen=True)
class TextStyle:
    """Knobs of the text difficulty (defaults calibrated against the data tests)."""

    own_word_alpha: float = 2.0  # per-product share of own-class words ~ Beta(alpha, beta)
    own_word_beta: float = 1.6
    sibling_share: float = 0.55  # of the non-own words, how many come from a related class (vs group/generic)
    variant_rate: float = 0.35  # chance a content word is spelled in a variant form


@dataclass(frozen=True)
class _Pools:
    own: Sequence[str]
    siblings: tuple[int, ...]
    group: Sequence[str]
    generic: Sequence[str]


@cache
def related_classes(code: int) -> tuple[int, ...]:
    out = sorted({c for codes in vocabulary().groups.values() if code in codes for c in codes if c != code})
    return tuple(out)


@cache
def _pools(code: int, lang: str) -> _Pools:
    vocab = vocabulary()
    group = [w for g, codes in vocab.groups.items() if code in codes for w in vocab.group_nouns[g][lang]]
    return _Pools(_nouns(vocab.classes[code], lang), related_classes(code), tuple(group), vocab.generic[lang])


def _nouns(voc: ClassVocabulary, lang: str) -> Sequence[str]:
    return voc.nouns.get(lang) or voc.nouns["fr"]


def _zipf(rng: random.Random, words: Sequence[str]) -> str:
    """Pick with a Zipf-like preference for the first words: a class has common and rare terms."""
    n = len(words)
    i = min(int(n * rng.random() ** 1.6), n - 1)
    return words[i]


def _variant(rng: random.Random, word: str) -> str:
    r = rng.random()
    if r < 0.3:
        return word.translate(_ACCENTS)
    if r < 0.5 and len(word) > 4:  # a typo: drop, double or swap one letter
        i = rng.randrange(1, len(word) - 2)
        kind = rng.random()
        if kind < 0.4:
            return word[:i] + word[i + 1 :]
        if kind < 0.7:
            return word[:i] + word[i] + word[i:]
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if r < 0.65:
        return word + ("s" if not word.endswith("s") else "")
    if r < 0.8:
        return word.replace(" ", rng.choice(("-", "", "_")))
    if r < 0.9:
        return word.upper()
    return word.capitalize() if rng.random() < 0.5 else word.lower()


class TextGenerator:
    """Deterministic text for (class, rng). One instance per generation run."""

    def __init__(self, style: TextStyle | None = None) -> None:
        self.style = style or TextStyle()

    def _word(self, rng: random.Random, code: int, lang: str, own_share: float) -> str:
        pools = _pools(code, lang)
        r = rng.random()
        if r < own_share:
            word = _zipf(rng, pools.own)
        elif pools.siblings and rng.random() < self.style.sibling_share:
            word = _zipf(rng, _pools(rng.choice(pools.siblings), lang).own)
        elif pools.group and rng.random() < 0.7:
            word = rng.choice(pools.group)
        else:
            word = rng.choice(pools.generic)
        return _variant(rng, word) if rng.random() < self.style.variant_rate else word

    def product(self, rng: random.Random, code: int) -> tuple[str, str | None]:
        """(designation, description or None) for one product of class `code`."""
        lang = _pick_lang(rng)
        own = rng.betavariate(self.style.own_word_alpha, self.style.own_word_beta)
        title = self._title(rng, code, lang, own)
        if rng.random() < EMPTY_DESCRIPTION_RATE:
            return title, None
        return title, self._description(rng, code, lang, own)

    def _title(self, rng: random.Random, code: int, lang: str, own: float) -> str:
        voc = vocabulary().classes[code]
        words = [self._word(rng, code, lang, own) for _ in range(rng.choice((1, 2, 2, 3, 3, 4)))]
        parts: list[str] = []
        if rng.random() < 0.45:
            parts.append(_brand(rng, code, own))
        parts += words
        if rng.random() < 0.5:
            parts.append(rng.choice(voc.attributes))
        if rng.random() < 0.35:
            parts.append(rng.choice(vocabulary().generic[lang]))
        if rng.random() < 0.3:
            parts.append(_spec(rng))
        sep = rng.choice((" ", " ", " ", " - ", " / ", ", "))
        title = sep.join(parts)
        if rng.random() < 0.25:
            title = title.title()
        return title[:250]

    def _description(self, rng: random.Random, code: int, lang: str, own: float) -> str:
        voc = vocabulary().classes[code]
        n_class = rng.choice((0, 1, 1, 2, 2, 3))
        n_generic = rng.choice((1, 1, 2, 3))
        sentences = []
        for _ in range(n_class):
            src = code
            if rng.random() > own and related_classes(code):
                src = rng.choice(related_classes(code))
            template = rng.choice(vocabulary().classes[src].sentences)
            sentences.append(self._fill(rng, template, src, lang, own))
        for _ in range(n_generic):
            template = rng.choice(vocabulary().generic_sentences[lang])
            sentences.append(self._fill(rng, template, code, lang, own))
        rng.shuffle(sentences)
        if rng.random() < 0.15:  # long spec sheets: the real data has descriptions of several KB
            sentences += [f"{rng.choice(voc.attributes)} : {_spec(rng)}" for _ in range(rng.randrange(5, 25))]
        return _as_html(rng, sentences)

    def _fill(self, rng: random.Random, template: str, code: int, lang: str, own: float) -> str:
        voc = vocabulary().classes[code]
        return template.format(
            noun=self._word(rng, code, lang, own),
            brand=_brand(rng, code, own),
            attr=rng.choice(voc.attributes),
        )


def _pick_lang(rng: random.Random) -> str:
    r = rng.random()
    for lang, weight in LANG_WEIGHTS:
        if r < weight:
            return lang
        r -= weight
    return "fr"


def _brand(rng: random.Random, code: int, own: float) -> str:
    sib = related_classes(code)
    src = rng.choice(sib) if sib and rng.random() > own else code
    return rng.choice(vocabulary().classes[src].brands)


def _spec(rng: random.Random) -> str:
    kind = rng.randrange(6)
    if kind == 0:
        return f"{rng.randrange(10, 300)} x {rng.randrange(10, 300)} cm"
    if kind == 1:
        return f"N° {rng.randrange(1, 999)}"
    if kind == 2:
        return f"{rng.randrange(1, 28):02d}/{rng.randrange(1, 13):02d}/{rng.randrange(1950, 2020)}"
    if kind == 3:
        return f"Réf. {rng.randrange(10**5, 10**7)}"
    if kind == 4:
        return f"{rng.choice((1, 2, 3, 4, 5, 6, 10, 12))} pcs"
    return f"{rng.randrange(1, 50)}{rng.choice(('kg', 'g', 'L', 'ml', 'W', 'V'))}"


def _as_html(rng: random.Random, sentences: list[str]) -> str:
    """Wrap sentences the way marketplace sellers do, with entities and sometimes mojibake."""
    if rng.random() < MOJIBAKE_RATE:
        sentences = [s.encode("utf-8").decode("latin-1") for s in sentences]
    elif rng.random() < 0.4:
        sentences = ["".join(_ENTITIES.get(ch, ch) for ch in s) for s in sentences]
    else:
        sentences = [html.escape(s, quote=False) for s in sentences]
    style = rng.randrange(5)
    if style == 0:
        return " ".join(sentences)
    if style == 1:
        return "<br />".join(sentences)
    if style == 2:
        return "".join(f"<p>{s}</p>" for s in sentences)
    if style == 3:
        head, *rest = sentences
        items = "".join(f"<li>{s}</li>" for s in rest)
        return f"<b>{head}</b><br /><ul>{items}</ul>" if rest else f"<b>{head}</b>"
    cls = rng.choice(("a-list-item", "product-desc", "Apple-converted-space"))
    return "&nbsp;".join(f'<span class="{cls}">{s}</span>' for s in sentences)
