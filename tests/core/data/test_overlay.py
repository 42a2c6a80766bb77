"""Reviewed labels applied over the download at ingestion: relabelled, set aside, added, conflicts
reported — and the raw files never touched; a bad corrections file applies nothing."""

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest

from core.data.ingest import OUTPUTS, ingest, load_report, load_table
from core.data.overlay import LABELLED_BY
from core.errors import DataFormatError
from core.storage.corrections import Correction, CorrectionsStore
from core.storage.corrections_file import to_file_frame, write_corrections_file


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _labels(demo_dir: Path) -> pd.Series:
    return pd.read_csv(demo_dir / "Y_train_CVw08PX.csv", index_col=0)["prdtypecode"]


def _write(tmp_path: Path, batch: list[Correction]) -> Path:
    store = CorrectionsStore.open(f"sqlite:///{tmp_path / 'review.db'}")
    store.add_many(batch)
    return write_corrections_file(to_file_frame(store.table()), tmp_path / "corrections" / "labels.csv")


def test_corrections_overlay_the_download(demo_dir: Path, tmp_path: Path) -> None:
    labels = _labels(demo_dir)
    raw_before = _digest(demo_dir)
    new3 = 2705 if labels[3] != 2705 else 40
    photo = next((demo_dir / "images" / "image_train").iterdir())
    (tmp_path / "corrections" / "images").mkdir(parents=True)
    shutil.copy(photo, tmp_path / "corrections" / "images" / "served.jpg")
    path = _write(
        tmp_path,
        [
            Correction.for_training(3, int(labels[3]), new3, "ana"),
            Correction.for_training(4, int(labels[4]), int(labels[4]), "ana"),
            Correction.for_training(5, int(labels[5]), None, "ana"),
            Correction.for_training(8, int(labels[8]) + 1 if labels[8] != 2905 else 10, 40, "ana"),  # stale
            Correction.for_training(10**6, 10, 40, "ana"),  # no such row
            Correction.for_prediction(
                "req-1",
                0,
                10,
                1280,
                "bo",
                "low_confidence",
                designation="Peluche lapin",
                description="douce",
                image_file="images/served.jpg",
            ),
            Correction.for_prediction("req-2", 0, 10, None, "bo", "low_confidence", designation="???"),
        ],
    )

    result = ingest(demo_dir, tmp_path / "interim", image_check="decode", workers=2, corrections=path)

    train = load_table(tmp_path / "interim").set_index("id")
    assert train.loc[3, "prdtypecode"] == new3 and train.loc[3, LABELLED_BY] == "reviewer"
    assert train.loc[4, LABELLED_BY] == "reviewer"
    assert 5 not in train.index  # set aside …
    quarantine = pd.read_csv(tmp_path / "interim" / OUTPUTS["quarantine"])
    assert "review_excluded" in set(quarantine.loc[quarantine["id"] == 5, "reasons"])  # … not lost
    assert train.loc[8, "prdtypecode"] == labels[8]  # the stale correction is not applied
    added = train[train[LABELLED_BY] == "production"]
    assert len(added) == 1 and added["designation"].iloc[0] == "Peluche lapin"
    assert added["prdtypecode"].iloc[0] == 1280 and bool(added["has_image"].iloc[0])
    test_ids = load_table(tmp_path / "interim", "test")["id"]
    assert added.index[0] > max(test_ids.max(), labels.index.max())  # a fresh id
    fixed = result.report.stats["corrections"]
    assert (
        fixed["relabelled"],
        fixed["confirmed"],
        fixed["excluded"],
        fixed["added"],
        fixed["conflicts"],
    ) == (
        1,
        1,
        1,
        1,
        2,
    )
    assert result.report.stats["data_version"] != result.report.stats["fingerprint"]
    codes = {p.code for p in result.report.problems}
    assert {"review_excluded", "correction_conflict"} <= codes
    markdown = (tmp_path / "interim" / OUTPUTS["report_md"]).read_text(encoding="utf-8")
    assert "2 conflicts not applied" in markdown
    assert "is not in the ingested training table" in markdown
    assert _digest(demo_dir) == raw_before  # the download is never edited


def test_a_bad_corrections_file_applies_nothing(demo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "interim"
    ingest(demo_dir, out, image_check="none")
    before = _digest(out)
    bad = tmp_path / "labels.csv"
    bad.write_text(
        "product_key,source,verdict,old_code,new_code,reviewer,row_id\n"
        "train:1,training,relabel,10,2705,ana,1\n"
        "train:2,training,relabel,10,77,ana,2\n",
        encoding="utf-8",
    )
    with pytest.raises(DataFormatError, match="none was applied"):
        ingest(demo_dir, out, image_check="none", corrections=bad)
    assert _digest(out) == before  # the previous outputs stand
    assert load_report(out) is not None and "corrections" not in load_report(out).stats
