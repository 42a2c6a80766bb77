"""The corrections file: a round trip through the store keeps every field (quotes, newlines, large
ids); a file with any bad row, or one product corrected twice, is refused whole with every bad line named;
a photo path that could leave the corrections folder is such a bad row."""

from pathlib import Path

import pandas as pd
import pytest

from core.errors import DataFormatError
from core.storage.corrections import Correction, CorrectionsStore
from core.storage.corrections_file import (
    corrections_from_file,
    read_corrections_file,
    to_file_frame,
    write_corrections_file,
)


@pytest.fixture
def store(tmp_path: Path) -> CorrectionsStore:
    return CorrectionsStore.open(f"sqlite:///{tmp_path / 'review.db'}")


def test_the_file_round_trips(store: CorrectionsStore, tmp_path: Path) -> None:
    store.add(Correction.for_training(1, 10, 2705, "ana", note='comma, "quotes"\nand a newline'))
    store.add(
        Correction.for_prediction(
            "req-9",
            2,
            10,
            40,
            "ana",
            "views_disagree",
            designation="Manette PS4",
            image_file="images/ab.jpg",
            productid=2**40 + 1,
        )
    )
    path = write_corrections_file(to_file_frame(store.table()), tmp_path / "corrections" / "labels.csv")
    frame = read_corrections_file(path)
    assert frame["product_key"].tolist() == ["train:1", "req-9:2"]
    assert frame["note"].iloc[0] == 'comma, "quotes"\nand a newline'
    assert int(frame["productid"].iloc[1]) == 2**40 + 1  # large ids survive (no float round trip)
    again = CorrectionsStore.open(f"sqlite:///{tmp_path / 'other.db'}")
    again.add_many(corrections_from_file(frame))
    assert again.table()["product_key"].tolist() == ["train:1", "req-9:2"]


def test_a_file_with_bad_rows_is_refused_whole(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(
        "product_key,source,verdict,old_code,new_code,reviewer,row_id,queue\n"
        "train:1,training,relabel,10,2705,ana,1,label_issue\n"
        "train:2,training,relabel,10,9999,ana,2,label_issue\n"
        "train:3,training,maybe,10,40,ana,3,label_issue\n"
        "train:4,training,relabel,10,40,,4,label_issue\n"
        "train:5,training,relabel,10,40,ana,five,label_issue\n",
        encoding="utf-8",
    )
    with pytest.raises(DataFormatError) as caught:
        read_corrections_file(path)
    message = str(caught.value)
    assert "4 unusable row(s), so none was applied" in message
    for expected in ("line 3", "9999", "line 4", "'maybe'", "line 5", "who made it", "line 6", "'five'"):
        assert expected in message
    assert caught.value.problem == "bad_corrections"


def test_a_file_correcting_one_product_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(
        "product_key,source,verdict,old_code,new_code,reviewer,row_id\n"
        "train:1,training,relabel,10,2705,ana,1\n"
        "train:1,training,relabel,10,40,bo,1\n",
        encoding="utf-8",
    )
    with pytest.raises(DataFormatError, match="corrected twice"):
        read_corrections_file(path)
    path.write_text("designation\nx\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="lacks the column"):
        read_corrections_file(path)


@pytest.mark.parametrize(
    "image_file",
    [
        "/etc/passwd",
        "../labels.csv",
        "images/../../secret.jpg",
        "images/./../..",
        "..\\..\\secret.jpg",
        "images\\..\\..\\secret.jpg",
        "\\secret.jpg",
        "C:\\Users\\ana\\secret.jpg",
        "C:secret.jpg",
        "//host/share/secret.jpg",
        "\\\\host\\share\\secret.jpg",
        "images/.. /secret.jpg",
    ],
)
def test_a_photo_path_leaving_the_corrections_folder_is_refused(tmp_path: Path, image_file: str) -> None:
    """The ingest joins `image_file` to `data/corrections/` and reads the photo: a path that is absolute,
    names a drive or share, or climbs out (either separator) would read any file on the machine."""
    path = tmp_path / "labels.csv"
    frame = pd.DataFrame(
        {
            "product_key": ["req-1:0", "req-2:0"],
            "source": "production",
            "verdict": "relabel",
            "old_code": 10,
            "new_code": 40,
            "reviewer": "ana",
            "queue": "views_disagree",
            "request_id": ["req-1", "req-2"],
            "item": 0,
            "designation": "Manette",
            "image_file": ["images/ok.jpg", image_file],
        }
    )
    frame.to_csv(path, index=False)
    with pytest.raises(DataFormatError) as caught:
        read_corrections_file(path)
    message = str(caught.value)
    assert "1 unusable row(s)" in message and "line 3: image_file" in message, message
    assert "not a path inside the corrections folder" in message and caught.value.problem == "bad_corrections"


def test_photo_paths_inside_the_corrections_folder_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    names = ["images/ab.jpg", "ab.jpg", "images/./ab..jpg", ""]
    frame = pd.DataFrame(
        {
            "product_key": [f"req-{i}:0" for i in range(4)],
            "source": "production",
            "verdict": "relabel",
            "new_code": 40,
            "reviewer": "ana",
            "designation": "Manette",
            "image_file": names,
        }
    )
    frame.to_csv(path, index=False)
    assert read_corrections_file(path)["image_file"].tolist() == names
