"""The corrections store: every label a reviewer fixed, confirmed or set aside, with who, when and why.

A table beside the inference log (same database: SQLite by default, PostgreSQL in the full stack); the
file it is exported to, which ingestion applies over the raw labels, is `core.storage.corrections_file`.

One *active* correction per product at most — enforced by the database (a unique index on the product
key and an `active` flag that undoing clears), so two reviewers racing on one product cannot both win.
Undo keeps the row (audit), marked with who undid it and when. Imports are all or nothing.
"""
# Size: one table's schema and its rules (checks, duplicates, conflicts, undo, audit) belong together.

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Final, Literal

import pandas as pd
import sqlalchemy as sa

from core.categories import CODES
from core.errors import RakutenError
from core.storage.inference_log import open_engine

Source = Literal["training", "production"]
Verdict = Literal["relabel", "confirm", "unclear"]
SOURCES: Final[tuple[Source, ...]] = ("training", "production")
VERDICTS: Final[tuple[Verdict, ...]] = ("relabel", "confirm", "unclear")
# Why an item was in front of the reviewer.
QUEUES: Final = (
    "label_issue",  # confident learning flagged the training label
    "duplicate",  # a near-duplicate product carries another label
    "unfamiliar_photo",  # a served photo unlike the model's training photos
    "low_confidence",  # a served answer below `review_confidence`
    "views_disagree",  # the text and photo views answered differently
    "drift",  # served in a window whose inputs drifted
    "feedback",  # sent by an external tool (POST /feedback)
    "import",  # a corrections file imported from elsewhere
)
TEXT_CHARS: Final = 10_000
# What runs in a recording transaction after the inserts, with their ids.
Alongside = Callable[[sa.Connection, list[int]], None]

metadata = sa.MetaData()
corrections = sa.Table(
    "corrections",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("product_key", sa.String(96), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("queue", sa.String(32), nullable=False),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("old_code", sa.Integer),  # the training label, or the served answer
    sa.Column("new_code", sa.Integer),  # NULL when the reviewer set the product aside (unclear)
    sa.Column("reviewer", sa.String(64), nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("row_id", sa.BigInteger),  # training: the row id of X_train
    sa.Column("request_id", sa.String(64)),  # production: the prediction's request and item
    sa.Column("item", sa.Integer),
    sa.Column("model_version", sa.Integer),
    sa.Column("productid", sa.BigInteger),
    sa.Column("imageid", sa.BigInteger),
    sa.Column("designation", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("image_file", sa.String(512)),  # production: the kept photo (review inputs folder)
    sa.Column("active", sa.Boolean),  # True, or NULL once undone (NULLs never collide in a unique index)
    sa.Column("undone_at", sa.DateTime(timezone=True)),
    sa.Column("undone_by", sa.String(64)),
    sa.UniqueConstraint("product_key", "active", name="one_active_correction"),
)


class CorrectionError(RakutenError):
    """A correction cannot be recorded as asked (the message says why and what to do)."""

    status = 422
    problem = "invalid_correction"


class UnknownClassError(CorrectionError):
    problem = "unknown_class"


class DuplicateCorrectionError(CorrectionError):
    status = 409
    problem = "duplicate_correction"


class ConflictingCorrectionError(CorrectionError):
    status = 409
    problem = "conflicting_correction"


class CorrectionNotFoundError(CorrectionError):
    status = 404
    problem = "unknown_correction"


@dataclass(frozen=True)
class Correction:
    """One reviewer decision about one product."""

    product_key: str
    source: Source
    queue: str
    verdict: Verdict
    old_code: int | None
    new_code: int | None
    reviewer: str
    note: str | None = None
    row_id: int | None = None
    request_id: str | None = None
    item: int | None = None
    model_version: int | None = None
    productid: int | None = None
    imageid: int | None = None
    designation: str | None = None
    description: str | None = None
    image_file: str | None = None

    @classmethod
    def for_training(
        cls, row_id: int, old: int, new: int | None, reviewer: str, queue: str = "label_issue", **extra: Any
    ) -> Correction:
        """A reviewer's decision on a training row: `new` None sets it aside, `new == old` confirms it."""
        verdict: Verdict = "unclear" if new is None else ("confirm" if new == old else "relabel")
        return cls(
            training_key(row_id), "training", queue, verdict, old, new, reviewer, row_id=row_id, **extra
        )

    @classmethod
    def for_prediction(
        cls,
        request_id: str,
        item: int,
        predicted: int | None,
        new: int | None,
        reviewer: str,
        queue: str,
        **extra: Any,
    ) -> Correction:
        """A reviewer's decision on a served prediction: `new` None = not a product / unclear."""
        verdict: Verdict = "unclear" if new is None else ("confirm" if new == predicted else "relabel")
        key = prediction_key(request_id, item)
        return cls(
            key,
            "production",
            queue,
            verdict,
            predicted,
            new,
            reviewer,
            request_id=request_id,
            item=item,
            **extra,
        )

    def checked(self) -> Correction:
        """This correction, or `CorrectionError` saying what is wrong with it."""
        if self.source not in SOURCES:
            raise CorrectionError(f"Unknown source {self.source!r}: one of {', '.join(SOURCES)}.")
        if self.verdict not in VERDICTS:
            raise CorrectionError(f"Unknown verdict {self.verdict!r}: one of {', '.join(VERDICTS)}.")
        if self.queue not in QUEUES:
            raise CorrectionError(f"Unknown queue {self.queue!r}: one of {', '.join(QUEUES)}.")
        if not self.product_key.strip():
            raise CorrectionError("A correction needs a product key.")
        if not self.reviewer.strip():
            raise CorrectionError("A correction records who made it: give a reviewer name.")
        if self.verdict == "unclear":
            if self.new_code is not None:
                raise CorrectionError("An 'unclear' verdict sets the product aside: it takes no new class.")
        elif self.new_code not in CODES:
            raise UnknownClassError(
                f"{self.new_code!r} is not one of the 27 product type codes "
                "(`python -m core categories` lists them)."
            )
        if self.source == "training" and self.row_id is None:
            raise CorrectionError("A training correction names its row id (the first column of X_train).")
        if self.source == "production" and not (self.designation or self.image_file):
            raise CorrectionError(
                f"Production correction {self.product_key}: no title or photo kept, nothing to train on."
            )
        return self


FIELDS: Final = tuple(f.name for f in fields(Correction))


def training_key(row_id: int) -> str:
    return f"train:{int(row_id)}"


def prediction_key(request_id: str, item: int) -> str:
    return f"{request_id}:{int(item)}"


# --- the store ---------------------------------------------------------------------------------------
class CorrectionsStore:
    """Corrections in a SQLAlchemy database (the inference log's, by default)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        metadata.create_all(engine, checkfirst=True)

    @classmethod
    def open(cls, url: str) -> CorrectionsStore:
        return cls(open_engine(url, create=False))

    def close(self) -> None:
        self.engine.dispose()

    def add(self, correction: Correction, *, then: Alongside | None = None) -> int:
        """Record one correction; its id. `DuplicateCorrectionError` when the product already has the
        same active decision, `ConflictingCorrectionError` when it has another (undo that one first)."""
        return self.add_many([correction], then=then)[0]

    def add_many(self, batch: Sequence[Correction], *, then: Alongside | None = None) -> list[int]:
        """Record several corrections in one transaction: all of them, or (on any error) none. `then`
        runs in that transaction with the new ids (e.g. the audit record of the action), before it
        commits."""
        checked = [c.checked() for c in batch]
        refuse_repeats(checked)
        now = datetime.now(UTC)
        try:  # the unique index decides: a clash fails the insert, and the transaction with it
            with self.engine.begin() as conn:
                ids = []
                for c in checked:
                    values = {
                        **_clipped({f: getattr(c, f) for f in FIELDS}),
                        "created_at": now,
                        "active": True,
                    }
                    inserted = conn.execute(_INSERT, values).inserted_primary_key
                    ids.append(int(inserted[0]))  # type: ignore[index]
                if then is not None:
                    then(conn, ids)
                return ids
        except sa.exc.IntegrityError as exc:  # the product already has a correction: say which
            with self.engine.connect() as conn:
                existing = _active_for(conn, [c.product_key for c in checked])
            for c in checked:
                if c.product_key in existing:
                    raise _clash(c, existing[c.product_key]) from exc
            raise

    def undo(self, correction_id: int, by: str) -> dict[str, Any]:
        """Withdraw an active correction (kept in the audit trail); the withdrawn row."""
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            row = (
                conn.execute(sa.select(corrections).where(corrections.c.id == correction_id))
                .mappings()
                .first()
            )
            if row is None:
                raise CorrectionNotFoundError(f"No correction #{correction_id}.")
            if row["active"] is None:
                raise CorrectionNotFoundError(
                    f"Correction #{correction_id} was already undone by {row['undone_by']} "
                    f"at {row['undone_at']}."
                )
            conn.execute(
                corrections.update()
                .where(corrections.c.id == correction_id)
                .values(active=None, undone_at=now, undone_by=by)
            )
        return {**row, "active": None, "undone_at": now, "undone_by": by}

    def table(self, *, include_undone: bool = False) -> pd.DataFrame:
        """Corrections, oldest first: the active ones, or the whole audit trail."""
        query = sa.select(corrections).order_by(corrections.c.id)
        if not include_undone:
            query = query.where(corrections.c.active.is_(True))
        with self.engine.connect() as conn:
            frame = pd.read_sql(query, conn)
        for column in ("created_at", "undone_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame

    def reviewed_keys(self) -> set[str]:
        """Products with an active correction (they leave the queues)."""
        query = sa.select(corrections.c.product_key).where(corrections.c.active.is_(True))
        with self.engine.connect() as conn:
            return set(conn.execute(query).scalars())

    def count_since(self, since: datetime | None) -> int:
        """Active corrections made after `since` (all of them without one)."""
        query = sa.select(sa.func.count()).select_from(corrections).where(corrections.c.active.is_(True))
        if since is not None:
            since = since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)
            query = query.where(corrections.c.created_at > since)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def stats(self) -> dict[str, Any]:
        """How many corrections, by source, verdict and reviewer; how many were undone."""
        frame = self.table(include_undone=True)
        active = frame[frame["active"].eq(True)]
        return {
            "active": len(active),
            "undone": int(frame["active"].isna().sum()),
            "by_source": {str(k): int(v) for k, v in active["source"].value_counts().items()},
            "by_verdict": {str(k): int(v) for k, v in active["verdict"].value_counts().items()},
            "by_reviewer": {str(k): int(v) for k, v in active["reviewer"].value_counts().items()},
            "last": None if active.empty else active["created_at"].max().isoformat(timespec="seconds"),
        }


def refuse_repeats(batch: Sequence[Correction]) -> None:
    seen: dict[str, Correction] = {}
    for c in batch:
        if c.product_key in seen:
            first = seen[c.product_key]
            kind = DuplicateCorrectionError if _same(first, c) else ConflictingCorrectionError
            raise kind(f"{c.product_key} is corrected twice in one batch ({_what(first)} and {_what(c)}).")
        seen[c.product_key] = c


# Statements built once: SQLAlchemy then reuses their compiled form (POST /feedback makes one each call).
_INSERT: Final = corrections.insert()
_ACTIVE_ONE: Final = sa.select(corrections).where(
    corrections.c.active.is_(True), corrections.c.product_key == sa.bindparam("key")
)


def _active_for(conn: sa.Connection, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    keys = list(dict.fromkeys(keys))
    if len(keys) == 1:
        found = conn.execute(_ACTIVE_ONE, {"key": keys[0]}).mappings().first()
        return {keys[0]: dict(found)} if found is not None else {}
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(keys), 500):  # SQLite's bound-parameter limit
        query = sa.select(corrections).where(
            corrections.c.active.is_(True), corrections.c.product_key.in_(keys[start : start + 500])
        )
        out.update({row["product_key"]: dict(row) for row in conn.execute(query).mappings()})
    return out


def _clash(new: Correction, old: dict[str, Any]) -> CorrectionError:
    said = f"#{old['id']} by {old['reviewer']} ({_what(old)})"
    if _same(old, new):
        return DuplicateCorrectionError(f"{new.product_key} is already corrected the same way: {said}.")
    return ConflictingCorrectionError(
        f"{new.product_key} already has correction {said}, not {_what(new)}: undo it first to change it."
    )


def _same(a: Correction | dict[str, Any], b: Correction | dict[str, Any]) -> bool:
    get = lambda x, k: x[k] if isinstance(x, dict) else getattr(x, k)  # noqa: E731
    return bool(get(a, "verdict") == get(b, "verdict") and get(a, "new_code") == get(b, "new_code"))


def _what(c: Correction | dict[str, Any]) -> str:
    verdict = c["verdict"] if isinstance(c, dict) else c.verdict
    new = c["new_code"] if isinstance(c, dict) else c.new_code
    return "set aside as unclear" if verdict == "unclear" else f"{verdict} → {new}"


def _clipped(values: dict[str, Any]) -> dict[str, Any]:
    for key in ("designation", "description", "note"):
        if isinstance(values.get(key), str):
            values[key] = values[key][:TEXT_CHARS]
    return values
