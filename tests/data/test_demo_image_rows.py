"""Demo data with pictures for only some products: the rest have no file and ingest keeps them."""

from pathlib import Path

import pytest

from core.data.challenge import IMAGE_DIRS
from core.data.demo.generator import DemoSpec, write_demo
from core.data.ingest import ingest


def test_image_rows_limits_pictures_and_ingest_keeps_every_row(tmp_path: Path) -> None:
    spec = DemoSpec(rows=60, seed=3, test_rows=12, image_rows=10)
    write_demo(tmp_path / "raw", spec)
    train_images = list((tmp_path / "raw" / IMAGE_DIRS["train"]).glob("*.jpg"))
    test_images = list((tmp_path / "raw" / IMAGE_DIRS["test"]).glob("*.jpg"))
    assert len(train_images) == 10
    assert len(test_images) == round(10 * 12 / 60) == 2

    result = ingest(tmp_path / "raw", tmp_path / "interim", image_check="exists")
    assert len(result.tables["train"]) == 60 and len(result.tables["test"]) == 12
    missing = {p.split: p for p in result.report.problems if p.code == "missing_image"}
    assert missing["train"].count == 50 and missing["test"].count == 10
    assert missing["train"].severity == "warning"


def test_pictures_do_not_depend_on_how_many_rows_get_one(tmp_path: Path) -> None:
    write_demo(tmp_path / "some", DemoSpec(rows=40, seed=5, image_rows=4))
    write_demo(tmp_path / "all", DemoSpec(rows=40, seed=5))
    folder = IMAGE_DIRS["train"]
    for path in (tmp_path / "some" / folder).glob("*.jpg"):
        assert path.read_bytes() == (tmp_path / "all" / folder / path.name).read_bytes()


def test_negative_image_rows_is_refused() -> None:
    with pytest.raises(ValueError, match="image_rows"):
        DemoSpec(rows=40, image_rows=-1)
