"""Batch scoring in one process: the download's CSV as it is (quoted new lines, an unnamed id column),
Parquet folders, answers equal to the classifier's own, the same whatever the chunk size; bad lines and
products without anything to read reported, never dropped; a failed run leaves the output as it was."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.config import Settings
from core.errors import DataFormatError, DataNotFoundError
from core.models.classifier import ProductClassifier
from core.pipeline.catalogue import BAD_IDS, BAD_PHOTO, NO_INPUT, NO_PHOTO_FILE, report_path, score_file
from core.tracking import store


@pytest.fixture
def champion(trained_project: Path) -> ProductClassifier:
    return store.load_classifier(Settings(root=trained_project), version=1)


def _x_test(root: Path) -> pd.DataFrame:
    return pd.read_csv(next((root / "data" / "raw").glob("X_test*.csv")), index_col=0)


def _images(root: Path) -> Path:
    return root / "data" / "raw" / "images" / "image_test"


def test_the_download_csv_scores_as_the_classifier_answers(
    trained_project: Path, champion: ProductClassifier, tmp_path: Path
) -> None:
    products = _x_test(trained_project)
    products.loc[products.index[0], "description"] = 'Une ligne,\navec "guillemets"\net des retours'
    source = tmp_path / "X_test.csv"
    products.to_csv(source)
    output = tmp_path / "answers.parquet"
    report = score_file(
        champion,
        1,
        source,
        output,
        Settings(root=trained_project, batch_chunk_rows=40),
        images_dir=_images(trained_project),
    )

    answers = pd.read_parquet(output)
    assert answers["id"].astype(int).tolist() == products.index.tolist()  # every row, in order
    assert {"productid", "imageid", "prdtypecode", "category", "confidence", "problem"} <= set(
        answers.columns
    )
    assert "designation" not in answers and "description" not in answers
    paths = [
        str(_images(trained_project) / f"image_{i}_product_{p}.jpg")
        for i, p in zip(products["imageid"], products["productid"], strict=True)
    ]
    expected = champion.predict(products.fillna({"description": ""}), images=paths)
    assert answers["prdtypecode"].tolist() == expected["prdtypecode"].tolist()
    np.testing.assert_allclose(answers["confidence"], expected["confidence"], rtol=1e-6)
    assert report.rows_read == report.rows_written == report.answered == len(products)
    assert report.chunks == -(-len(products) // 40) and report.problems == {}
    saved = json.loads(report_path(output).read_text())
    assert saved["rows_written"] == len(products) and saved["cluster"] is None

    again = score_file(
        champion,
        1,
        source,
        tmp_path / "big-chunks.parquet",
        Settings(root=trained_project, batch_chunk_rows=1000),
        images_dir=_images(trained_project),
    )
    assert again.chunks == 1
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "big-chunks.parquet"), answers)


def test_bad_lines_and_empty_products_are_reported_not_dropped(
    trained_project: Path, champion: ProductClassifier, tmp_path: Path
) -> None:
    products = _x_test(trained_project).head(30)
    products.loc[products.index[1], "designation"] = ""  # no title, a photo: answered from the photo
    products.loc[products.index[2], ["designation", "productid"]] = ["", 1]  # nothing to read at all
    products.loc[products.index[3], "productid"] = 2  # its photo file is not there
    products = products.astype({"productid": "int64", "imageid": str})
    products.loc[products.index[4], "imageid"] = "x12"  # not an id: no photo, said so
    source = tmp_path / "catalogue.csv"
    text = products.to_csv()
    lines = text.splitlines()
    lines.insert(5, "999,too,many,fields,in,this,line")
    source.write_text("\n".join(lines) + "\n")
    corrupt = _images(trained_project) / "corrupt"
    corrupt.mkdir(exist_ok=True)
    (corrupt / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with_path = products.head(3).assign(image_path=str(corrupt / "broken.jpg"))
    with_path.to_parquet(tmp_path / "with_path.parquet")

    output = tmp_path / "answers.csv"
    report = score_file(
        champion,
        1,
        source,
        output,
        Settings(root=trained_project, batch_chunk_rows=10),
        images_dir=_images(trained_project),
    )
    answers = pd.read_csv(output, keep_default_na=False)
    assert len(answers) == 30 and report.rows_written == 30
    assert report.unreadable_lines == 1 and "7 fields instead of 5" in report.unreadable_examples[0]
    assert answers.loc[1, "prdtypecode"] != "" and answers.loc[1, "problem"] == ""
    assert answers.loc[2, "prdtypecode"] == "" and answers.loc[2, "problem"] == NO_INPUT
    assert answers.loc[3, "problem"] == NO_PHOTO_FILE and answers.loc[3, "prdtypecode"] != ""
    assert answers.loc[4, "problem"] == BAD_IDS and answers.loc[4, "prdtypecode"] != ""
    assert report.problems == {NO_INPUT: 1, NO_PHOTO_FILE: 1, BAD_IDS: 1}  # nothing to read says so first
    assert report.answered == 29

    folder = score_file(
        champion, 1, tmp_path / "with_path.parquet", tmp_path / "p.parquet", Settings(root=trained_project)
    )
    assert folder.problems == {BAD_PHOTO: 1, NO_INPUT: 2}  # two of them have no title either


def test_a_parquet_folder_is_read_part_after_part(
    trained_project: Path, champion: ProductClassifier, tmp_path: Path
) -> None:
    products = _x_test(trained_project).rename_axis("id").reset_index()
    parts = tmp_path / "parts"
    parts.mkdir()
    for k, at in enumerate(range(0, len(products), 100)):
        products.iloc[at : at + 100].to_parquet(parts / f"part-{k:03d}.parquet")
    report = score_file(
        champion,
        1,
        parts,
        tmp_path / "answers.parquet",
        Settings(root=trained_project, batch_chunk_rows=64),
        images_dir=_images(trained_project),
    )
    answers = pd.read_parquet(tmp_path / "answers.parquet")
    assert answers["id"].tolist() == products["id"].tolist() and report.rows_written == len(products)


def test_bad_input_says_what_to_do_and_the_output_stays_as_it_was(
    trained_project: Path, champion: ProductClassifier, tmp_path: Path
) -> None:
    settings = Settings(root=trained_project, batch_chunk_rows=20)
    output = tmp_path / "answers.parquet"
    output.write_bytes(b"the previous answers")
    with pytest.raises(DataNotFoundError, match="does not exist"):
        score_file(champion, 1, tmp_path / "nope.csv", output, settings)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataFormatError, match="neither CSV nor Parquet"):
        score_file(champion, 1, tmp_path / "notes.txt", output, settings)
    with pytest.raises(DataFormatError, match=r"\.parquet or \.csv"):
        score_file(champion, 1, tmp_path / "notes.txt", tmp_path / "answers.json", settings)

    parts = tmp_path / "parts"  # the second file lacks the title column: found after a chunk was written
    parts.mkdir()
    _x_test(trained_project).head(50).to_csv(parts / "a.csv")
    _x_test(trained_project).head(5).drop(columns="designation").to_csv(parts / "b.csv")
    with pytest.raises(DataFormatError, match="no 'designation' column"):
        score_file(champion, 1, parts, output, settings)
    assert output.read_bytes() == b"the previous answers"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers.parquet", "notes.txt", "parts"]
