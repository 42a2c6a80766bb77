"""Batch scoring of a catalogue of any size with the champion (`python -m core predict --input --output`).

The input (a CSV or Parquet file, or a folder of them: partitioned output of another job) is streamed in
chunks of `batch_chunk_rows` products, never read whole; each chunk is scored on this process or, with
`RAKUTEN_DASK_ADDRESS` set, on a Dask worker (the model sent once to every worker), and the answers are
appended in the input's order to a file that replaces the output in one rename when every chunk is done.
The chunks are the same either way, so the cluster gives the very numbers one process gives.

Nothing is dropped silently: a line the CSV parser cannot read is counted and shown in the report; a
product with neither title nor readable photo is written with an empty answer and its `problem`; an
unreadable photo leaves the answer to the text (`problem` says so). The report (`<output>.report.json`)
counts it all."""
# Size: reading, scoring and writing a stream are one story with one invariant (rows in = rows out).

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from core.compute.cluster import ClusterInfo, cluster, describe, map_ordered, task_window
from core.config import Settings
from core.data.challenge import image_name
from core.errors import DataFormatError, DataNotFoundError, ImageDecodeError
from core.features.image import get_encoder, open_image
from core.features.text import model_columns
from core.io import atomic_path, write_text
from core.progress import StageProgress, silent

if TYPE_CHECKING:
    from core.models.classifier import ProductClassifier

STAGE: Final = "batch scoring"
SUFFIXES: Final = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
TEXT: Final = ("designation", "description")
IMAGE_COLUMNS: Final = ("image_path", "productid", "imageid")
ANSWER: Final = ("prdtypecode", "category", "confidence", "problem")
NO_INPUT: Final = "no title and no readable photo"
BAD_PHOTO: Final = "photo unreadable, answered from the text"
NO_PHOTO_FILE: Final = "photo not found, answered from the text"
BAD_IDS: Final = "productid / imageid not whole numbers: no photo, answered from the text"
_SHOWN: Final = 20  # bad lines quoted in the report


@dataclass
class BatchReport:
    """What one batch scoring did; written beside the output as `<output>.report.json`."""

    input: str
    output: str
    version: int
    rows_read: int = 0
    rows_written: int = 0
    answered: int = 0
    problems: dict[str, int] = field(default_factory=dict)
    unreadable_lines: int = 0
    unreadable_examples: list[str] = field(default_factory=list)
    chunks: int = 0
    seconds: float = 0.0
    cluster: str | None = None  # the cluster's summary, None in one process

    @property
    def rows_per_s(self) -> float:
        return self.rows_written / self.seconds if self.seconds else 0.0


def report_path(output: Path) -> Path:
    return output.with_name(output.name + ".report.json")


# --- input -----------------------------------------------------------------------------------------------
def input_files(path: Path) -> list[Path]:
    """The files to score: `path` itself, or every CSV / Parquet file under the folder `path`
    (sorted: the output keeps that order). One kind only."""
    if not path.exists():
        raise DataNotFoundError(f"Input {path} does not exist.")
    if path.is_file():
        files = [path]
    else:
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not files:
            raise DataNotFoundError(f"No .csv or .parquet file under {path}.")
    kinds = {SUFFIXES.get(p.suffix.lower()) for p in files}
    if None in kinds:
        raise DataFormatError(
            f"{path} is neither CSV nor Parquet (.csv, .parquet): convert it, or name it by its format.",
            problem="unsupported_input",
            path=str(path),
        )
    if len(kinds) > 1:
        raise DataFormatError(
            f"{path} mixes CSV and Parquet files: score each kind on its own.",
            problem="mixed_input",
            path=str(path),
        )
    return files


@dataclass
class _Unreadable:
    """Lines the CSV parser skipped (too many or too few fields), counted and a few quoted."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def __call__(self, row: Any) -> str:
        self.count += 1
        if len(self.examples) < _SHOWN:
            self.examples.append(
                f"{row.actual_columns} fields instead of {row.expected_columns}: {row.text[:200]}"
            )
        return "skip"


def _csv_batches(path: Path, unreadable: _Unreadable) -> Iterator[pd.DataFrame]:
    try:
        header = pd.read_csv(path, nrows=0, encoding="utf-8").columns.tolist()
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataFormatError(
            f"{path} is not a UTF-8 CSV with a header line: {exc}", problem="unreadable_csv"
        ) from exc
    names = ["" if str(h).startswith("Unnamed: ") else str(h) for h in header]
    reader = pa_csv.open_csv(
        path,
        read_options=pa_csv.ReadOptions(block_size=8 << 20, column_names=names, skip_rows=1),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=unreadable),
        convert_options=pa_csv.ConvertOptions(
            column_types={n: pa.string() for n in names},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    for batch in reader:  # the download's unnamed first column is the product id
        frame = batch.to_pandas()
        yield frame.rename(columns={"": "id"}) if "" in frame.columns and "id" not in frame.columns else frame


def _parquet_batches(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    try:
        source = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise DataFormatError(
            f"{path} is not a readable Parquet file: {exc}", problem="unreadable_parquet"
        ) from exc
    for batch in source.iter_batches(batch_size=rows):
        yield batch.to_pandas()


def read_chunks(files: Sequence[Path], rows: int, unreadable: _Unreadable) -> Iterator[pd.DataFrame]:
    """The files' products in chunks of exactly `rows` (the last one fewer), whatever the files' own
    blocks: the same chunks every time, on any engine. Checked: a title column, every chunk."""
    held: list[pd.DataFrame] = []
    n_held = 0
    for path in files:
        batches = (
            _csv_batches(path, unreadable)
            if SUFFIXES[path.suffix.lower()] == "csv"
            else _parquet_batches(path, rows)
        )
        for frame in batches:
            if "designation" not in frame.columns:
                raise DataFormatError(
                    f"{path} has no 'designation' column (the product title); columns: {list(frame.columns)}",
                    problem="missing_column",
                    path=str(path),
                )
            held.append(frame)
            n_held += len(frame)
            while n_held >= rows:
                whole = pd.concat(held, ignore_index=True)
                yield whole.iloc[:rows].reset_index(drop=True)
                held, n_held = [whole.iloc[rows:]], len(whole) - rows
    if n_held:
        yield pd.concat(held, ignore_index=True)


# --- scoring (runs on a worker) --------------------------------------------------------------------------
def _given(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip()


def _photo(row: Mapping[Any, Any], images_dir: str | None) -> str | None:
    """The product's photo: its `image_path`, else the download's name for its ids under `images_dir`
    (ValueError when those ids are not whole numbers)."""
    path = _given(row.get("image_path"))
    if path:
        return path
    product, image = _given(row.get("productid")), _given(row.get("imageid"))
    if images_dir and product and image:
        return str(Path(images_dir) / image_name(int(float(image)), int(float(product))))
    return None


def score_chunk(chunk: pd.DataFrame, classifier: ProductClassifier, images_dir: str | None) -> pd.DataFrame:
    """The chunk's answers: its own columns but the texts, then `ANSWER`. Pure but for reading photos."""
    titles = chunk["designation"].fillna("").astype(str)
    descriptions = (
        chunk["description"].fillna("").astype(str)
        if "description" in chunk
        else pd.Series("", index=chunk.index)
    )
    has_text = (titles.str.strip() != "").to_numpy()
    problems = np.full(len(chunk), "", dtype=object)
    side = get_encoder(classifier.encoder).side
    pictures: list[Any] = []
    image_columns = [c for c in IMAGE_COLUMNS if c in chunk.columns]
    records = chunk[image_columns].to_dict("records") if image_columns else [{}] * len(chunk)
    for i, row in enumerate(records):
        picture = None
        try:
            path = _photo(row, images_dir) if classifier.image is not None else None
            picture = open_image(path, side) if path is not None else None
        except ValueError:
            problems[i] = BAD_IDS
        except ImageDecodeError as exc:
            problems[i] = NO_PHOTO_FILE if exc.reason == "no such file" else BAD_PHOTO
        pictures.append(picture)
    features, has_image = classifier.encode_pictures(pictures)
    answered = has_text | has_image
    problems[~answered] = NO_INPUT
    at = np.flatnonzero(answered)  # a product with nothing to read gets no answer, not a guess
    codes = pd.Series(pd.NA, index=range(len(chunk)), dtype="Int64")
    categories = np.full(len(chunk), "", dtype=object)
    confidence = np.full(len(chunk), np.nan)
    if len(at):
        text = model_columns(titles.iloc[at].tolist(), descriptions.iloc[at].tolist())
        fused = classifier.views(text, features[at], has_image[at], has_text=has_text[at]).fused
        answers = classifier.answers(fused)
        codes.iloc[at] = answers["prdtypecode"].to_numpy()
        categories[at] = answers["category"].to_numpy()
        confidence[at] = answers["confidence"].to_numpy()
    out = chunk.drop(columns=[c for c in TEXT if c in chunk.columns]).reset_index(drop=True)
    out["prdtypecode"] = codes
    out["category"] = categories
    out["confidence"] = confidence
    out["problem"] = problems
    return out


# --- output ----------------------------------------------------------------------------------------------
class _Writer:
    """Appends answer chunks to a temporary file beside the output (Parquet or CSV by its suffix)."""

    def __init__(self, tmp: Path, kind: str) -> None:
        self.tmp, self.kind = tmp, kind
        self._parquet: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self._header = True

    def write(self, frame: pd.DataFrame) -> None:
        if self.kind == "csv":
            frame.to_csv(self.tmp, mode="w" if self._header else "a", header=self._header, index=False)
            self._header = False
            return
        try:
            table = pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DataFormatError(
                f"A column of the input changes type between its parts ({exc}): give every part the same "
                "columns and types, or write the answers as .csv.",
                problem="changing_types",
            ) from exc
        if self._parquet is None:
            self._schema = table.schema
            self._parquet = pq.ParquetWriter(self.tmp, self._schema)
        self._parquet.write_table(table)

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        elif self.kind == "csv" and self._header:  # nothing written: an empty file with the answer columns
            pd.DataFrame(columns=list(ANSWER)).to_csv(self.tmp, index=False)


def output_kind(output: Path) -> str:
    kind = SUFFIXES.get(output.suffix.lower())
    if kind is None:
        raise DataFormatError(
            f"Output {output} must end in .parquet or .csv (its format).",
            problem="unsupported_output",
            path=str(output),
        )
    return kind


# --- the whole run ---------------------------------------------------------------------------------------
def score_file(
    classifier: ProductClassifier,
    version: int,
    source: Path,
    output: Path,
    settings: Settings,
    *,
    images_dir: Path | None = None,
    progress: StageProgress | None = None,
) -> BatchReport:
    """Score every product of `source` into `output` (atomically), on the configured cluster if any."""
    step: StageProgress = progress or silent
    kind = output_kind(output)
    files = input_files(source)
    total = _count_rows(files)
    report = BatchReport(input=str(source), output=str(output), version=version)
    unreadable = _Unreadable()
    started = time.perf_counter()
    step(STAGE, 0, total)
    with cluster(settings) as client, atomic_path(output) as tmp:
        info: ClusterInfo | None = describe(client) if client is not None else None
        report.cluster = info.summary() if info is not None else None
        model: Any = classifier
        if client is not None:  # once to every worker, held there for every chunk
            model = client.scatter(classifier, broadcast=True, hash=False)
        window = task_window(client) if client is not None else 1
        writer = _Writer(tmp, kind)
        chunks = read_chunks(files, settings.batch_chunk_rows, unreadable)
        try:
            # the rows are estimated (`_count_rows`), and so are the chunks: a hint, outgrown if low
            tasks = -(-total // settings.batch_chunk_rows) if total else None
            for answers in map_ordered(
                client,
                score_chunk,
                _counted(chunks, report),
                model,
                _dir(images_dir),
                window=window,
                progress=step,
                tasks=tasks,
            ):
                writer.write(answers)
                report.chunks += 1
                report.rows_written += len(answers)
                for problem, n in answers["problem"].value_counts().items():
                    if problem:
                        report.problems[str(problem)] = report.problems.get(str(problem), 0) + int(n)
                step(STAGE, report.rows_written, max(total, report.rows_written))
        finally:
            writer.close()
        if report.rows_written != report.rows_read:  # the invariant the whole design serves
            raise RuntimeError(f"read {report.rows_read:,} products but wrote {report.rows_written:,}")
    report.answered = report.rows_written - report.problems.get(NO_INPUT, 0)
    report.unreadable_lines = unreadable.count
    report.unreadable_examples = unreadable.examples
    report.seconds = round(time.perf_counter() - started, 3)
    write_text(report_path(output), json.dumps(asdict(report), indent=2))
    return report


def _counted(chunks: Iterator[pd.DataFrame], report: BatchReport) -> Iterator[pd.DataFrame]:
    for chunk in chunks:
        report.rows_read += len(chunk)
        yield chunk


def _dir(images_dir: Path | None) -> str | None:
    return str(images_dir.resolve()) if images_dir is not None else None


def _count_rows(files: Sequence[Path]) -> int:
    """Products to expect, for the progress bar: Parquet's own count; CSV estimated from its size
    after a sample (exact counting would read the file twice)."""
    total = 0
    for path in files:
        if SUFFIXES[path.suffix.lower()] == "parquet":
            with contextlib.suppress(OSError, pa.ArrowInvalid):
                total += pq.ParquetFile(path).metadata.num_rows
        else:
            size = path.stat().st_size
            with path.open("rb") as fh:
                sample = fh.read(1 << 20)
            lines = max(sample.count(b"\n"), 1)
            total += int(size / max(len(sample), 1) * lines) - 1
    return max(total, 0)


def score_catalogue(
    settings: Settings,
    source: Path,
    output: Path,
    *,
    images_dir: Path | None = None,
    version: int | None = None,
    progress: StageProgress | None = None,
) -> BatchReport:
    """`score_file` with the champion (or `version`) from the registry."""
    # here, not above: a worker imports this module for `score_chunk` and needs no MLflow
    from core.tracking import store
    from core.tracking.registry import NoChampionError, open_registry

    chosen = version if version is not None else open_registry(settings, store.connect(settings)).champion()
    if chosen is None:
        raise NoChampionError(NoChampionError.TRAIN_FIRST)
    classifier = store.load_classifier(settings, version=chosen)
    return score_file(classifier, chosen, source, output, settings, images_dir=images_dir, progress=progress)
