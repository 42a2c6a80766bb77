"""The inference log: nothing lost under concurrent writes, retries while the database is away,
retention, the one reader drift monitoring uses, and what review needs (its columns, kept photos)."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from PIL import Image

from core.config import Settings
from core.storage.inference_log import (
    InferenceLogWriter,
    InferenceRecord,
    find_prediction,
    keep_photo,
    open_engine,
    photo_name,
    prune,
    read_inference_log,
    write,
)


def record(i: int, *, ts: datetime | None = None, image: bool = False) -> InferenceRecord:
    return InferenceRecord(
        ts=ts or datetime.now(UTC),
        request_id=f"req-{i}",
        route="text",
        item=0,
        model_version=1,
        designation=f"Produit {i} " + "x" * (600 if i == 0 else 0),
        description_length=i,
        has_image=image,
        predicted_code=2583,
        confidence=0.5,
        latency_ms=1.0,
        image_width=64 if image else None,
        image_brightness=0.3 if image else None,
    )


def settings_for(tmp_path: Path) -> Settings:
    return Settings(root=tmp_path, inference_log_url=f"sqlite:///{tmp_path / 'log.db'}")


def test_concurrent_records_are_all_written_once(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    engine = open_engine(str(settings.inference_log_url))
    written: list[int] = []
    writer = InferenceLogWriter(engine, batch=50, on_written=written.append).start()
    threads, per_thread = 8, 250

    def produce(t: int) -> None:
        for i in range(per_thread):
            writer.record(record(t * per_thread + i))

    workers = [threading.Thread(target=produce, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    writer.close()
    log = read_inference_log(settings)
    assert len(log) == threads * per_thread == sum(written)
    assert log["request_id"].is_unique
    assert log["designation"].str.len().max() <= 512  # long titles are cut, not refused


def test_records_arriving_one_by_one_within_the_linger_make_one_insert(tmp_path: Path) -> None:
    engine = open_engine(str(settings_for(tmp_path).inference_log_url))
    written: list[int] = []
    writer = InferenceLogWriter(engine, linger_s=2.0, on_written=written.append).start()
    writer.record(record(0))
    for i in range(1, 20):  # a busy service: single requests a few ms apart
        time.sleep(0.005)
        writer.record(record(i))
    started = time.monotonic()
    assert writer.flush(timeout=10)
    assert time.monotonic() - started < 1.0  # a flush ends the linger, it does not wait it out
    assert written == [20]
    writer.close()


def test_two_writers_on_one_sqlite_file_lose_nothing(tmp_path: Path) -> None:
    """What several API worker processes do: one WAL database, several writers."""
    settings = settings_for(tmp_path)
    writers = [
        InferenceLogWriter(open_engine(str(settings.inference_log_url)), batch=20).start() for _ in range(2)
    ]
    for i in range(400):
        writers[i % 2].record(record(i))
    for w in writers:
        w.close()
    assert len(read_inference_log(settings)) == 400


def test_writes_wait_for_the_database_and_are_counted(tmp_path: Path) -> None:
    folder = tmp_path / "not-yet"
    url = f"sqlite:///{folder / 'log.db'}"
    failures: list[int] = []
    engine = open_engine(url, create=False)
    folder.rmdir() if folder.exists() else None  # the database's folder is gone: writes fail
    writer = InferenceLogWriter(engine, retry_s=0.05, on_failure=failures.append).start()
    writer.record([record(i) for i in range(5)])
    assert not writer.flush(timeout=0.5)  # still pending: nothing could be written
    assert sum(failures) >= 5 and writer.pending == 5
    folder.mkdir()  # the database is back
    assert writer.flush(timeout=10)
    writer.close()
    assert len(read_inference_log(Settings(root=tmp_path, inference_log_url=url))) == 5


def test_pending_records_beyond_the_cap_are_dropped_and_counted(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'gone' / 'log.db'}", create=False)
    (tmp_path / "gone").rmdir()
    dropped: list[int] = []
    writer = InferenceLogWriter(engine, retry_s=0.05, max_pending=10, on_dropped=dropped.append).start()
    writer.record([record(i) for i in range(25)])
    writer.flush(timeout=0.5)
    assert sum(dropped) == 15
    writer.close(timeout=0.2)


def test_read_since_and_last(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    engine = open_engine(str(settings.inference_log_url))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    write(engine, [record(i, ts=start + timedelta(hours=i), image=i % 2 == 0) for i in range(10)])
    log = read_inference_log(settings, since=start + timedelta(hours=6))
    assert log["description_length"].tolist() == [6, 7, 8, 9]
    assert str(log["ts"].dt.tz) == "UTC"
    last = read_inference_log(settings, last=3)
    assert last["description_length"].tolist() == [7, 8, 9]  # the newest three, oldest first
    assert last["image_brightness"].dtype == "float64"
    assert log["has_image"].tolist() == [True, False, True, False]


def test_an_old_log_gains_the_new_columns_and_the_request_id_index(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    old = sa.create_engine(str(settings.inference_log_url))
    with old.begin() as conn:  # the table as an earlier version created it, one record in it
        conn.exec_driver_sql(
            "CREATE TABLE predictions (id INTEGER PRIMARY KEY, ts DATETIME NOT NULL, request_id VARCHAR(64) "
            "NOT NULL, route VARCHAR(32) NOT NULL, item INTEGER NOT NULL, model_version INTEGER, designation "
            "VARCHAR(512), description_length INTEGER NOT NULL, has_image BOOLEAN NOT NULL, image_width "
            "INTEGER, image_height INTEGER, image_bytes INTEGER, image_brightness FLOAT, image_saturation "
            "FLOAT, image_red FLOAT, image_green FLOAT, image_blue FLOAT, predicted_code INTEGER NOT NULL, "
            "confidence FLOAT NOT NULL, latency_ms FLOAT NOT NULL)"
        )
        conn.exec_driver_sql("CREATE INDEX ix_predictions_ts ON predictions (ts)")
        conn.exec_driver_sql(
            "INSERT INTO predictions (ts, request_id, route, item, description_length, has_image, "
            "predicted_code, confidence, latency_ms) VALUES ('2026-01-01 00:00:00', 'old', 'text', 0, 0, 0, "
            "10, 0.5, 1.0)"
        )
    assert "ix_predictions_request_id" not in {i["name"] for i in sa.inspect(old).get_indexes("predictions")}
    writer = InferenceLogWriter(open_engine(str(settings.inference_log_url), create=False)).start()
    writer.record(
        replace(record(1), origin="console", description="Avec pompe", text_code=2583, image_code=40)
    )
    writer.close()
    indexes = {i["name"]: i["column_names"] for i in sa.inspect(old).get_indexes("predictions")}
    assert indexes["ix_predictions_request_id"] == ["request_id"]
    log = read_inference_log(settings)
    assert log["request_id"].tolist() == ["old", "req-1"] and log["origin"].tolist() == ["api", "console"]
    assert log["description"].isna().tolist() == [True, False] and log["description"].iloc[1] == "Avec pompe"
    assert log["text_code"].isna().tolist() == [True, False] and log["text_code"].iloc[1] == 2583
    assert log["image_file"].isna().all() and log["top_codes"].isna().all()
    assert find_prediction(old, "old", 0) == {
        "predicted_code": 10,
        "model_version": None,
        "designation": None,
        "description": None,
        "image_file": None,
    }
    open_engine(str(settings.inference_log_url))  # opening it again changes nothing (and does not fail)


# --- what review needs ---------------------------------------------------------------------------------
def jpeg(colour: tuple[int, int, int] = (40, 90, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), colour).save(buffer, "JPEG")
    return buffer.getvalue()


def test_review_columns_are_written_and_read(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    engine = open_engine(str(settings.inference_log_url))
    long = replace(record(1), description="d" * 3000, text_code=10, image_code=40, top_codes="[[10, 0.9]]")
    write(engine, [long, record(2)])
    log = read_inference_log(settings)
    first, second = log.iloc[0], log.iloc[1]
    assert len(first["description"]) == 2000  # long descriptions are cut, not refused
    assert (first["text_code"], first["image_code"], first["top_codes"]) == (10, 40, "[[10, 0.9]]")
    assert str(log["image_code"].dtype) == "Int64" and second["image_code"] is pd.NA
    assert log["image_width"].dtype == "float64"  # image measures stay numbers; the file name a string
    found = find_prediction(engine, "req-1", 0)
    assert found is not None and found["predicted_code"] == 2583 and found["description"] == "d" * 2000
    assert found["model_version"] == 1 and found["designation"] == "Produit 1 "
    assert find_prediction(engine, "req-1", 1) is None and find_prediction(engine, "nope", 0) is None


def test_find_prediction_in_a_log_not_yet_written(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'log.db'}", create=False)
    assert find_prediction(engine, "req-1", 0) is None  # no table yet: nothing logged, not an error


def test_a_kept_photo_is_stored_once_by_content_and_named_in_its_row(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    folder = tmp_path / "review_inputs"
    writer = InferenceLogWriter(open_engine(str(settings.inference_log_url)), inputs_dir=folder).start()
    photo = jpeg()
    writer.record([replace(record(1, image=True), photo=photo), record(2, image=True)])
    writer.record(replace(record(3, image=True), photo=photo))  # the same photo sent again
    writer.close()
    name = f"{hashlib.sha256(photo).hexdigest()[:32]}.jpg"
    assert [p.name for p in folder.iterdir()] == [name]  # one file, no temporary left behind
    assert (folder / name).read_bytes() == photo
    log = read_inference_log(settings).set_index("request_id")
    assert log.loc["req-1", "image_file"] == name == log.loc["req-3", "image_file"]
    assert pd.isna(log.loc["req-2", "image_file"])  # not kept: no file named


def test_photo_names_follow_the_bytes() -> None:
    def encoded(fmt: str) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, fmt)
        return buffer.getvalue()

    png, webp = encoded("PNG"), encoded("WEBP")
    assert photo_name(png) == f"{hashlib.sha256(png).hexdigest()[:32]}.png"
    assert (photo_name(webp) or "").endswith(".webp") and (photo_name(jpeg()) or "").endswith(".jpg")
    assert photo_name(b"GIF89a....") is None and photo_name(b"") is None


def test_an_existing_photo_is_not_rewritten(tmp_path: Path) -> None:
    photo = jpeg()
    name = keep_photo(photo, tmp_path)
    assert name is not None
    (tmp_path / name).write_bytes(b"already here")  # whatever is there stays: the name says the content
    assert keep_photo(photo, tmp_path) == name and (tmp_path / name).read_bytes() == b"already here"
    assert keep_photo(b"not a photo", tmp_path) is None and len(list(tmp_path.iterdir())) == 1


def test_a_photo_that_cannot_be_stored_never_loses_its_record(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    (tmp_path / "a-file").write_text("not a folder")
    failed: list[int] = []
    writer = InferenceLogWriter(
        open_engine(str(settings.inference_log_url)),
        inputs_dir=tmp_path / "a-file" / "review_inputs",  # cannot be created
        on_photo_failure=failed.append,
    ).start()
    writer.record(replace(record(1, image=True), photo=jpeg()))
    writer.close()
    log = read_inference_log(settings)
    assert log["request_id"].tolist() == ["req-1"] and log["image_file"].isna().all()
    assert failed == [1] and writer.photo_failures == 1


def test_without_a_folder_photos_are_dropped(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    writer = InferenceLogWriter(open_engine(str(settings.inference_log_url))).start()
    writer.record(replace(record(1, image=True), photo=jpeg()))
    writer.close()
    assert read_inference_log(settings)["image_file"].isna().all()


def test_an_absent_log_reads_empty(tmp_path: Path) -> None:
    log = read_inference_log(settings_for(tmp_path))
    assert log.empty and "predicted_code" in log.columns


def test_retention_removes_old_records_only(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'log.db'}")
    now = datetime(2026, 6, 1, tzinfo=UTC)
    write(engine, [record(1, ts=now - timedelta(days=40)), record(2, ts=now - timedelta(days=5))])
    assert prune(engine, 0, now=now) == 0  # 0 keeps everything
    assert prune(engine, 30, now=now) == 1
    log = read_inference_log(settings_for(tmp_path), engine=engine)
    assert log["request_id"].tolist() == ["req-2"]


def test_password_never_in_open_errors(tmp_path: Path) -> None:
    from core.storage.inference_log import InferenceLogError

    with pytest.raises(InferenceLogError) as err:
        open_engine("postgresql+psycopg2://user:s3cret@127.0.0.1:1/db")
    assert "s3cret" not in str(err.value)
