"""The shipped vocabulary loads, covers every class and language, and related classes share words."""

import pytest

from core.categories import CODES
from core.data.demo.vocabulary import LANGS, ClassVocabulary, Vocabulary, _check, vocabulary


def test_shipped_vocabulary_covers_every_class_and_language() -> None:
    vocab = vocabulary()
    assert set(vocab.classes) == set(CODES)
    for entry in vocab.classes.values():
        assert all(len(entry.nouns[lang]) >= 5 for lang in LANGS)
    assert {10, 2705, 2403} <= set(vocab.groups["books"])
    assert {40, 2462, 2905} <= set(vocab.groups["video_games"])


def test_templates_with_unknown_placeholders_are_refused() -> None:
    vocab = vocabulary()
    broken = dict(vocab.classes)
    good = broken[10]
    broken[10] = ClassVocabulary(good.nouns, good.attributes, good.brands, ("Un {produit} rare",))
    with pytest.raises(KeyError, match="produit"):
        _check(Vocabulary(broken, vocab.groups, vocab.group_nouns, vocab.generic, vocab.generic_sentences))
