"""The review loop's edge: a decision on a queue item becomes the right correction; the export writes
the file and the photos it needs; an import is all or nothing."""

from pathlib import Path

import pytest

from core.config import Settings
from core.errors import DataFormatError
from core.review.inbox import decide, export, import_file, open_store, since
from core.storage.corrections import ConflictingCorrectionError
from core.storage.corrections_file import read_corrections_file


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(root=tmp_path)


def _served(settings: Settings, photo: bool = True) -> dict:
    if photo:
        settings.review_inputs_dir.mkdir(parents=True, exist_ok=True)
        (settings.review_inputs_dir / "abc.jpg").write_bytes(b"\xff\xd8 a photo")
    return {
        "source": "production",
        "queue": "low_confidence",
        "request_id": "req-1",
        "item": 0,
        "current": 10,
        "model_version": 2,
        "designation": "Manette",
        "description": "sans fil",
        "image_path": str(settings.review_inputs_dir / "abc.jpg") if photo else "",
    }


def test_decisions_become_corrections(settings: Settings) -> None:
    training = {
        "source": "training",
        "queue": "label_issue",
        "row_id": 4,
        "current": 10,
        "productid": 77,
        "imageid": 78,
        "designation": "Livre",
    }
    relabel = decide(training, 2705, "ana", "used book")
    assert (relabel.product_key, relabel.verdict, relabel.old_code, relabel.new_code) == (
        "train:4",
        "relabel",
        10,
        2705,
    )
    assert decide(training, 10, "ana").verdict == "confirm"
    assert decide(training, None, "ana").verdict == "unclear"
    served = decide(_served(settings), 40, "ana")
    assert (served.product_key, served.image_file, served.description) == ("req-1:0", "abc.jpg", "sans fil")


def test_export_writes_the_file_and_the_photos(settings: Settings) -> None:
    store = open_store(settings)
    store.add(decide(_served(settings), 40, "ana"))
    store.add(decide({"source": "training", "queue": "label_issue", "row_id": 4, "current": 10}, 2705, "bo"))
    done = export(settings, store)
    assert (done.rows, done.photos, done.photos_missing) == (2, 1, 0)
    frame = read_corrections_file(settings.corrections_file)
    assert frame["image_file"].tolist() == ["images/abc.jpg", ""]
    assert (settings.corrections_dir / "images" / "abc.jpg").read_bytes() == b"\xff\xd8 a photo"
    store.undo(int(store.table()["id"].iloc[0]), by="ana")  # the served product's correction withdrawn
    done = export(settings, store)
    assert done.rows == 1 and not (settings.corrections_dir / "images" / "abc.jpg").exists()
    assert since(store, None) == 1 and since(store, "2100-01-01T00:00:00+00:00") == 0


def test_import_is_all_or_nothing(settings: Settings, tmp_path: Path) -> None:
    store = open_store(settings)
    store.add(decide({"source": "training", "queue": "label_issue", "row_id": 4, "current": 10}, 2705, "bo"))
    file = tmp_path / "theirs.csv"
    file.write_text(
        "product_key,source,verdict,old_code,new_code,reviewer,row_id\n"
        "train:1,training,relabel,10,40,cy,1\n"
        "train:4,training,relabel,10,40,cy,4\n",  # conflicts with bo's correction
        encoding="utf-8",
    )
    with pytest.raises(ConflictingCorrectionError):
        import_file(store, file)
    assert store.reviewed_keys() == {"train:4"}
    file.write_text(
        "product_key,source,verdict,old_code,new_code,reviewer,row_id\ntrain:1,training,relabel,10,x,cy,1\n"
    )
    with pytest.raises(DataFormatError):
        import_file(store, file)
    file.write_text(
        "product_key,source,verdict,old_code,new_code,reviewer,row_id\ntrain:1,training,relabel,10,40,cy,1\n"
    )
    assert import_file(store, file) == 1
    assert store.reviewed_keys() == {"train:1", "train:4"}
