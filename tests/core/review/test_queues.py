"""The review queues: what enters each (low confidence, views disagreeing, drifted windows, the scan),
what leaves (reviewed products), and the order (every class gets its turn)."""

from pathlib import Path

import pandas as pd

from core.review.queues import ITEM_COLUMNS, Window, production_queue, round_robin, training_queue


def _log(rows: list[dict]) -> pd.DataFrame:
    base = {
        "ts": pd.Timestamp("2026-12-01T10:00", tz="UTC"),
        "item": 0,
        "model_version": 3,
        "designation": "x",
        "description": "",
        "text_code": None,
        "image_code": None,
        "image_file": None,
    }
    return pd.DataFrame([{**base, **r} for r in rows])


def test_production_queue_takes_unsure_disagreeing_and_drifted_answers(tmp_path: Path) -> None:
    log = _log(
        [
            {"request_id": "sure", "predicted_code": 10, "confidence": 0.9},
            {"request_id": "unsure", "predicted_code": 10, "confidence": 0.3, "image_file": "ab.jpg"},
            {
                "request_id": "split",
                "predicted_code": 40,
                "confidence": 0.8,
                "text_code": 40,
                "image_code": 1280,
            },
            {
                "request_id": "late",
                "predicted_code": 50,
                "confidence": 0.95,
                "ts": pd.Timestamp("2026-12-02T10:00", tz="UTC"),
            },
            {"request_id": "done", "predicted_code": 10, "confidence": 0.1},
        ]
    )
    drifted = [Window(pd.Timestamp("2026-12-02T09:00", tz="UTC"), pd.Timestamp("2026-12-02T11:00", tz="UTC"))]
    queue = production_queue(log, {"done:0"}, confidence=0.5, drifted=drifted, inputs_dir=tmp_path)
    assert list(queue.columns) == list(ITEM_COLUMNS)
    by_key = queue.set_index("key")
    assert set(by_key.index) == {"unsure:0", "split:0", "late:0"}
    assert by_key.loc["unsure:0", "queue"] == "low_confidence"
    assert by_key.loc["unsure:0", "image_path"] == str(tmp_path / "ab.jpg")
    assert by_key.loc["split:0", "queue"] == "views_disagree"
    assert "photo says 1280" in by_key.loc["split:0", "detail"]
    assert "served by v3" in by_key.loc["split:0", "detail"]  # the serving model's numbers, named
    assert by_key.loc["unsure:0", "detail"] == "v3 answered only 30% sure"
    assert by_key.loc["late:0", "queue"] == "drift"
    assert production_queue(log.iloc[:0], set(), confidence=0.5).empty


def test_photos_unlike_the_training_photos_have_their_own_queue() -> None:
    log = _log(
        [
            {  # confident, views disagreeing: but the photo did not count, it was unlike the training ones
                "request_id": "scene",
                "predicted_code": 2583,
                "confidence": 0.97,
                "text_code": 2583,
                "image_code": 10,
                "photo_unfamiliar": True,
            },
            {  # a photo alone, unfamiliar: its answer is a guess
                "request_id": "alone",
                "predicted_code": 1280,
                "confidence": 0.6,
                "image_code": 1280,
                "photo_unfamiliar": True,
            },
            {"request_id": "fine", "predicted_code": 10, "confidence": 0.9, "photo_unfamiliar": False},
            {"request_id": "older-log", "predicted_code": 10, "confidence": 0.9, "photo_unfamiliar": None},
        ]
    )
    by_key = production_queue(log, set(), confidence=0.5).set_index("key")
    assert set(by_key.index) == {"scene:0", "alone:0"}
    assert (by_key["queue"] == "unfamiliar_photo").all()
    assert by_key.loc["scene:0", "detail"] == (
        "the photo is unlike v3's training photos, so v3 answered from the text (97% sure); "
        "its photo view alone says 10"
    )
    assert "without a title: a guess" in by_key.loc["alone:0", "detail"]


def test_rare_classes_are_not_drowned() -> None:
    frame = pd.DataFrame(
        {"predicted_code": [10] * 6 + [1180], "confidence": [0.1, 0.11, 0.12, 0.13, 0.14, 0.15, 0.4]}
    )
    ordered = round_robin(frame, by="predicted_code", order="confidence")
    assert ordered["predicted_code"].tolist()[:2] == [10, 1180]  # the rare class's only item comes second


def test_training_queue_joins_the_scan_to_the_products() -> None:
    issues = pd.DataFrame(
        {
            "id": [5, 3, 99],
            "reason": ["label_issue", "duplicate", "label_issue"],
            "label": [10, 40, 10],
            "suggested": [2705, 10, 40],
            "self_confidence": [0.02, 0.3, 0.1],
            "suggested_proba": [0.9, 0.5, 0.5],
            "group": [None, 0, None],
            "group_labels": [None, "10,40", None],
            "rank": [0, 2, 1],
        }
    )
    train = pd.DataFrame(
        {
            "id": [3, 5, 6],
            "designation": ["a", "b", "c"],
            "description": [None, "d", ""],
            "prdtypecode": [40, 10, 50],
            "productid": [30, 50, 60],
            "imageid": [31, 51, 61],
            "image_path": ["/i/3.jpg", "/i/5.jpg", "/i/6.jpg"],
            "has_image": [True, False, True],
        }
    )
    queue = training_queue(issues, train, {"train:7"})
    assert queue["key"].tolist() == ["train:5", "train:3"]  # rank order; row 99 is gone since the scan
    assert queue["image_path"].tolist() == ["", "/i/3.jpg"]
    assert "suggests 2705" in queue["detail"].iloc[0]
    # the scan's numbers are the cross-validated model's, not the champion's: the line says so
    assert "label scan's out-of-fold model gives the label" in queue["detail"].iloc[0]
    assert "labels 10,40" in queue["detail"].iloc[1]
    assert training_queue(issues, train, {"train:5", "train:3"}).empty
