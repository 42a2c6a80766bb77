"""The challenge files as users download them: where they are, how they are named, how to read them.

Both namings are accepted (`X_train_update.csv` / `X_train.csv`, ...). Reading is strict about what makes
a file unusable (encoding, delimiter, missing columns: `DataFormatError`) and lenient about single bad
lines, which come back separately so that ingestion can quarantine them instead of losing them.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import pandas as pd

from core.errors import DataFormatError, DataNotFoundError

Split = Literal["train", "test"]

X_NAMES: Final[dict[Split, tuple[str, ...]]] = {
    "train": ("X_train_update.csv", "X_train.csv"),
    "test": ("X_test_update.csv", "X_test.csv"),
}
Y_NAMES: Final[tuple[str, ...]] = ("Y_train_CVw08PX.csv", "Y_train.csv")
IMAGE_DIRS: Final[dict[Split, str]] = {"train": "images/image_train", "test": "images/image_test"}
X_COLUMNS: Final[tuple[str, ...]] = ("designation", "description", "productid", "imageid")
Y_COLUMNS: Final[tuple[str, ...]] = ("prdtypecode",)
ID: Final = "id"
_ID_HEADERS: Final = frozenset({"", "id", "index", "unnamed: 0"})


def image_name(imageid: int, productid: int) -> str:
    """File name of a product image, exactly as in the download."""
    return f"image_{imageid}_product_{productid}.jpg"


@dataclass(frozen=True)
class ChallengeFiles:
    """Paths of one data directory's challenge files (test and images are optional)."""

    root: Path
    x_train: Path
    y_train: Path
    x_test: Path | None
    image_dirs: dict[Split, Path | None]
    notes: tuple[str, ...] = ()

    @property
    def naming(self) -> str:
        return "official" if self.x_train.name == X_NAMES["train"][0] else "renamed"


def locate(data_dir: Path) -> ChallengeFiles:
    """Find the challenge files in `data_dir` under either naming."""
    if not data_dir.is_dir():
        raise DataNotFoundError(
            f"Data directory {data_dir} does not exist. Put the challenge files there, point "
            "RAKUTEN_DATA_DIR at them, or generate demo data with `python -m core demo-data`."
        )
    notes: list[str] = []

    def pick(names: tuple[str, ...], required: bool) -> Path | None:
        found = [data_dir / n for n in names if (data_dir / n).is_file()]
        if len(found) > 1:
            notes.append(f"both {found[0].name} and {found[1].name} exist; using {found[0].name}")
        if not found and required:
            raise DataNotFoundError(
                f"No {' or '.join(names)} in {data_dir}. Expected the files as downloaded from the "
                "challenge (or renamed X_train.csv / Y_train.csv / X_test.csv); "
                "`python -m core demo-data` writes a demo set in the same layout."
            )
        return found[0] if found else None

    x_train = pick(X_NAMES["train"], required=True)
    y_train = pick(Y_NAMES, required=True)
    x_test = pick(X_NAMES["test"], required=False)
    assert x_train is not None and y_train is not None
    image_dirs: dict[Split, Path | None] = {}
    for split, rel in IMAGE_DIRS.items():
        path = data_dir / rel
        image_dirs[split] = path if path.is_dir() else None
        if image_dirs[split] is None and (split == "train" or x_test is not None):
            notes.append(
                f"no {rel}/ folder: every {split} image will be reported missing (text is still used)"
            )
    return ChallengeFiles(data_dir, x_train, y_train, x_test, image_dirs, tuple(notes))


def fingerprint(files: ChallengeFiles) -> str:
    """Content hash of the CSV files: the data version that runs are tagged with."""
    h = hashlib.sha256()
    for path in (files.x_train, files.y_train, files.x_test):
        if path is None:
            continue
        h.update(path.name.encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def file_state(files: ChallengeFiles) -> dict[str, list[int]]:
    """Size and modification time of the CSV files: a free check before hashing them."""
    paths = [p for p in (files.x_train, files.y_train, files.x_test) if p is not None]
    return {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in paths}


def image_state(files: ChallengeFiles) -> dict[str, int]:
    """Modification time of each image folder: it changes whenever a file is added, removed or renamed,
    so noticing changes costs one stat per folder, not a listing of 85,000 files."""
    return {
        split: folder.stat().st_mtime_ns for split, folder in files.image_dirs.items() if folder is not None
    }


@dataclass
class ReadResult:
    """A challenge CSV read as strings, with the id column named `id`, plus lines that did not parse."""

    frame: pd.DataFrame
    bad_lines: list[list[str]] = field(default_factory=list)


def read_table(path: Path, columns: tuple[str, ...]) -> ReadResult:
    """Read one challenge CSV: unnamed integer id column first, then `columns`. All values as strings.

    Raises `DataFormatError` for what makes the whole file unusable: not UTF-8, another delimiter,
    an empty file, missing columns, no id column.
    """
    raw = _read_bytes(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            f"{path.name} is not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}). The challenge "
            "files are UTF-8: re-export the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`).",
            problem="encoding",
            path=str(path),
        ) from None
    if not text.strip():
        raise DataFormatError(f"{path.name} is empty.", problem="empty_file", path=str(path))

    header = next(csv.reader(io.StringIO(text.split("\n", 1)[0])), [])
    header = [h.strip() for h in header]
    _check_header(path, header, columns)

    bad: list[list[str]] = []
    kwargs = dict(dtype=str, keep_default_na=False, na_values=[""])
    try:
        frame = pd.read_csv(io.StringIO(text), **kwargs)  # type: ignore[call-overload]
    except pd.errors.ParserError:
        # Some lines have the wrong number of fields: re-read with the Python engine, keeping them aside.
        frame = pd.read_csv(
            io.StringIO(text), engine="python", on_bad_lines=lambda fields: bad.append(fields), **kwargs
        )  # type: ignore[call-overload]
    frame.columns = [ID if i == 0 else str(c).strip() for i, c in enumerate(frame.columns)]
    return ReadResult(frame[[ID, *columns]], bad)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataFormatError(
            f"Cannot read {path}: {exc.strerror}.", problem="unreadable_file", path=str(path)
        ) from exc


def _check_header(path: Path, header: list[str], columns: tuple[str, ...]) -> None:
    joined = ",".join(header)
    if len(header) == 1:
        for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
            if sep in joined:
                raise DataFormatError(
                    f"{path.name} is separated by {name}, not commas. The challenge files are "
                    "comma-separated CSV: re-export with ',' as the delimiter.",
                    problem="delimiter",
                    path=str(path),
                )
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataFormatError(
            f"{path.name} lacks the column(s) {', '.join(missing)}. Its header is {header!r}; expected an "
            f"unnamed id column followed by {', '.join(columns)}.",
            problem="missing_column",
            path=str(path),
        )
    if header[0].lower() not in _ID_HEADERS:
        raise DataFormatError(
            f"{path.name} has no id column: its first column is {header[0]!r}. The challenge files start "
            "with an unnamed integer row id (header ',designation,...'); keep it when re-saving "
            "(pandas: `to_csv(index=True)`).",
            problem="missing_id_column",
            path=str(path),
        )
