"""The inference log: one row per prediction the service made, for drift monitoring and audits.

Writes go through `InferenceLogWriter`, a background thread fed by a queue: a request never waits
for the database, records are inserted in batches, a failed insert is retried (records stay queued,
failures are counted) and closing the writer flushes everything. SQLite in WAL mode by default —
several API worker processes can write the same file — or any SQLAlchemy URL (PostgreSQL in the
full stack). `read_inference_log` is the one way to read it back (drift monitoring uses it).

What review needs is kept too: the description, each view's own answer, the top codes and, for the
predictions review will look at, the photo — written by the same background thread into the review
inputs folder, named by its content hash (`keep_photo`), so a request never waits for the disk.
"""
# Size: schema, background writer, retention and readers of one table, for SQLite and PostgreSQL.

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pandas as pd
import sqlalchemy as sa

from core.config import Settings
from core.errors import RakutenError
from core.io import atomic_path

log = logging.getLogger(__name__)

TITLE_CHARS: Final = 512  # the title is kept for text drift; longer ones are cut
DESCRIPTION_CHARS: Final = 2_000  # enough for a reviewer to judge; longer ones are cut
TOP_CODES: Final = 5  # the ranked codes kept per prediction (`top_codes`)
# Who asked: any API client, the console (through the API or in its own process), the traffic simulator.
ORIGINS: Final = ("api", "console", "simulator")
ORIGIN_HEADER: Final = "X-Rakuten-Origin"

metadata = sa.MetaData()
predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),  # POST /feedback looks it up
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
    # What review needs (NULL in logs written before them):
    sa.Column("description", sa.Text),
    sa.Column("text_code", sa.Integer),  # the TF-IDF text view's own answer
    sa.Column("image_code", sa.Integer),  # the photo view's own answer
    sa.Column("top_codes", sa.String(400)),  # JSON: [[code, probability], ...], best first
    sa.Column("image_file", sa.String(128)),  # the kept photo, in the review inputs folder
    sa.Column("photo_unfamiliar", sa.Boolean),  # the photo was unlike the model's training photos
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
    description: str | None = None
    text_code: int | None = None
    image_code: int | None = None
    top_codes: str | None = None
    image_file: str | None = None
    photo_unfamiliar: bool | None = None
    # The photo to keep for review (not a column): the writer stores it and names it in `image_file`.
    photo: bytes | None = field(default=None, repr=False, compare=False)

    def values(self) -> tuple[Any, ...]:
        """Column values in `COLUMNS` order (a plain tuple: the writer binds them without copies)."""
        title = self.designation[:TITLE_CHARS] if self.designation is not None else None
        description = self.description[:DESCRIPTION_CHARS] if self.description is not None else None
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
            description,
            self.text_code,
            self.image_code,
            self.top_codes,
            self.image_file,
            self.photo_unfamiliar,
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
    """The log's table, and the columns and indexes later versions added to a log an older version
    created (an index on a large old log takes a while, once: the writer's thread waits, not requests)."""
    metadata.create_all(engine, checkfirst=True)
    present = {c["name"] for c in sa.inspect(engine).get_columns(predictions.name)}
    missing = [c for c in predictions.columns if c.name not in present]
    with engine.begin() as conn:
        for column in missing:  # nullable, no default: a cheap ALTER on SQLite and PostgreSQL alike
            kind = column.type.compile(dialect=engine.dialect)
            conn.exec_driver_sql(f"ALTER TABLE {predictions.name} ADD COLUMN {column.name} {kind}")
        for index in predictions.indexes:
            columns = ", ".join(c.name for c in index.columns)
            conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {index.name} ON {predictions.name} ({columns})")


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
    frame[_IMAGE_NUMBERS] = frame[_IMAGE_NUMBERS].astype("float64")  # all-NULL columns would read as objects
    frame[["text_code", "image_code"]] = frame[["text_code", "image_code"]].astype("Int64")
    return frame.iloc[::-1].reset_index(drop=True)


_IMAGE_NUMBERS: Final = [
    c.name
    for c in predictions.columns
    if c.name.startswith("image_") and c.name not in ("image_code", "image_file")
]
_FOUND: Final = ("predicted_code", "model_version", "designation", "description", "image_file")
_FIND: Final = (
    sa.select(*[predictions.c[name] for name in _FOUND])
    .where(predictions.c.request_id == sa.bindparam("rid"), predictions.c.item == sa.bindparam("item"))
    .order_by(predictions.c.id.desc())
    .limit(1)
)


def find_prediction(engine: sa.Engine, request_id: str, item: int) -> dict[str, Any] | None:
    """The logged prediction of one product of one request (the latest, should a client have reused a
    request id): its predicted code, model version, title, description and kept photo; None if absent.
    One indexed SELECT (its compiled form cached by SQLAlchemy): POST /feedback waits on it."""
    try:
        with engine.connect() as conn:
            row = conn.execute(_FIND, {"rid": request_id, "item": item}).mappings().first()
    except sa.exc.SQLAlchemyError as exc:
        if not _has_table(engine):  # nothing logged yet: the writer makes the table on its first write
            return None
        raise InferenceLogError(f"Cannot read the inference log: {exc}") from exc
    return None if row is None else dict(row)


def _has_table(engine: sa.Engine) -> bool:
    try:
        return sa.inspect(engine).has_table(predictions.name)
    except sa.exc.SQLAlchemyError:
        return True  # the database itself is unreachable: say so, not "unknown request"


_MAGIC: Final = ((b"\xff\xd8\xff", "jpg"), (b"\x89PNG\r\n\x1a\n", "png"))


def photo_name(data: bytes) -> str | None:
    """A photo's file name in the review inputs folder: the first 32 hex digits of its SHA-256 and its
    kind's suffix from the magic bytes (jpg, png, webp); None for bytes that are none of those."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        suffix = "webp"
    else:
        suffix = next((kind for magic, kind in _MAGIC if data.startswith(magic)), "")
    return f"{hashlib.sha256(data).hexdigest()[:32]}.{suffix}" if suffix else None


def keep_photo(data: bytes, folder: Path) -> str | None:
    """Store a photo in `folder` under `photo_name` (atomically: a reader never sees half a file; once:
    the same photo sent again is not rewritten); its file name, None when it is not a photo.
    Raises `OSError` when the folder cannot be written."""
    name = photo_name(data)
    if name is None:
        return None
    target = folder / name
    if not target.exists():
        with atomic_path(target) as tmp:
            tmp.write_bytes(data)
    return name


class InferenceLogWriter:
    """Queue + background thread inserting records in batches (a record waits up to `linger_s` for
    others, so a busy service makes one insert per batch, not per request). `record` never blocks or raises.

    `on_failure(n)` / `on_written(n)` / `on_dropped(n)` let the service count what happens (metrics);
    records beyond `max_pending` while the database is unreachable are dropped oldest first, and counted.
    A record's photo is stored in `inputs_dir` (`keep_photo`) before the record is queued for insertion,
    then dropped from memory; a photo that cannot be written is logged and counted (`photo_failures`,
    `on_photo_failure`), and its record written without it. Without `inputs_dir` photos are not kept."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        batch: int = 500,
        linger_s: float = 0.05,
        retry_s: float = 1.0,
        max_pending: int = 100_000,
        retention_days: int = 0,
        on_written: Callable[[int], None] = lambda n: None,
        on_failure: Callable[[int], None] = lambda n: None,
        on_dropped: Callable[[int], None] = lambda n: None,
        inputs_dir: Path | None = None,
        on_photo_failure: Callable[[int], None] = lambda n: None,
    ) -> None:
        self.engine = engine
        self.inputs_dir = inputs_dir
        self.on_photo_failure = on_photo_failure
        self.photo_failures = 0
        self.batch = batch
        self.linger_s = linger_s
        self.retry_s = retry_s
        self.max_pending = max_pending
        self.retention_days = retention_days
        self.on_written, self.on_failure, self.on_dropped = on_written, on_failure, on_dropped
        self._queue: queue.SimpleQueue[InferenceRecord | threading.Event | None] = queue.SimpleQueue()
        self._hurry = threading.Event()  # set by flush and close: stop lingering for more records
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
        self._hurry.set()
        return done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued (retrying until `timeout`), then stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._deadline = time.monotonic() + timeout
        self._queue.put(None)
        self._hurry.set()
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
                    self._pending.append(item if item.photo is None else self._keep_photo(item))
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
        """What is queued: after a first record, whatever else came within `linger_s`, so that many
        small requests make one insert, not one each (a flush or close ends the wait). One wake-up per
        batch, not per record: waking for each took the GIL from the requests ~0.1 ms at a time."""
        try:
            item = self._queue.get(timeout=0.5) if block else self._queue.get_nowait()
        except queue.Empty:
            return
        yield item
        if isinstance(item, InferenceRecord) and self._queue.qsize() < self.batch:
            self._hurry.wait(self.linger_s)
        self._hurry.clear()
        for _ in range(1, self.batch * 4):
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            yield item

    def _keep_photo(self, record: InferenceRecord) -> InferenceRecord:
        """The record naming its stored photo, without the bytes (or without either, if not stored)."""
        if self.inputs_dir is None or record.photo is None:
            return replace(record, photo=None)
        try:
            name = keep_photo(record.photo, self.inputs_dir)
        except OSError as exc:  # a full or read-only disk: the record still goes to the log
            self.photo_failures += 1
            self.on_photo_failure(1)
            log.warning("review photo of %s:%d not kept: %s", record.request_id, record.item, exc)
            name = None
        return replace(record, photo=None, image_file=name)

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
