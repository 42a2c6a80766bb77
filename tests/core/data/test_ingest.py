"""Ingestion of whole data folders: the real layout ingests without edits; each bad input gives the
documented error or quarantine, and nothing is lost or half-written."""

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from core.data.ingest import OUTPUTS, ingest, load_report, load_table
from core.errors import DataFormatError, DataNotFoundError
from tests.conftest import DEMO_ROWS


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, index_col=0, dtype=str, keep_default_na=False, na_values=[""])


def _images(folder: Path, split: str = "train") -> list[Path]:
    return sorted((folder / "images" / f"image_{split}").iterdir())


def test_download_layout_ingests_without_edits(demo_dir: Path, tmp_path: Path) -> None:
    """Real names, unnamed id column, HTML, empty descriptions, and some images missing."""
    header = (demo_dir / "X_train_update.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == ",designation,description,productid,imageid"
    removed = _images(demo_dir)[:5]
    for path in removed:
        path.unlink()

    result = ingest(demo_dir, tmp_path / "interim", image_check="decode", workers=2)

    train = load_table(tmp_path / "interim", "train")
    test = load_table(tmp_path / "interim", "test")
    assert len(train) == DEMO_ROWS and len(test) == len(_read(demo_dir / "X_test_update.csv"))
    assert train["id"].tolist() == list(range(DEMO_ROWS))
    assert test["id"].min() == DEMO_ROWS  # test ids continue after train ids
    assert train["description"].isna().mean() > 0.2
    assert train["description"].str.contains("<", regex=False).any()
    assert (~train["has_image"]).sum() == 5
    report = result.report
    assert report.status == "warnings"
    missing = {p.code: p for p in report.problems}["missing_image"]
    names = {Path(p).name for p in train.loc[~train["has_image"], "image_path"]}
    assert names == {p.name for p in removed} and missing.count == 5
    assert set(OUTPUTS) == set(result.outputs)
    assert load_report(tmp_path / "interim") == report
    assert json.loads((tmp_path / "interim" / "validation_report.json").read_text())["status"] == "warnings"


def test_renamed_files_ingest_the_same(demo_dir: Path, tmp_path: Path) -> None:
    for old, new in (
        ("X_train_update.csv", "X_train.csv"),
        ("Y_train_CVw08PX.csv", "Y_train.csv"),
        ("X_test_update.csv", "X_test.csv"),
    ):
        (demo_dir / old).rename(demo_dir / new)
    result = ingest(demo_dir, tmp_path / "out", image_check="exists")
    assert result.report.naming == "renamed"
    assert result.report.status == "passed"
    assert len(result.tables["train"]) == DEMO_ROWS


def test_row_problems_are_quarantined_and_every_row_accounted_for(demo_dir: Path, tmp_path: Path) -> None:
    x, y = _read(demo_dir / "X_train_update.csv"), _read(demo_dir / "Y_train_CVw08PX.csv")
    x.loc["3", "designation"] = " "
    x.loc["4", "productid"] = "12ab"
    y.loc["5", "prdtypecode"] = "1234"
    x.to_csv(demo_dir / "X_train_update.csv")
    y.to_csv(demo_dir / "Y_train_CVw08PX.csv")
    lines = (demo_dir / "X_train_update.csv").read_text(encoding="utf-8").split("\n")
    lines.insert(3, "900000,an,unquoted,comma,line,1,2")
    (demo_dir / "X_train_update.csv").write_text("\n".join(lines), encoding="utf-8")

    result = ingest(demo_dir, tmp_path / "out", image_check="exists")

    quarantine = pd.read_csv(tmp_path / "out" / "quarantine.csv", dtype=str)
    reasons = dict(zip(quarantine["id"], quarantine["reasons"], strict=True))
    assert reasons == {
        "3": "empty_title",
        "4": "invalid_productid",
        "5": "unknown_label",
        "900000": "malformed_line",
    }
    stats = result.report.stats["train"]
    assert stats["rows_read"] == DEMO_ROWS + 1
    assert stats["rows_kept"] + stats["rows_quarantined"] == stats["rows_read"]
    assert not set(result.tables["train"]["id"]) & {3, 4, 5}
    assert result.report.status == "quarantined"
    assert "| error | train | malformed_line" in (tmp_path / "out" / "validation_report.md").read_text()


def test_corrupt_and_odd_images_are_reported_rows_kept(demo_dir: Path, tmp_path: Path) -> None:
    first, second, third = _images(demo_dir)[:3]
    first.write_bytes(first.read_bytes()[:1500])  # truncated JPEG
    second.write_bytes(b"this is not an image")
    from PIL import Image

    Image.new("RGB", (320, 240), "white").save(third, format="JPEG")
    result = ingest(demo_dir, tmp_path / "out", image_check="decode")
    by_code = {p.code: p.count for p in result.report.problems}
    assert by_code == {"corrupt_image": 2, "unexpected_image_size": 1}
    train = result.tables["train"]
    assert len(train) == DEMO_ROWS
    assert set(train.loc[train["image_status"] == "corrupt", "image_path"].map(lambda p: Path(p).name)) == {
        first.name,
        second.name,
    }


def _snapshot(folder: Path) -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


@pytest.mark.parametrize(
    ("breakage", "problem"),
    [
        ("drop_label_rows", "misaligned_ids"),
        ("drop_column", "missing_column"),
        ("semicolons", "delimiter"),
        ("latin1", "encoding"),
        ("empty_labels", "empty_file"),
    ],
)
def test_fatal_problems_stop_and_leave_previous_outputs_untouched(
    demo_dir: Path, tmp_path: Path, breakage: str, problem: str
) -> None:
    out = tmp_path / "out"
    ingest(demo_dir, out, image_check="none")
    before = _snapshot(out)
    x_path, y_path = demo_dir / "X_train_update.csv", demo_dir / "Y_train_CVw08PX.csv"
    if breakage == "drop_label_rows":
        _read(y_path).iloc[:-3].to_csv(y_path)
    elif breakage == "drop_column":
        _read(x_path).drop(columns=["imageid"]).to_csv(x_path)
    elif breakage == "semicolons":
        _read(x_path).to_csv(x_path, sep=";")
    elif breakage == "latin1":
        text = x_path.read_text(encoding="utf-8")
        x_path.write_bytes(
            text.replace("\u2019", "'").encode("latin-1", errors="replace") + "é".encode("latin-1")
        )
    elif breakage == "empty_labels":
        y_path.write_text("")

    with pytest.raises(DataFormatError) as info:
        ingest(demo_dir, out, image_check="none")
    assert info.value.problem == problem
    assert _snapshot(out) == before  # nothing rewritten, nothing half-written
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_missing_files_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="demo-data"):
        ingest(tmp_path, tmp_path / "out")


def test_without_test_file_only_train_is_written_and_a_stale_test_table_removed(
    demo_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    ingest(demo_dir, out, image_check="none")
    assert (out / "test.parquet").exists()
    os.remove(demo_dir / "X_test_update.csv")
    result = ingest(demo_dir, out, image_check="none")
    assert not (out / "test.parquet").exists()
    assert any("X_test" in n for n in result.report.notes)


def test_parallel_and_serial_image_checks_agree(demo_dir: Path, tmp_path: Path) -> None:
    for path in _images(demo_dir)[:4]:
        path.write_bytes(b"broken")
    serial = ingest(demo_dir, tmp_path / "a", image_check="decode", workers=1).tables["train"]
    parallel = ingest(demo_dir, tmp_path / "b", image_check="decode", workers=2).tables["train"]
    assert serial["image_status"].tolist() == parallel["image_status"].tolist()
