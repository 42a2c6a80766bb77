"""Traffic shifts are pure and do what they say: reproducible, each share respected, products not
repeated before all were sent, darker images really darker, bad shares refused."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from core.monitoring.simulate import (
    NEW_TITLES,
    Shift,
    describe_shift,
    read_image,
    shift_products,
    to_product,
)


@pytest.fixture
def products(tmp_path: Path) -> pd.DataFrame:
    picture = tmp_path / "p.jpg"
    Image.new("RGB", (64, 64), (200, 180, 160)).save(picture)
    n = 400
    return pd.DataFrame(
        {
            "designation": [f"produit {i}" for i in range(n)],
            "description": ["une description"] * n,
            "image_path": [str(picture)] * n,
        },
        index=pd.RangeIndex(n),
    )


def test_no_shift_sends_each_product_once_before_repeating(products: pd.DataFrame) -> None:
    sent = shift_products(products, Shift(), n=len(products), seed=1)
    assert sorted(sent["designation"]) == sorted(products["designation"])
    more = shift_products(products, Shift(), n=len(products) + 10, seed=1)
    assert more["designation"].value_counts().max() == 2
    assert not sent["darker"].any()


def test_same_seed_same_traffic(products: pd.DataFrame) -> None:
    shift = Shift(new_vocabulary=0.3, empty_description=0.5, darker=0.2)
    first, again = (shift_products(products, shift, n=300, seed=7) for _ in range(2))
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(shift_products(products, shift, n=300, seed=8))


def test_each_share_is_respected(products: pd.DataFrame) -> None:
    shift = Shift(new_vocabulary=0.4, empty_description=0.7, darker=0.25)
    sent = shift_products(products, shift, n=2000, seed=0)
    new_titles = sent["designation"].map(lambda t: not t.startswith("produit"))
    assert new_titles.mean() == pytest.approx(0.4, abs=0.04)
    stems = {t.split(" {n}")[0].split(" ")[0] for t in NEW_TITLES}
    assert set(sent.loc[new_titles, "designation"].str.split(" ").str[0]) <= stems
    assert sent["description"].eq("").mean() == pytest.approx(0.7, abs=0.04)
    assert sent["darker"].mean() == pytest.approx(0.25, abs=0.04)


def test_unfamiliar_photos_are_scenes_the_same_for_the_same_seed(products: pd.DataFrame) -> None:
    shift = Shift(unfamiliar_photos=0.3)
    sent = shift_products(products, shift, n=1000, seed=0)
    assert (sent["scene"] >= 0).mean() == pytest.approx(0.3, abs=0.04)
    rows = list(sent.itertuples(index=False))
    swapped = next(r for r in rows if r.scene >= 0)
    kept = next(r for r in rows if r.scene < 0)
    photo = to_product(swapped, shift).image
    assert photo is not None and photo != Path(swapped.image_path).read_bytes()
    assert photo == to_product(swapped, shift).image  # the same scene for the same replay
    assert to_product(kept, shift).image == Path(kept.image_path).read_bytes()
    assert to_product(swapped, shift, images=False).image is None
    without = swapped._replace(image_path="")  # a product without a photo gets none
    assert to_product(without, shift).image is None
    assert "30% photos swapped for natural scenes" in describe_shift(shift)


def test_class_mix_draws_from_the_named_classes(products: pd.DataFrame) -> None:
    labels = pd.Series(np.where(products.index % 10 == 0, 2583, 10), index=products.index)
    sent = shift_products(products, Shift(class_mix=0.6, classes=(2583,)), n=1000, seed=0, labels=labels)
    ids = sent["designation"].str.split(" ").str[1].astype(int)
    share = (ids % 10 == 0).mean()  # 10 % by nature, plus 60 % drawn from class 2583
    assert share == pytest.approx(0.1 + 0.6 * 0.9, abs=0.05)


def test_darker_images_are_darker(products: pd.DataFrame) -> None:
    path = products["image_path"].iloc[0]
    original = np.asarray(Image.open(io.BytesIO(read_image(path, False, 0.45) or b""))).mean()
    dark = np.asarray(Image.open(io.BytesIO(read_image(path, True, 0.45) or b""))).mean()
    assert dark == pytest.approx(original * 0.45, rel=0.05)
    assert read_image("", True, 0.45) is None


@pytest.mark.parametrize(
    "bad", [{"darker": 1.5}, {"class_mix": -0.1}, {"darker_factor": 0.0}, {"unfamiliar_photos": 2.0}]
)
def test_bad_shares_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"between 0 and 1|darker_factor"):
        Shift(**bad)  # type: ignore[arg-type]


def test_describe_shift() -> None:
    assert describe_shift(Shift()) == "no shift"
    text = describe_shift(Shift(new_vocabulary=0.5, darker=0.8))
    assert "50% new-vocabulary titles" in text and "80% images darkened" in text
