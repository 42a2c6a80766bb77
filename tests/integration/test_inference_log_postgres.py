"""The inference log on PostgreSQL (what the full stack configures): concurrent writes, reads, retention,
and the API writing to it — against a real PostgreSQL server started by the fixture."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient

from core.config import Settings
from core.serving.app import create_app
from core.storage.inference_log import (
    InferenceLogWriter,
    open_engine,
    predictions,
    prune,
    read_inference_log,
    write,
)
from tests.core.storage.test_inference_log import record


def fresh(url: str) -> sa.Engine:
    engine = open_engine(url)
    with engine.begin() as conn:
        conn.execute(predictions.delete())
    return engine


def test_concurrent_writes_and_reads(postgres_url: str, tmp_path: Path) -> None:
    engine = fresh(postgres_url)
    writer = InferenceLogWriter(engine, batch=100).start()

    def produce(t: int) -> None:
        for i in range(250):
            writer.record(record(t * 1000 + i, image=i % 3 == 0))

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    settings = Settings(root=tmp_path, inference_log_url=postgres_url)
    log = read_inference_log(settings)
    assert len(log) == 2000 and log["request_id"].is_unique
    assert str(log["ts"].dt.tz) == "UTC" and log["has_image"].sum() == 8 * 84
    assert len(read_inference_log(settings, last=10)) == 10


def test_since_and_retention(postgres_url: str, tmp_path: Path) -> None:
    engine = fresh(postgres_url)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    write(engine, [record(i, ts=start + timedelta(days=i)) for i in range(10)])
    settings = Settings(root=tmp_path, inference_log_url=postgres_url)
    since = read_inference_log(settings, since=start + timedelta(days=7))
    assert since["description_length"].tolist() == [7, 8, 9]
    assert prune(engine, 5, now=start + timedelta(days=10)) == 5  # days 0–4 are over 5 days old
    assert len(read_inference_log(settings)) == 5


def test_the_api_logs_to_postgres(postgres_url: str, trained_source: Path, tmp_path: Path) -> None:
    fresh(postgres_url)
    settings = Settings(
        root=trained_source,
        models_dir=tmp_path,
        inference_log_url=postgres_url,
        api_alias_check_s=0,
        api_batch_processes=0,
    )
    with TestClient(create_app(settings)) as client:
        for i in range(5):
            assert client.post("/predict", json={"designation": f"Piscine {i}"}).status_code == 200
        assert client.post("/predict/batch", json=[{"designation": "Livre"}] * 3).status_code == 200
    log = read_inference_log(settings)  # the app flushed its log on shutdown
    assert len(log) == 8 and (log["model_version"] == 1).all()
