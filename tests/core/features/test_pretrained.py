"""The pretrained encoder (EfficientNet-Lite0, the `vision` extra): fixed features for a fixed picture,
batches equal to single pictures, and a clear error naming the install command when the extra is absent."""

import importlib.util
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image, ImageDraw

from core.errors import MissingExtraError
from core.features import image as image_module
from core.features.image import AUTO, PRETRAINED, get_encoder, resolve_encoder
from core.features.pretrained import INSTALL, vision_installed
from tests.conftest import require_extra


def _require_vision() -> None:
    require_extra("vision", vision_installed(), INSTALL)


def _picture() -> Image.Image:
    img = Image.new("RGB", (500, 500), "white")
    draw = ImageDraw.Draw(img)
    draw.ellipse((60, 80, 300, 320), fill=(200, 40, 40))
    draw.rectangle((250, 200, 460, 430), fill=(30, 90, 200))
    draw.line((0, 499, 499, 0), fill=(20, 160, 60), width=12)
    return img.resize((224, 224), Image.Resampling.BILINEAR)


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    get_encoder.cache_clear()
    yield
    get_encoder.cache_clear()


def test_golden_features_of_a_fixed_picture() -> None:
    _require_vision()
    encoder = get_encoder(PRETRAINED)
    assert (encoder.name, encoder.n_features, encoder.side, encoder.batched) == (PRETRAINED, 1280, 224, True)
    features = encoder.encode(_picture())
    assert features.dtype == np.float32 and features.shape == (1280,)
    # Values computed once with the packaged ImageNet weights; a change means different features (bump
    # the encoder's version so the cache does not mix them).
    assert float(np.linalg.norm(features)) == pytest.approx(19.80303, rel=1e-3)
    assert int(features.argmax()) == 1248 and float(features.max()) == pytest.approx(3.78024, rel=1e-3)
    assert features[[2, 6, 7]] == pytest.approx([1.88575, 0.14741, 0.11321], rel=1e-3, abs=1e-4)
    assert features[[0, 1, 3]].tolist() == [0.0, 0.0, 0.0]


def test_a_batch_gives_the_features_of_each_picture_alone() -> None:
    _require_vision()
    encoder = get_encoder(PRETRAINED)
    pictures = [_picture(), _picture().rotate(90), _picture().convert("L").convert("RGB")]
    batch = encoder.encode_batch(pictures)
    assert batch.shape == (3, 1280)
    for row, picture in zip(batch, pictures, strict=True):
        assert np.allclose(row, encoder.encode(picture), atol=1e-4)
    assert not np.allclose(batch[0], batch[1])
    assert encoder.encode_batch([]).shape == (0, 1280)


def test_the_network_is_loaded_once_per_process() -> None:
    _require_vision()
    encoder = get_encoder(PRETRAINED)
    assert get_encoder(PRETRAINED) is encoder and encoder.network() is encoder.network()


def test_missing_extra_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, fresh_registry: None
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    with pytest.raises(MissingExtraError, match=r"efficientnet_lite0.*torch.*make install-vision"):
        get_encoder(PRETRAINED)
    assert resolve_encoder(AUTO) == "colour_edge"  # auto falls back to the download-free encoder
    assert get_encoder(AUTO).name == "colour_edge"


def test_auto_picks_the_pretrained_encoder_when_installed(fresh_registry: None) -> None:
    _require_vision()
    assert resolve_encoder(AUTO) == PRETRAINED
    assert resolve_encoder("colour_edge") == "colour_edge"
    assert set(image_module.ENCODERS) == {"colour_edge", PRETRAINED}
