"""The corrections store on PostgreSQL (what the full stack configures): the one-active-correction rule
held by the database under concurrent reviewers, undo and re-correction, and POST /feedback's lookup of
a logged prediction — against a real PostgreSQL server started by the fixture."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.storage.corrections import (
    ConflictingCorrectionError,
    Correction,
    CorrectionError,
    CorrectionsStore,
    DuplicateCorrectionError,
    corrections,
)
from core.storage.inference_log import find_prediction, open_engine, predictions, write
from tests.core.storage.test_inference_log import record


@pytest.fixture
def store(postgres_url: str) -> CorrectionsStore:
    engine = open_engine(postgres_url)
    found = CorrectionsStore(engine)
    with engine.begin() as conn:
        conn.execute(corrections.delete())
        conn.execute(predictions.delete())
    return found


def test_one_active_correction_per_product_under_concurrent_reviewers(store: CorrectionsStore) -> None:
    outcomes: list[str] = []

    def review(who: int) -> None:
        try:
            store.add(Correction.for_training(7, 10, 2705 if who % 2 else 40, f"r{who}"))
            outcomes.append("won")
        except CorrectionError as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=review, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("won") == 1
    assert set(outcomes) - {"won"} <= {"DuplicateCorrectionError", "ConflictingCorrectionError"}
    assert len(store.table()) == 1


def test_undo_then_correct_again_and_refusals(store: CorrectionsStore) -> None:
    first = store.add(Correction.for_training(3, 10, 2705, "ana"))
    with pytest.raises(DuplicateCorrectionError):
        store.add(Correction.for_training(3, 10, 2705, "bo"))
    with pytest.raises(ConflictingCorrectionError):
        store.add_many([Correction.for_training(4, 10, 40, "bo"), Correction.for_training(3, 10, 40, "bo")])
    assert store.reviewed_keys() == {"train:3"}  # the batch left nothing behind
    store.undo(first, by="ana")
    second = store.add(Correction.for_training(3, 10, 40, "bo"))
    audit = store.table(include_undone=True)
    assert audit["id"].tolist() == [first, second] and audit["active"].isna().tolist() == [True, False]


def test_a_logged_prediction_is_found_for_feedback(store: CorrectionsStore, tmp_path: Path) -> None:
    write(store.engine, [record(1), record(2)])
    found = find_prediction(store.engine, "req-1", 0)
    assert found is not None and found["predicted_code"] is not None
    assert find_prediction(store.engine, "req-404", 0) is None
    with store.engine.connect() as conn:
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes(predictions.name)}
    assert any("request_id" in name for name in indexes)
