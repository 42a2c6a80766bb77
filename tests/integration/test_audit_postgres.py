"""The audit trail on PostgreSQL (what the full stack configures), against a real server the fixture
starts: rows written and filtered, and the database itself refusing UPDATE, DELETE and TRUNCATE — even
as statements written by hand — while inserts go on; processes opening the trail at once all succeed."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from core.storage.audit import AuditFilter, AuditTrail, audit_events
from tests.core.storage.test_audit import event


@pytest.fixture
def trail(postgres_url: str) -> AuditTrail:
    """The trail in the session's database: opened (table and trigger), with three rows of its own."""
    found = AuditTrail.open(postgres_url)
    for i in range(1, 4):
        found.record(event(i, origin="pg-test"))
    return found


def ours(trail: AuditTrail) -> list[str]:
    return trail.read(AuditFilter(target="model:v")).query("origin == 'pg-test'").target.tolist()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET actor = 'mallory'",
        "DELETE FROM audit_events",
        "DELETE FROM audit_events WHERE origin = 'pg-test'",
        "TRUNCATE audit_events",
        "TRUNCATE TABLE audit_events RESTART IDENTITY",
    ],
)
def test_the_database_refuses_to_change_or_remove_rows(trail: AuditTrail, statement: str) -> None:
    before = trail.read()
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), trail.engine.begin() as conn:
        conn.exec_driver_sql(statement)
    after = trail.read()
    assert after.equals(before) and len(after) >= 3


def test_the_same_refusal_through_sqlalchemy_statements(trail: AuditTrail) -> None:
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), trail.engine.begin() as conn:
        conn.execute(sa.update(audit_events).values(outcome="done"))
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), trail.engine.begin() as conn:
        conn.execute(sa.delete(audit_events).where(audit_events.c.origin == "pg-test"))
    assert trail.read(AuditFilter(actors=["alice"])).shape[0] >= 3


def test_rows_are_written_and_filtered(trail: AuditTrail) -> None:
    latest = trail.record(event(9, actor="bob", outcome="refused", origin="pg-test", at=datetime.now(UTC)))
    frame = trail.read(AuditFilter(actors=["bob"], outcomes=["refused"]))
    assert frame.id.iloc[0] == latest and frame.target.iloc[0] == "model:v9"
    assert str(frame["at"].dt.tz) == "UTC"
    recent = trail.read(AuditFilter(since=datetime.now(UTC) - timedelta(minutes=5), actors=["bob"]))
    assert latest in recent.id.tolist()
    assert {"model:v1", "model:v2", "model:v3"} <= set(ours(trail))


def test_processes_opening_the_trail_at_once_all_succeed(postgres_url: str) -> None:
    """The API's workers, the console and a flow start together: each creates the table and its trigger
    if missing (serialized by an advisory lock), none fails, and the trigger stays in force."""
    errors: list[BaseException] = []

    def open_and_write(i: int) -> None:
        try:
            AuditTrail.open(postgres_url).record(event(100 + i, origin="pg-race"))
        except BaseException as exc:  # collected: asserted below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=open_and_write, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    trail = AuditTrail.open(postgres_url)
    assert trail.read(AuditFilter(target="model:v10")).shape[0] >= 6
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), trail.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM audit_events WHERE origin = 'pg-race'")
