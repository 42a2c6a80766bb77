"""The content-addressed feature cache: encode each picture once, reuse it across runs and paths."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from core.data.demo.product_images import product_jpeg
from core.features.cache import ImageFeatureCache
from core.features.image import ColourEdgeEncoder, get_encoder, load_small


@dataclass(frozen=True)
class CountingEncoder(ColourEdgeEncoder):
    """The colour/edge encoder, counting calls (in-process only: it is not registered)."""

    calls: list[int] | None = None

    def encode(self, image):  # type: ignore[no-untyped-def]
        assert self.calls is not None
        self.calls.append(1)
        return super().encode(image)


@dataclass(frozen=True)
class NextVersionEncoder(ColourEdgeEncoder):
    version: str = "2"


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "images"
    folder.mkdir()
    paths = []
    for i, code in enumerate([10, 2583, 1280, 40, 1560, 2705]):
        path = folder / f"image_{i}.jpg"
        path.write_bytes(product_jpeg(code, np.random.default_rng(i)))
        paths.append(path)
    return paths


def test_second_run_is_all_hits_with_identical_features(tmp_path: Path, images: list[Path]) -> None:
    first = ImageFeatureCache(tmp_path / "cache", get_encoder("colour_edge"))
    matrix, ok = first.features(images)
    assert (first.last_hits, first.last_misses) == (0, len(images))
    assert matrix.shape == (len(images), first.encoder.n_features) and matrix.dtype == np.float32
    assert ok.all()
    expected = first.encoder.encode(load_small(images[2]))
    assert np.array_equal(matrix[2], expected)

    again = ImageFeatureCache(tmp_path / "cache", get_encoder("colour_edge"))
    matrix2, ok2 = again.features(images)
    assert (again.last_hits, again.last_misses) == (len(images), 0)
    assert np.array_equal(matrix, matrix2) and ok2.all()
    assert again.last_stats.summary() == "6 images: 6 cached, 0 encoded, 0 unreadable"


def test_two_encodes_at_once_keep_each_others_features(tmp_path: Path, images: list[Path]) -> None:
    """Two processes' caches opened on the same store before either saves (a training on the worker
    and a CLI step): the second save merges what the first wrote, it never overwrites it."""
    first = ImageFeatureCache(tmp_path / "cache", get_encoder("colour_edge"))
    second = ImageFeatureCache(tmp_path / "cache", get_encoder("colour_edge"))
    assert len(first) == len(second) == 0  # both read the empty store
    first_matrix, _ = first.features(images[:3])
    second_matrix, _ = second.features(images[3:])
    assert second.last_misses == 3

    later = ImageFeatureCache(tmp_path / "cache", get_encoder("colour_edge"))
    matrix, ok = later.features(images)
    assert (later.last_hits, later.last_misses) == (len(images), 0) and ok.all()
    assert np.array_equal(matrix, np.vstack([first_matrix, second_matrix]))
    assert sorted(p.name for p in (tmp_path / "cache" / "colour_edge-v1").iterdir()) == [
        "features.npy",
        "keys.npy",
    ]


def test_store_lives_under_encoder_name_and_version(tmp_path: Path, images: list[Path]) -> None:
    ImageFeatureCache(tmp_path / "cache", get_encoder("colour_edge")).features(images[:2])
    store = tmp_path / "cache" / "colour_edge-v1"
    assert sorted(p.name for p in store.iterdir()) == ["features.npy", "keys.npy"]  # no temp files left


def test_identical_content_at_two_paths_is_encoded_once(tmp_path: Path, images: list[Path]) -> None:
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(images[0].read_bytes())
    calls: list[int] = []
    cache = ImageFeatureCache(tmp_path / "cache", CountingEncoder(calls=calls))
    matrix, ok = cache.features([images[0], copy, images[1]])
    assert len(calls) == 2 and cache.last_misses == 2
    assert ok.all() and np.array_equal(matrix[0], matrix[1])


def test_bad_images_give_ok_false_and_zero_rows(tmp_path: Path, images: list[Path]) -> None:
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8 definitely not a jpeg")
    missing = tmp_path / "missing.jpg"
    cache = ImageFeatureCache(tmp_path / "cache", get_encoder("colour_edge"))
    progress: list[tuple[str, int, int]] = []
    matrix, ok = cache.features(
        [images[0], corrupt, missing, images[1]], progress=lambda *a: progress.append(a)
    )
    assert ok.tolist() == [True, False, False, True]
    assert not matrix[1].any() and not matrix[2].any()
    assert matrix[0].any() and matrix[3].any()
    assert cache.last_stats.failed == 2
    assert progress[-1] == ("image features", 4, 4)
    # Failures are not cached: a later call tries them again and still serves the good ones.
    again = ImageFeatureCache(tmp_path / "cache", get_encoder("colour_edge"))
    _, ok2 = again.features([images[0], corrupt])
    assert ok2.tolist() == [True, False] and again.last_hits == 1


def test_worker_processes_give_the_same_result(tmp_path: Path, images: list[Path]) -> None:
    one, _ = ImageFeatureCache(tmp_path / "one", get_encoder("colour_edge")).features(images, workers=1)
    two, ok = ImageFeatureCache(tmp_path / "two", get_encoder("colour_edge")).features(images, workers=2)
    assert ok.all() and np.array_equal(one, two)


def test_new_encoder_version_uses_a_separate_store(tmp_path: Path, images: list[Path]) -> None:
    ImageFeatureCache(tmp_path / "cache", get_encoder("colour_edge")).features(images)
    bumped = ImageFeatureCache(tmp_path / "cache", NextVersionEncoder())
    _, ok = bumped.features(images)
    assert ok.all() and (bumped.last_hits, bumped.last_misses) == (0, len(images))
    assert (tmp_path / "cache" / "colour_edge-v2" / "keys.npy").exists()
    assert (tmp_path / "cache" / "colour_edge-v1" / "keys.npy").exists()


def test_new_images_are_appended_to_the_store(tmp_path: Path, images: list[Path]) -> None:
    ImageFeatureCache(tmp_path / "cache", get_encoder("colour_edge")).features(images[:3])
    cache = ImageFeatureCache(tmp_path / "cache", get_encoder("colour_edge"))
    cache.features(images)
    assert (cache.last_hits, cache.last_misses) == (3, 3)
    assert len(ImageFeatureCache(tmp_path / "cache", get_encoder("colour_edge"))) == len(images)


@dataclass(frozen=True)
class BatchedEncoder(ColourEdgeEncoder):
    """The colour/edge features computed through the batched path a network takes; `fail_after`
    pictures in, it raises (an interrupted encode)."""

    batched: bool = True
    seen: list[int] | None = None
    fail_after: int | None = None

    def encode_batch(self, images):  # type: ignore[no-untyped-def]
        assert self.seen is not None
        if self.fail_after is not None and len(self.seen) + len(images) > self.fail_after:
            raise KeyboardInterrupt
        self.seen.extend([1] * len(images))
        return super().encode_batch(images)


def test_batched_path_gives_the_same_features(tmp_path: Path, images: list[Path]) -> None:
    one, _ = ImageFeatureCache(tmp_path / "one", get_encoder("colour_edge")).features(images)
    seen: list[int] = []
    batched, ok = ImageFeatureCache(tmp_path / "two", BatchedEncoder(seen=seen)).features(images, workers=2)
    assert ok.all() and np.array_equal(one, batched) and len(seen) == len(images)


def test_an_interrupted_encode_resumes_after_the_chunks_it_finished(
    tmp_path: Path, images: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.features.cache as cache_module

    monkeypatch.setattr(cache_module, "_BATCH", 1)
    monkeypatch.setattr(cache_module, "_FLUSH", 2)
    seen: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        ImageFeatureCache(tmp_path / "cache", BatchedEncoder(seen=seen, fail_after=5)).features(images)
    store = tmp_path / "cache" / "colour_edge-v1"
    assert len(list(store.glob("part-*.npz"))) == 2  # four pictures written in two chunks, the fifth lost

    again = ImageFeatureCache(tmp_path / "cache", BatchedEncoder(seen=[]))
    matrix, ok = again.features(images)
    assert (again.last_hits, again.last_misses) == (4, 2)  # resumed: only the rest is encoded
    assert ok.all()
    expected, _ = ImageFeatureCache(tmp_path / "fresh", get_encoder("colour_edge")).features(images)
    assert np.array_equal(matrix, expected)
    assert sorted(p.name for p in store.iterdir()) == ["features.npy", "keys.npy"]  # chunks merged


def test_a_damaged_chunk_is_re_encoded(
    tmp_path: Path, images: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.features.cache as cache_module

    monkeypatch.setattr(cache_module, "_BATCH", 1)
    monkeypatch.setattr(cache_module, "_FLUSH", 3)
    with pytest.raises(KeyboardInterrupt):
        ImageFeatureCache(tmp_path / "cache", BatchedEncoder(seen=[], fail_after=4)).features(images)
    part = next((tmp_path / "cache" / "colour_edge-v1").glob("part-*.npz"))
    part.write_bytes(b"truncated")
    again = ImageFeatureCache(tmp_path / "cache", BatchedEncoder(seen=[]))
    _, ok = again.features(images)
    assert ok.all() and again.last_misses == len(images)
