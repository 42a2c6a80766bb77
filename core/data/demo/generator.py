"""Demo dataset in the exact layout of the challenge download, deterministic for a seed.

`X_train_update.csv`, `Y_train_CVw08PX.csv`, `X_test_update.csv` with the unnamed integer id column
(test ids continue after train ids), and `images/image_{train,test}/image_<imageid>_product_<productid>.jpg`.
Classes follow the real shares; a little label noise stands in for the real data's mislabelled rows.
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from core.categories import CATEGORIES, CODES
from core.data.challenge import IMAGE_DIRS, X_NAMES, Y_NAMES, image_name
from core.data.demo.product_images import product_jpeg
from core.data.demo.product_text import TextGenerator, TextStyle, related_classes
from core.errors import RakutenError
from core.progress import StageProgress, silent

log = logging.getLogger(__name__)

REAL_TRAIN_ROWS: Final = 84_916
REAL_TEST_ROWS: Final = 13_812
_CHUNK: Final = 64


@dataclass(frozen=True)
class DemoSpec:
    """What to generate. `test_rows` defaults to the real test/train ratio.

    `image_rows` (with `images`) writes JPEGs for the first `image_rows` train rows and the same share of
    test rows only; the other products have no image file. None: every row gets one.
    """

    rows: int
    seed: int = 42
    test_rows: int | None = None
    images: bool = True
    label_noise: float = 0.03
    style: TextStyle = field(default_factory=TextStyle)
    image_rows: int | None = None

    def __post_init__(self) -> None:
        if self.image_rows is not None and self.image_rows < 0:
            raise ValueError(f"image_rows must be ≥ 0 or None, not {self.image_rows}")

    @property
    def n_test(self) -> int:
        if self.test_rows is not None:
            return self.test_rows
        return round(self.rows * REAL_TEST_ROWS / REAL_TRAIN_ROWS)

    def n_images(self, split: str) -> int:
        """How many rows of `split` ("train" or "test") get an image (the first ones)."""
        n = self.rows if split == "train" else self.n_test
        if not self.images:
            return 0
        if self.image_rows is None:
            return n
        if split == "train":
            return min(self.image_rows, n)
        return min(round(self.image_rows * self.n_test / self.rows), n) if self.rows else 0


@dataclass(frozen=True)
class DemoTables:
    x_train: pd.DataFrame
    y_train: pd.DataFrame
    x_test: pd.DataFrame
    true_train: np.ndarray  # the class each train product was generated from (before label noise)
    true_test: np.ndarray


def class_counts(n: int) -> dict[int, int]:
    """Rows per class for `n` rows: the real shares, largest remainder, at least one per class if n ≥ 27."""
    shares = np.array([c.share for c in CATEGORIES])
    shares = shares / shares.sum()
    exact = shares * n
    counts = np.floor(exact).astype(int)
    if n >= len(CODES):
        counts = np.maximum(counts, 1)
    for i in np.argsort(-(exact - np.floor(exact))):
        if counts.sum() >= n:
            break
        counts[i] += 1
    while counts.sum() > n:
        counts[int(np.argmax(counts))] -= 1
    return dict(zip(CODES, counts.tolist(), strict=True))


def _labels(rng: random.Random, n: int) -> list[int]:
    labels = [code for code, k in class_counts(n).items() for _ in range(k)]
    rng.shuffle(labels)
    return labels


def _noisy(rng: random.Random, labels: Sequence[int], rate: float) -> list[int]:
    out = list(labels)
    for i, code in enumerate(out):
        if rng.random() < rate:
            siblings = related_classes(code)
            out[i] = rng.choice(siblings) if siblings and rng.random() < 0.6 else rng.choice(CODES)
    return out


def generate_tables(spec: DemoSpec) -> DemoTables:
    """The three CSV tables (in memory), deterministic for `spec.seed`."""
    rng = random.Random(spec.seed)
    n_train, n_test = spec.rows, spec.n_test
    true_train, true_test = _labels(rng, n_train), _labels(rng, n_test)
    gen = TextGenerator(spec.style)
    texts = [gen.product(rng, code) for code in true_train + true_test]
    productids = rng.sample(range(100_000, 4_300_000_000), n_train + n_test)
    imageids = rng.sample(range(900_000_000, 1_340_000_000), n_train + n_test)
    x = pd.DataFrame(
        {
            "designation": [t for t, _ in texts],
            "description": [d for _, d in texts],
            "productid": productids,
            "imageid": imageids,
        }
    )
    labels = _noisy(rng, true_train, spec.label_noise)
    x_train = x.iloc[:n_train].reset_index(drop=True)
    x_test = x.iloc[n_train:].reset_index(drop=True)
    x_test.index += n_train  # test ids continue after train ids, as in the download
    y_train = pd.DataFrame({"prdtypecode": labels})
    return DemoTables(x_train, y_train, x_test, np.array(true_train), np.array(true_test))


def _write_images(job: tuple[int, Sequence[tuple[int, int, str]], str]) -> int:
    seed, items, folder = job
    for idx, code, name in items:
        data = product_jpeg(code, np.random.default_rng([seed, idx]))
        (Path(folder) / name).write_bytes(data)
    return len(items)


def write_demo(
    out_dir: Path,
    spec: DemoSpec,
    *,
    workers: int = 1,
    overwrite: bool = False,
    progress: StageProgress | None = None,
) -> DemoTables:
    """Write the demo dataset into `out_dir`, all or nothing.

    Refuses to replace existing challenge files unless `overwrite` (they may be the real data).
    """
    existing = [n for n in (*X_NAMES["train"], *X_NAMES["test"], *Y_NAMES) if (out_dir / n).exists()]
    if existing and not overwrite:
        raise RakutenError(
            f"{out_dir} already holds {', '.join(existing)}; not overwriting (it may be the real data). "
            "Use another --out directory or pass --overwrite."
        )
    step: StageProgress = progress or silent
    tables = generate_tables(spec)
    step("text", 1, 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".demo-", dir=out_dir))
    try:
        tables.x_train.to_csv(staging / X_NAMES["train"][0], index=True)
        tables.y_train.to_csv(staging / Y_NAMES[0], index=True)
        tables.x_test.to_csv(staging / X_NAMES["test"][0], index=True)
        if spec.images:
            _write_all_images(staging, spec, tables, workers, step)
        _swap_in(staging, out_dir, images=spec.images)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info(
        "demo data: %d train + %d test rows (%d + %d images) in %s",
        spec.rows,
        spec.n_test,
        spec.n_images("train"),
        spec.n_images("test"),
        out_dir,
    )
    return tables


def _write_all_images(
    staging: Path, spec: DemoSpec, t: DemoTables, workers: int, step: StageProgress
) -> None:
    jobs: list[tuple[int, Sequence[tuple[int, int, str]], str]] = []
    offset = 0
    total = 0
    for split, x, codes in (("train", t.x_train, t.true_train), ("test", t.x_test, t.true_test)):
        folder = staging / IMAGE_DIRS[split]  # type: ignore[index]
        folder.mkdir(parents=True)
        items = [
            (offset + i, int(code), image_name(img, prd))
            for i, (code, img, prd) in enumerate(zip(codes, x["imageid"], x["productid"], strict=True))
        ]
        # The offset counts every row, so a row's picture is the same whether or not later rows get one.
        offset += len(items)
        items = items[: spec.n_images(split)]
        total += len(items)
        jobs += [(spec.seed, items[i : i + _CHUNK], str(folder)) for i in range(0, len(items), _CHUNK)]
    done = 0
    step("images", 0, total)
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for n in pool.map(_write_images, jobs):
                done += n
                step("images", done, total)
    else:
        for job in jobs:
            done += _write_images(job)
            step("images", done, total)


def _swap_in(staging: Path, out_dir: Path, *, images: bool) -> None:
    """Move the finished files into place; old images are replaced as whole folders."""
    if images:
        for rel in IMAGE_DIRS.values():
            target = out_dir / rel
            if target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            (staging / rel).replace(target)
    for name in (X_NAMES["train"][0], Y_NAMES[0], X_NAMES["test"][0]):
        (staging / name).replace(out_dir / name)
