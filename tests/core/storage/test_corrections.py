"""The corrections store: one active decision per product (duplicates and conflicts refused, by the
database too), undo kept in the audit trail, batches all or nothing, and the file round trip."""

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from core.storage.corrections import (
    ConflictingCorrectionError,
    Correction,
    CorrectionNotFoundError,
    CorrectionsStore,
    DuplicateCorrectionError,
    UnknownClassError,
    corrections,
)


@pytest.fixture
def store(tmp_path: Path) -> CorrectionsStore:
    return CorrectionsStore.open(f"sqlite:///{tmp_path / 'review.db'}")


def _train(
    row: int, old: int = 10, new: int | None = 2705, who: str = "ana", note: str | None = None
) -> Correction:
    return Correction.for_training(row, old, new, who, note=note)


def test_a_correction_is_recorded_with_who_and_when(store: CorrectionsStore) -> None:
    cid = store.add(_train(4, note="a used book, not a new one"))
    table = store.table()
    assert table["id"].tolist() == [cid]
    row = table.iloc[0]
    assert (row["product_key"], row["verdict"], row["old_code"], row["new_code"]) == (
        "train:4",
        "relabel",
        10,
        2705,
    )
    assert row["reviewer"] == "ana" and row["note"] == "a used book, not a new one"
    assert row["created_at"].tzinfo is not None
    assert store.reviewed_keys() == {"train:4"}
    assert Correction.for_training(5, 10, 10, "ana").verdict == "confirm"
    assert Correction.for_training(5, 10, None, "ana").verdict == "unclear"


def test_duplicate_and_conflicting_corrections_are_refused(store: CorrectionsStore) -> None:
    store.add(_train(4))
    with pytest.raises(DuplicateCorrectionError, match="already corrected the same way"):
        store.add(_train(4, who="bo"))
    with pytest.raises(ConflictingCorrectionError, match="undo it first"):
        store.add(_train(4, new=2403, who="bo"))
    assert len(store.table()) == 1


def test_the_database_itself_refuses_a_second_active_correction(store: CorrectionsStore) -> None:
    """Two reviewers racing past the check: the unique index still lets only one win."""
    store.add(_train(4))
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(
            corrections.insert().values(
                product_key="train:4",
                source="training",
                queue="label_issue",
                verdict="relabel",
                new_code=40,
                reviewer="bo",
                created_at=pd.Timestamp.now(tz="UTC"),
                active=True,
            )
        )


def test_unknown_class_and_missing_fields_are_refused(store: CorrectionsStore) -> None:
    with pytest.raises(UnknownClassError, match="not one of the 27"):
        store.add(_train(4, new=1234))
    with pytest.raises(Exception, match="who made it"):
        store.add(_train(4, who=" "))
    with pytest.raises(Exception, match="nothing to train on"):
        store.add(Correction.for_prediction("r1", 0, 10, 2705, "ana", "low_confidence"))
    assert store.table().empty


def test_undo_keeps_the_audit_trail_and_frees_the_product(store: CorrectionsStore) -> None:
    first = store.add(_train(4))
    undone = store.undo(first, by="bo")
    assert undone["undone_by"] == "bo"
    with pytest.raises(CorrectionNotFoundError, match="already undone by bo"):
        store.undo(first, by="bo")
    with pytest.raises(CorrectionNotFoundError, match="No correction #999"):
        store.undo(999, by="bo")
    second = store.add(_train(4, new=2403))  # the product can be corrected again
    audit = store.table(include_undone=True)
    assert audit["id"].tolist() == [first, second]
    assert audit["active"].isna().tolist() == [True, False]
    assert store.stats()["active"] == 1 and store.stats()["undone"] == 1


def test_a_batch_is_all_or_nothing(store: CorrectionsStore) -> None:
    store.add(_train(7))
    batch = [_train(1), _train(2), _train(7, new=40)]  # the last conflicts with the stored one
    with pytest.raises(ConflictingCorrectionError):
        store.add_many(batch)
    with pytest.raises(ConflictingCorrectionError, match="twice in one batch"):
        store.add_many([_train(1), _train(1, new=40)])
    assert store.table()["product_key"].tolist() == ["train:7"]


def test_count_since(store: CorrectionsStore) -> None:
    store.add(_train(1))
    middle = pd.Timestamp.now(tz="UTC")
    store.add(_train(2))
    assert store.count_since(None) == 2
    assert store.count_since(middle.to_pydatetime()) == 1
