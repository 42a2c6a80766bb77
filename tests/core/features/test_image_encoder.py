"""Image encoders: the registry, and `open_image` turning bad input into `ImageDecodeError`."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import ImageDecodeError, RakutenError
from core.features.image import (
    ENCODERS,
    N_FEATURES,
    SIDE,
    ColourEdgeEncoder,
    colour_edge_features,
    get_encoder,
    load_small,
    open_image,
)


def _jpeg(colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    img = Image.new("RGB", (120, 90), "white")
    img.paste(colour, (20, 10, 80, 70))
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    return buf.getvalue()


def test_registry_builds_the_colour_edge_encoder() -> None:
    encoder = get_encoder("colour_edge")
    assert isinstance(encoder, ColourEdgeEncoder)
    assert (encoder.name, encoder.version, encoder.n_features) == ("colour_edge", "1", N_FEATURES)
    assert "colour_edge" in ENCODERS


def test_unknown_encoder_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"'resnet'.*colour_edge"):
        get_encoder("resnet")


def test_encoder_matches_colour_edge_features(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(_jpeg())
    img = open_image(tmp_path / "a.jpg")
    vector = get_encoder("colour_edge").encode(img)
    assert vector.dtype == np.float32 and vector.shape == (N_FEATURES,)
    assert np.array_equal(vector, colour_edge_features(load_small(tmp_path / "a.jpg")))


def test_open_image_accepts_bytes_and_paths_alike(tmp_path: Path) -> None:
    data = _jpeg()
    (tmp_path / "a.jpg").write_bytes(data)
    from_bytes, from_path = open_image(data), open_image(str(tmp_path / "a.jpg"))
    assert from_bytes.size == (SIDE, SIDE) and from_bytes.mode == "RGB"
    assert np.array_equal(np.asarray(from_bytes), np.asarray(from_path))
    assert open_image(data, side=32).size == (32, 32)


@pytest.mark.parametrize("data", [b"", b"not an image at all", _jpeg()[:200]], ids=["empty", "text", "cut"])
def test_corrupt_bytes_raise_image_decode_error(data: bytes) -> None:
    with pytest.raises(ImageDecodeError, match="upload") as info:
        open_image(data)
    assert isinstance(info.value, RakutenError)


def test_missing_file_raises_image_decode_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ImageDecodeError, match=r"nope\.jpg"):
        open_image(tmp_path / "nope.jpg")
