"""The inference log: nothing lost under concurrent writes, retries while the database is away,
retention, and the one reader drift monitoring uses."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.config import Settings
from core.storage.inference_log import (
    InferenceLogWriter,
    InferenceRecord,
    open_engine,
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


def test_a_log_from_before_origins_gains_the_column_and_reads_as_api(tmp_path: Path) -> None:
    import sqlalchemy as sa

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
        conn.exec_driver_sql(
            "INSERT INTO predictions (ts, request_id, route, item, description_length, has_image, "
            "predicted_code, confidence, latency_ms) VALUES ('2026-01-01 00:00:00', 'old', 'text', 0, 0, 0, "
            "10, 0.5, 1.0)"
        )
    writer = InferenceLogWriter(open_engine(str(settings.inference_log_url), create=False)).start()
    writer.record(replace(record(1), origin="console"))
    writer.close()
    log = read_inference_log(settings)
    assert log["request_id"].tolist() == ["old", "req-1"] and log["origin"].tolist() == ["api", "console"]


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
