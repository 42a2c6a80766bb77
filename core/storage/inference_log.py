"""The inference log: one row per prediction the service made, for drift monitoring and audits.

Writes go through `InferenceLogWriter`, a background thread fed by a queue: a request never waits
for the database, records are inserted in batches, a failed insert is retried (records stay queued,
failures are counted) and closing the writer flushes everything. SQLite in WAL mode by default —
several API worker processes can write the same file — or any SQLAlchemy URL (PostgreSQL in the
full stack). `read_inference_log` is the one way to read it back (drift monitoring uses it).
"""
# Size: schema, background writer, retention and readers of one table, for SQLite and PostgreSQL.

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pandas as pd
import sqlalchemy as sa

from core.config import Settings
from core.errors import RakutenError

log = logging.getLogger(__name__)

TITLE_CHARS: Final = 512  # the title is kept for text drift; longer ones are cut
# Who asked: any API client, the console (through the API or in its own process), the traffic simulator.
ORIGINS: Final = ("api", "console", "simulator")
ORIGIN_HEADER: Final = "X-Rakuten-Origin"

metadata = sa.MetaData()
predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("route", sa.String(32), nullable=False),
    sa.Column("item", sa.Integer, nullable=False),
    sa.Column("model_version", sa.Integer),
    sa.Column("designation", sa.String(TITLE_CHARS)),
    sa.Column("description_length", sa.Integer, nullable=False),
    sa.Column("has_image", sa.Boolean, nullable=False),
    sa.Column("image_width", sa.Integer),
    sa.Column("image_height", sa.Integer),
    sa.Column("image_bytes", sa.Integer),
    sa.Column("image_brightness", sa.Float),
    sa.Column("image_saturation", sa.Float),
    sa.Column("image_red", sa.Float),
    sa.Column("image_green", sa.Float),
    sa.Column("image_blue", sa.Float),
    sa.Column("predicted_code", sa.Integer, nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("origin", sa.String(16)),  # NULL in logs written before it existed: read as "api"
)
COLUMNS: Final = tuple(c.name for c in predictions.columns if c.name != "id")


class InferenceLogError(RakutenError):
    """The inference log database cannot be opened or read."""


@dataclass(frozen=True, slots=True)
class InferenceRecord:
    ts: datetime
    request_id: str
    route: str
    item: int
    model_version: int | None
    designation: str | None
    description_length: int
    has_image: bool
    predicted_code: int
    confidence: float
    latency_ms: float
    image_width: int | None = None
    image_height: int | None = None
    image_bytes: int | None = None
    image_brightness: float | None = None
    image_saturation: float | None = None
    image_red: float | None = None
    image_green: float | None = None
    image_blue: float | None = None
    origin: str = "api"

    def values(self) -> tuple[Any, ...]:
        """Column values in `COLUMNS` order (a plain tuple: the writer binds them without copies)."""
        title = self.designation[:TITLE_CHARS] if self.designation is not None else None
        return (
            self.ts,
            self.request_id,
            self.route,
            self.item,
            self.model_version,
            title,
            self.description_length,
            self.has_image,
            self.image_width,
            self.image_height,
            self.image_bytes,
            self.image_brightness,
            self.image_saturation,
            self.image_red,
            self.image_green,
            self.image_blue,
            self.predicted_code,
            self.confidence,
            self.latency_ms,
            self.origin,
        )


def open_engine(url: str, *, create: bool = True) -> sa.Engine:
    """An engine for the log (SQLite: WAL, busy timeout, folder created). `create` makes the table now;
    without it the table is made on the first write (the service starts even if the database is down)."""
    try:
        if url.startswith("sqlite"):
            path = sa.make_url(url).database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(url, connect_args={"timeout": 30})
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = sa.create_engine(url, pool_pre_ping=True)
        if create:
            create_tables(engine)
    except (sa.exc.SQLAlchemyError, ImportError) as exc:
        raise InferenceLogError(f"Cannot open the inference log at {_safe(url)}: {exc}") from exc
    return engine


def create_tables(engine: sa.Engine) -> None:
    """The log's table, and the columns later versions added to a log an older version created."""
    metadata.create_all(engine, checkfirst=True)
    present = {c["name"] for c in sa.inspect(engine).get_columns(predictions.name)}
    missing = [c for c in predictions.columns if c.name not in present]
    with engine.begin() as conn:
        for column in missing:  # nullable, no default: a cheap ALTER on SQLite and PostgreSQL alike
            kind = column.type.compile(dialect=engine.dialect)
            conn.exec_driver_sql(f"ALTER TABLE {predictions.name} ADD COLUMN {column.name} {kind}")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer, several writers queue
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; safe in WAL mode
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _safe(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable URL>"


class _Insert:
    """The INSERT statement compiled once for the engine's driver, executed with the driver's own
    `executemany`: SQLAlchemy's per-row Python work (~30 µs a row) would hold the GIL long enough
    to stall the event loop serving requests. Values go through each column type's bind processor
    (e.g. datetimes to SQLite's text format), so SQLAlchemy reads the rows back as it wrote them."""

    def __init__(self, engine: sa.Engine) -> None:
        statement = predictions.insert().values({name: sa.bindparam(name) for name in COLUMNS})
        compiled = statement.compile(dialect=engine.dialect)
        self.sql = str(compiled)
        order = compiled.positiontup if engine.dialect.positional else None
        names = list(order) if order else list(COLUMNS)
        index = {name: COLUMNS.index(name) for name in names}
        self.names, self.index = names, index
        self.positional = engine.dialect.positional
        self.processors = [
            (i, proc)
            for i, name in enumerate(COLUMNS)
            if (proc := _processor(predictions.c[name].type, engine.dialect)) is not None
        ]

    def params(self, records: Sequence[InferenceRecord]) -> list[Any]:
        out: list[Any] = []
        for record in records:
            values = list(record.values())
            for i, proc in self.processors:
                values[i] = proc(values[i])
            if self.positional:
                out.append(tuple(values[self.index[n]] for n in self.names))
            else:
                out.append(dict(zip(COLUMNS, values, strict=True)))
        return out


def _processor(column_type: sa.types.TypeEngine[Any], dialect: sa.Dialect) -> Any:
    return column_type.dialect_impl(dialect).bind_processor(dialect)


def write(engine: sa.Engine, records: Sequence[InferenceRecord], insert: _Insert | None = None) -> None:
    if records:
        insert = insert or _Insert(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql(insert.sql, insert.params(records))


def prune(engine: sa.Engine, retention_days: int, *, now: datetime | None = None) -> int:
    """Delete records older than `retention_days` (0 keeps everything); returns how many went."""
    if retention_days <= 0:
        return 0
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    with engine.begin() as conn:
        return int(conn.execute(predictions.delete().where(predictions.c.ts < cutoff)).rowcount or 0)


def read_inference_log(
    settings: Settings,
    *,
    since: datetime | None = None,
    last: int | None = None,
    engine: sa.Engine | None = None,
) -> pd.DataFrame:
    """Logged predictions, oldest first: those after `since`, and at most the `last` N of them.

    An absent log reads as an empty table with the log's columns."""
    own = engine is None
    engine = engine or open_engine(str(settings.inference_log_url))
    query = sa.select(*[predictions.c[name] for name in ("id", *COLUMNS)])
    if since is not None:
        # stored in UTC (SQLite keeps the wall time only): compare in UTC too
        since = since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)
        query = query.where(predictions.c.ts >= since)
    query = query.order_by(predictions.c.id.desc())
    if last is not None:
        query = query.limit(last)
    try:
        with engine.connect() as conn:
            frame = pd.read_sql(query, conn)
    except sa.exc.SQLAlchemyError as exc:
        raise InferenceLogError(f"Cannot read the inference log: {exc}") from exc
    finally:
        if own:
            engine.dispose()
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    frame["origin"] = frame["origin"].fillna("api")
    numeric = [c.name for c in predictions.columns if c.name.startswith("image_")]
    frame[numeric] = frame[numeric].astype("float64")  # all-NULL columns would read as objects
    return frame.iloc[::-1].reset_index(drop=True)


class InferenceLogWriter:
    """Queue + background thread inserting records in batches. `record` never blocks or raises.

    `on_failure(n)` / `on_written(n)` / `on_dropped(n)` let the service count what happens (metrics);
    records beyond `max_pending` while the database is unreachable are dropped oldest first, and counted."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        batch: int = 500,
        retry_s: float = 1.0,
        max_pending: int = 100_000,
        retention_days: int = 0,
        on_written: Callable[[int], None] = lambda n: None,
        on_failure: Callable[[int], None] = lambda n: None,
        on_dropped: Callable[[int], None] = lambda n: None,
    ) -> None:
        self.engine = engine
        self.batch = batch
        self.retry_s = retry_s
        self.max_pending = max_pending
        self.retention_days = retention_days
        self.on_written, self.on_failure, self.on_dropped = on_written, on_failure, on_dropped
        self._queue: queue.SimpleQueue[InferenceRecord | threading.Event | None] = queue.SimpleQueue()
        self._pending: list[InferenceRecord] = []
        self._thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
        self._closed = False
        self._deadline = float("inf")
        self._insert: _Insert | None = None  # made once the database answers (table created)

    def start(self) -> InferenceLogWriter:
        self._thread.start()
        return self

    def record(self, records: InferenceRecord | Sequence[InferenceRecord]) -> None:
        if isinstance(records, InferenceRecord):
            self._queue.put(records)
        else:
            for r in records:
                self._queue.put(r)

    @property
    def pending(self) -> int:
        return len(self._pending) + self._queue.qsize()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything recorded so far is written (or `timeout`); True when it was."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued (retrying until `timeout`), then stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._deadline = time.monotonic() + timeout
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive() or self._pending:
            log.error("inference log closed with %d record(s) unwritten", self.pending)

    # --- the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        waiters: list[threading.Event] = []
        next_prune = 0.0
        stopping = False
        while not stopping or self._pending:
            for item in self._drain(block=not self._pending):
                if item is None:
                    stopping = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    self._pending.append(item)
            self._cap()
            if self._pending and not self._write_pending():
                if stopping and time.monotonic() > self._deadline:
                    break
                time.sleep(self.retry_s)
                continue
            if not self._pending:
                for waiter in waiters:
                    waiter.set()
                waiters.clear()
            if self.retention_days and time.monotonic() >= next_prune:
                next_prune = time.monotonic() + 3600
                self._prune()
        for waiter in waiters:
            waiter.set()

    def _drain(self, *, block: bool) -> Iterator[InferenceRecord | threading.Event | None]:
        try:
            yield self._queue.get(timeout=0.5) if block else self._queue.get_nowait()
        except queue.Empty:
            return
        for _ in range(self.batch * 4):
            try:
                yield self._queue.get_nowait()
            except queue.Empty:
                return

    def _cap(self) -> None:
        extra = len(self._pending) - self.max_pending
        if extra > 0:
            del self._pending[:extra]
            self.on_dropped(extra)
            log.error("inference log: %d record(s) dropped, the database is unreachable", extra)

    def _write_pending(self) -> bool:
        while self._pending:
            chunk = self._pending[: self.batch]
            try:
                if self._insert is None:
                    create_tables(self.engine)
                    self._insert = _Insert(self.engine)
                write(self.engine, chunk, self._insert)
            except Exception as exc:  # any driver error: keep the records, count, retry later
                self.on_failure(len(chunk))
                log.warning("inference log write failed (%d queued, will retry): %s", self.pending, exc)
                return False
            del self._pending[: len(chunk)]
            self.on_written(len(chunk))
        return True

    def _prune(self) -> None:
        try:
            gone = prune(self.engine, self.retention_days)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("inference log retention pass failed: %s", exc)
            return
        if gone:
            log.info("inference log: %d record(s) older than %d days removed", gone, self.retention_days)
