"""The audit trail: every state-changing action, whoever asked and from wherever, one row each.

A table in the project's database (beside the inference log: SQLite by default, PostgreSQL in the full
stack). Append-only twice over: this module has no update or delete, and the database refuses both
(a trigger), so neither a bug nor a crafted statement through the application rewrites history.
Refusals are recorded too: "operator bob tried to promote v7 without the role" is an event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Final, Literal

import pandas as pd
import sqlalchemy as sa

from core.errors import RakutenError
from core.storage.inference_log import open_engine

Outcome = Literal["done", "refused", "failed"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("done", "refused", "failed")
# Where an action came from.
ENTRY_POINTS: Final = ("console", "api", "cli", "flow")
_TEXT: Final = 2_000  # reason and detail are clipped: a trail row is not a log file

metadata = sa.MetaData()
audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("actor", sa.String(128), nullable=False, index=True),  # who: a person, a service, a schedule
    sa.Column("roles", sa.String(128), nullable=False),  # what they held when they asked
    sa.Column("via", sa.String(32), nullable=False),  # how they proved it: oidc, service-token, local, …
    sa.Column("action", sa.String(48), nullable=False, index=True),
    sa.Column("target", sa.String(256), nullable=False),  # on what: model:v7, run:…, product:…
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),  # the refusal's or the failure's message
    sa.Column("entry", sa.String(16), nullable=False),  # console, api, cli, flow
    sa.Column("origin", sa.String(128), nullable=False),  # the client address, host or run id
)

# The database itself refuses to change or remove a row.
_APPEND_ONLY_SQLITE: Final = tuple(
    f"CREATE TRIGGER IF NOT EXISTS audit_events_no_{verb.lower()} BEFORE {verb} ON audit_events "
    f"BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: rows are never updated or deleted'); END"
    for verb in ("UPDATE", "DELETE")
)
_APPEND_ONLY_POSTGRES: Final = (
    # processes starting together would race on the catalogue: one at a time
    "SELECT pg_advisory_xact_lock(hashtext('audit_events_append_only'))",
    """CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$
    BEGIN RAISE EXCEPTION 'audit_events is append-only: rows are never updated or deleted'; END;
    $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events",
    """CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()""",
)


_INSERT: Final = sa.insert(audit_events)  # built once: it runs on the feedback route's path


class AuditError(RakutenError):
    """The audit trail cannot be written or read (its database is unreachable)."""


@dataclass(frozen=True)
class AuditEvent:
    """One action: who (and with which roles, proved how), what, on what, why, how it ended, from where."""

    actor: str
    roles: str
    via: str
    action: str
    target: str
    reason: str
    outcome: Outcome
    entry: str
    origin: str = ""
    detail: str = ""
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def row(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("reason", "detail"):
            values[name] = str(values[name] or "")[:_TEXT]
        for column in ("actor", "roles", "via", "action", "target", "entry", "origin", "outcome"):
            limit = audit_events.c[column].type.length  # type: ignore[attr-defined]
            values[column] = str(values[column] or "")[:limit]
        return values


@dataclass(frozen=True)
class AuditFilter:
    """What the audit page and export ask for (every field optional)."""

    actors: Sequence[str] = ()
    actions: Sequence[str] = ()
    outcomes: Sequence[str] = ()
    entries: Sequence[str] = ()  # console, api, cli, flow
    target: str = ""  # a substring of the target (`v7`, a run id, a product key)
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 5_000


class AuditTrail:
    """The trail in one database. `open(url)` creates the table and its append-only triggers."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> AuditTrail:
        try:
            engine = open_engine(url, create=False)  # not the inference log's table: only this one
            create_table(engine)
        except (RakutenError, sa.exc.SQLAlchemyError, OSError) as exc:
            raise AuditError(f"Cannot open the audit trail: {exc}") from exc
        return cls(engine)

    def record(self, event: AuditEvent, conn: sa.Connection | None = None) -> int:
        """Append one event; its id. With `conn` (a transaction on this trail's database), inside it: the
        record then commits, or rolls back, with what it records."""
        try:
            if conn is not None:
                result = conn.execute(_INSERT, event.row())
            else:
                with self.engine.begin() as own:
                    result = own.execute(_INSERT, event.row())
        except sa.exc.SQLAlchemyError as exc:
            raise AuditError(f"Cannot write to the audit trail: {exc}") from exc
        key = result.inserted_primary_key
        return int(key[0]) if key else 0

    def read(self, where: AuditFilter | None = None) -> pd.DataFrame:
        """Events, newest first."""
        where = where or AuditFilter()
        query = sa.select(audit_events).order_by(audit_events.c.id.desc()).limit(where.limit)
        if where.actors:
            query = query.where(audit_events.c.actor.in_(list(where.actors)))
        if where.actions:
            query = query.where(audit_events.c.action.in_(list(where.actions)))
        if where.outcomes:
            query = query.where(audit_events.c.outcome.in_(list(where.outcomes)))
        if where.entries:
            query = query.where(audit_events.c.entry.in_(list(where.entries)))
        if where.target.strip():
            query = query.where(audit_events.c.target.contains(where.target.strip(), autoescape=True))
        if where.since is not None:
            query = query.where(audit_events.c.at >= where.since)
        if where.until is not None:
            query = query.where(audit_events.c.at <= where.until)
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(query).mappings().all()
        except sa.exc.SQLAlchemyError as exc:
            raise AuditError(f"Cannot read the audit trail: {exc}") from exc
        frame = pd.DataFrame([dict(r) for r in rows], columns=[c.name for c in audit_events.columns])
        if not frame.empty:
            frame["at"] = pd.to_datetime(frame["at"], utc=True)
        return frame

    def distinct(self, column: Literal["actor", "action"]) -> list[str]:
        """The values a filter can offer."""
        try:
            with self.engine.connect() as conn:
                found = conn.execute(sa.select(audit_events.c[column]).distinct()).scalars().all()
        except sa.exc.SQLAlchemyError as exc:
            raise AuditError(f"Cannot read the audit trail: {exc}") from exc
        return sorted(str(v) for v in found)


def create_table(engine: sa.Engine) -> None:
    """The table, its indexes and the triggers that refuse updates and deletes."""
    metadata.create_all(engine, checkfirst=True)
    statements = _APPEND_ONLY_POSTGRES if engine.dialect.name == "postgresql" else _APPEND_ONLY_SQLITE
    if engine.dialect.name not in ("postgresql", "sqlite"):
        return  # other databases: append-only by this module alone
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
