"""The audit trail on SQLite (the default database): one row per event, read newest first through every
filter, long text clipped, and append-only in the database itself: an UPDATE or DELETE, even a
hand-written one, is refused by a trigger (PostgreSQL: tests/integration/test_audit_postgres.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.storage.audit import AuditError, AuditEvent, AuditFilter, AuditTrail, audit_events
from core.storage.inference_log import open_engine
from tests.conftest import free_port

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def event(i: int, **changes: object) -> AuditEvent:
    values: dict[str, object] = {
        "actor": "alice",
        "roles": "operator",
        "via": "oidc",
        "action": "promote",
        "target": f"model:v{i}",
        "reason": f"reason {i}",
        "outcome": "done",
        "entry": "console",
        "origin": "10.0.0.1",
        "at": T0 + timedelta(minutes=i),
    }
    return AuditEvent(**(values | changes))  # type: ignore[arg-type]


@pytest.fixture
def trail(tmp_path: Path) -> AuditTrail:
    return AuditTrail.open(f"sqlite:///{tmp_path / 'data' / 'audit.db'}")


@pytest.fixture
def filled(trail: AuditTrail) -> AuditTrail:
    trail.record(event(1))
    trail.record(event(2, actor="bob", action="rollback", outcome="refused", entry="api"))
    trail.record(event(3, actor="service:ci", via="service-token", action="retrain", target="run:abc_1%"))
    trail.record(event(4, actor="bob", outcome="failed", detail="RegistryError: no version 4"))
    return trail


def read(trail: AuditTrail, **where: object) -> list[str]:
    return trail.read(AuditFilter(**where)).target.tolist()  # type: ignore[arg-type]


def test_record_returns_the_id_and_read_gives_every_column_newest_first(trail: AuditTrail) -> None:
    first, second = trail.record(event(1)), trail.record(event(2, detail="more"))
    assert second == first + 1
    frame = trail.read()
    assert list(frame.columns) == [c.name for c in audit_events.columns]
    assert frame.target.tolist() == ["model:v2", "model:v1"]
    assert frame["at"].iloc[0] == T0 + timedelta(minutes=2) and str(frame["at"].dt.tz) == "UTC"
    assert frame.detail.tolist() == ["more", ""]


def test_an_empty_trail_reads_as_an_empty_frame_with_the_columns(trail: AuditTrail) -> None:
    frame = trail.read(AuditFilter(actors=["nobody"]))
    assert frame.empty and list(frame.columns) == [c.name for c in audit_events.columns]


def test_filters(filled: AuditTrail) -> None:
    assert read(filled, actors=["bob"]) == ["model:v4", "model:v2"]
    assert read(filled, actions=["promote"]) == ["model:v4", "model:v1"]
    assert read(filled, outcomes=["refused", "failed"]) == ["model:v4", "model:v2"]
    assert read(filled, actors=["bob"], outcomes=["done"]) == []
    assert read(filled, target="v2") == ["model:v2"]
    assert read(filled, target=" abc_1% ") == ["run:abc_1%"]  # trimmed; % and _ are literal
    assert read(filled, target="_") == ["run:abc_1%"]
    assert read(filled, since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=3)) == [
        "run:abc_1%",
        "model:v2",
    ]
    assert read(filled, limit=2) == ["model:v4", "run:abc_1%"]
    assert filled.distinct("actor") == ["alice", "bob", "service:ci"]
    assert filled.distinct("action") == ["promote", "retrain", "rollback"]


def test_long_text_is_clipped_to_the_columns(trail: AuditTrail) -> None:
    trail.record(event(1, actor="a" * 500, reason="r" * 5_000, detail="d" * 5_000, target="t" * 999))
    row = trail.read().iloc[0]
    assert len(row.actor) == 128 and len(row.target) == 256
    assert len(row.reason) == 2_000 and len(row.detail) == 2_000


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET actor = 'mallory'",
        "UPDATE audit_events SET outcome = 'done' WHERE outcome = 'refused'",
        "DELETE FROM audit_events",
        "DELETE FROM audit_events WHERE actor = 'bob'",
    ],
)
def test_the_database_refuses_to_change_or_remove_a_row(filled: AuditTrail, statement: str) -> None:
    before = filled.read()
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), filled.engine.begin() as conn:
        conn.exec_driver_sql(statement)
    assert filled.read().equals(before)


def test_the_same_refusal_through_sqlalchemy_statements(filled: AuditTrail) -> None:
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), filled.engine.begin() as conn:
        conn.execute(sa.update(audit_events).values(reason="rewritten"))
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), filled.engine.begin() as conn:
        conn.execute(sa.delete(audit_events).where(audit_events.c.actor == "bob"))
    assert len(filled.read()) == 4


def test_opening_again_keeps_the_rows_and_the_triggers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    AuditTrail.open(url).record(event(1))
    again = AuditTrail.open(url)  # a second process starting beside the first
    again.record(event(2))
    assert read(again) == ["model:v2", "model:v1"]
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), again.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM audit_events")


def test_a_database_that_cannot_be_reached_is_an_audit_error() -> None:
    with pytest.raises(AuditError, match="Cannot open the audit trail"):
        AuditTrail.open(f"postgresql+psycopg2://nobody@127.0.0.1:{free_port()}/audit")


def test_the_trail_shares_the_inference_log_s_database_by_default(project: Path) -> None:
    from core.config import Settings

    settings = Settings(root=project)
    assert settings.audit_url == settings.inference_log_url
    AuditTrail.open(str(settings.audit_url)).record(event(1))
    open_engine(str(settings.inference_log_url))  # the log opened next: its table beside the trail
    tables = sa.inspect(sa.create_engine(str(settings.audit_url)))
    assert tables.has_table("audit_events") and tables.has_table("predictions")
