"""The demo generator: exact download layout, determinism for a seed, all-or-nothing writes."""

import hashlib
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from core.categories import CODES
from core.data.demo.generator import DemoSpec, class_counts, generate_tables, write_demo
from core.errors import RakutenError


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(folder).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def test_layout_names_and_id_conventions(demo_source: Path) -> None:
    assert {p.name for p in demo_source.iterdir()} == {
        "X_train_update.csv",
        "Y_train_CVw08PX.csv",
        "X_test_update.csv",
        "images",
    }
    x_lines = (demo_source / "X_train_update.csv").read_text(encoding="utf-8").splitlines()
    assert x_lines[0] == ",designation,description,productid,imageid"
    assert (demo_source / "Y_train_CVw08PX.csv").read_text().splitlines()[:2][0] == ",prdtypecode"
    x = pd.read_csv(demo_source / "X_train_update.csv", index_col=0)
    t = pd.read_csv(demo_source / "X_test_update.csv", index_col=0)
    assert x.index.tolist() == list(range(len(x)))
    assert t.index.tolist() == list(range(len(x), len(x) + len(t)))
    for split, frame in (("train", x), ("test", t)):
        folder = demo_source / "images" / f"image_{split}"
        expected = {f"image_{i}_product_{p}.jpg" for i, p in zip(frame.imageid, frame.productid, strict=True)}
        assert {p.name for p in folder.iterdir()} == expected
    sample = next((demo_source / "images" / "image_train").iterdir())
    with Image.open(sample) as im:
        assert (im.format, im.size, im.mode) == ("JPEG", (500, 500), "RGB")


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    spec = DemoSpec(rows=120, seed=3)
    write_demo(tmp_path / "a", spec, workers=1)
    write_demo(tmp_path / "b", spec, workers=2)  # worker count must not change the output
    write_demo(tmp_path / "c", DemoSpec(rows=120, seed=4), workers=1)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_text_only_mode_writes_no_images(tmp_path: Path) -> None:
    write_demo(tmp_path, DemoSpec(rows=60, images=False))
    assert not (tmp_path / "images").exists()
    assert (tmp_path / "X_train_update.csv").exists()


@pytest.mark.parametrize("n", [27, 100, 3000, 84916])
def test_class_counts_follow_real_shares_and_sum_exactly(n: int) -> None:
    counts = class_counts(n)
    assert sum(counts.values()) == n
    assert set(counts) == set(CODES)
    assert min(counts.values()) >= 1
    if n == 84916:
        assert counts[2583] == pytest.approx(10209, abs=15)
        assert counts[1180] == pytest.approx(764, abs=10)


def test_refuses_to_overwrite_challenge_files(tmp_path: Path) -> None:
    (tmp_path / "X_train.csv").write_text("my real data")
    with pytest.raises(RakutenError, match="not overwriting"):
        write_demo(tmp_path, DemoSpec(rows=30))
    assert (tmp_path / "X_train.csv").read_text() == "my real data"
    write_demo(tmp_path, DemoSpec(rows=30, images=False), overwrite=True)
    assert (tmp_path / "X_train_update.csv").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".demo-")]


def test_label_noise_flips_about_the_requested_share() -> None:
    tables = generate_tables(DemoSpec(rows=5000, seed=1, label_noise=0.05))
    flipped = (tables.y_train["prdtypecode"].to_numpy() != tables.true_train).mean()
    assert 0.03 < flipped < 0.06  # some flips land on the same class
    clean = generate_tables(DemoSpec(rows=500, seed=1, label_noise=0.0))
    assert (clean.y_train["prdtypecode"].to_numpy() == clean.true_train).all()
