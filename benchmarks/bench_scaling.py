"""Scale-out on Dask, measured as a user runs it: `python -m core predict --input --output` on a catalogue
of 1,000,000 demo products (Parquet parts), in one process and through a real `dask scheduler` with two
`dask worker` processes (one thread each), with each process's peak memory polled; then image encoding
photos/s on one and on two workers, beside this process's own path.

On a 2-core machine the cluster's two workers share the cores with the driver (which reads, orders and
writes): the numbers say what the cluster path costs here and how it scales, not what more machines give.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import pandas as pd
import psutil
from bench_serving import _free_port  # beside this script, as run.py imports both

from core.config import Settings
from core.data.demo.generator import DemoSpec, generate_tables, write_demo
from core.features.cache import ImageFeatureCache
from core.features.image import get_encoder, resolve_encoder
from core.params import Params
from core.pipeline import run_pipeline

Row = tuple[str, str, str]
REPO = Path(__file__).resolve().parents[1]
PART_ROWS = 100_000
PHOTOS = 1_000
WARM = 512  # four tasks of 128 photos: each worker gets at least one


def run(root: Path, workers: int, rows: int = 1_000_000) -> list[Row]:
    project = root / "project"
    write_demo(project / "data" / "raw", DemoSpec(rows=3_000), workers=workers)
    run_pipeline(Settings(root=project), Params(), workers=workers)
    catalogue = _catalogue(root / "catalogue", rows)
    out: list[Row] = []
    alone = _score(project, catalogue, root / "alone.parquet", None)
    with _cluster(root / "dask", 2) as (address, nannies):
        spread = _score(project, catalogue, root / "cluster.parquet", address, nannies)
    same = pd.read_parquet(root / "alone.parquet", columns=["id", "prdtypecode"]).equals(
        pd.read_parquet(root / "cluster.parquet", columns=["id", "prdtypecode"])
    )
    verdict = "identical" if same else "DIFFERENT"
    out += [
        (
            f"Batch scoring {rows:,} products (text), one process",
            f"{alone.seconds:.0f} s, {rows / alone.seconds:,.0f} rows/s, peak {alone.driver_mib:,.0f} MiB",
            "bounded memory",
        ),
        (
            f"Batch scoring {rows:,} products, Dask: 2 workers × 1 thread",
            f"{spread.seconds:.0f} s, {rows / spread.seconds:,.0f} rows/s "
            f"({alone.seconds / spread.seconds:.2f}× one process); answers {verdict}",
            "identical answers",
        ),
        (
            "  peak memory: each worker / the driver",
            f"{' / '.join(f'{m:,.0f}' for m in spread.worker_mib)} / {spread.driver_mib:,.0f} MiB",
            "< 2 GiB per worker",
        ),
    ]
    encoding, per_photo, efficiency = _encoding(project, root, workers)
    return out + encoding + projection(per_photo, alone.seconds / rows, efficiency)


SIZES: Final = (84_916, 1_000_000, 10_000_000)
WORKERS: Final = (1, 8, 32)


def projection(photo_s: float, product_s: float, efficiency: float) -> list[Row]:
    """Hours to encode every photo and score every product (photos included) of catalogues of `SIZES`
    on `WORKERS` one-core workers: the measured per-item costs × size ÷ (workers × efficiency), the
    efficiency measured on two workers (capped at 1; one worker is 1 by definition)."""
    rows: list[Row] = []
    for size in SIZES:
        cells = []
        for n in WORKERS:
            speed = n * (1.0 if n == 1 else min(efficiency, 1.0))
            hours = size * (photo_s + product_s) / speed / 3600
            cells.append(f"{hours:,.1f} h on {n}" if hours >= 1 else f"{hours * 60:,.0f} min on {n}")
        rows.append(
            (f"Projection: {size:,} products with photos, encoded and scored", " · ".join(cells), "—")
        )
    return rows


def _catalogue(folder: Path, rows: int) -> Path:
    """`rows` demo products in Parquet parts of 100,000: 100,000 generated ones again and again, fresh ids."""
    folder.mkdir(parents=True)
    base = generate_tables(DemoSpec(rows=min(rows, PART_ROWS), images=False, test_rows=0, seed=7)).x_train
    base = base.rename_axis("id").reset_index()
    for k, start in enumerate(range(0, rows, PART_ROWS)):
        part = base.head(min(PART_ROWS, rows - start)).copy()
        part["id"] = range(start, start + len(part))
        part.to_parquet(folder / f"part-{k:03d}.parquet", index=False)
    return folder


class _Scored:
    def __init__(self, seconds: float, driver_mib: float, worker_mib: list[float]) -> None:
        self.seconds, self.driver_mib, self.worker_mib = seconds, driver_mib, worker_mib


def _score(
    project: Path, source: Path, output: Path, address: str | None, nannies: tuple[int, ...] = ()
) -> _Scored:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAKUTEN_", "MLFLOW_", "PREFECT_"))}
    env |= {"RAKUTEN_ROOT": str(project), "PYTHONPATH": str(REPO)}
    if address:
        env["RAKUTEN_DASK_ADDRESS"] = address
    command = [sys.executable, "-m", "core", "predict", "--input", str(source), "--output", str(output)]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    watched = [process.pid, *nannies]
    peaks = _poll_peaks(watched, lambda: process.poll() is not None)
    _, err = process.communicate()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"predict failed: {err.decode()[-2000:]}")
    return _Scored(seconds, peaks[0], peaks[1:])


def _poll_peaks(pids: list[int], done: Callable[[], bool]) -> list[float]:
    """Peak resident MiB of each process tree in `pids` (the process and its children), polled every 0.2 s."""
    peaks = [0.0] * len(pids)
    while not done():
        for i, pid in enumerate(pids):
            try:
                tree = psutil.Process(pid)
                rss = tree.memory_info().rss + sum(c.memory_info().rss for c in tree.children(recursive=True))
            except psutil.Error:
                continue
            peaks[i] = max(peaks[i], rss / 2**20)
        time.sleep(0.2)
    return peaks


@contextmanager
def _cluster(folder: Path, n_workers: int) -> Iterator[tuple[str, tuple[int, ...]]]:
    """`dask scheduler` + `n_workers` × `dask worker --nthreads 1` (2 GiB each); the nannies' pids."""
    from distributed import Client

    dask = shutil.which("dask") or str(Path(sys.executable).with_name("dask"))
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    folder.mkdir(parents=True, exist_ok=True)
    log = (folder / "dask.log").open("ab")
    processes = [
        subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    ]
    try:
        for i in range(n_workers):
            processes.append(
                subprocess.Popen(
                    [
                        dask,
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--memory-limit",
                        "2GiB",
                        "--no-dashboard",
                        "--local-directory",
                        str(folder / f"w{i}"),
                    ],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        time.sleep(2)
        with Client(address, timeout=60) as client:
            client.wait_for_workers(n_workers, timeout=120)
        yield address, tuple(p.pid for p in processes[1:])
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _encoding(project: Path, root: Path, workers: int) -> tuple[list[Row], float, float]:
    """Photos/s of the pretrained encoder (colour/edge without the vision extra): this process (its own
    batches and threads), then a cluster of one worker, then of two."""
    from distributed import Client

    name = resolve_encoder("auto")
    photos = sorted((project / "data" / "raw" / "images" / "image_train").glob("*.jpg"))
    paths = [str(p) for p in photos[WARM : WARM + PHOTOS]]
    warm = [str(p) for p in photos[:WARM]]

    def rate(folder: str, client: Client | None = None) -> float:
        # every worker loads the network on its first task: those tasks are not what is measured
        ImageFeatureCache(root / "warm" / folder, get_encoder(name)).features(warm, client=client)
        cache = ImageFeatureCache(root / "encode" / folder, get_encoder(name))
        started = time.perf_counter()
        cache.features(paths, workers=workers, client=client)
        return len(paths) / (time.perf_counter() - started)

    here = rate("here")
    rates: dict[int, float] = {}
    for n in (1, 2):
        with _cluster(root / f"dask-enc{n}", n) as (address, _), Client(address) as client:
            rates[n] = rate(f"cluster{n}", client)
    efficiency = rates[2] / (2 * rates[1])
    rows = [
        (
            f"Image encoding ({name}), {len(paths)} photos, this process ({workers} threads)",
            f"{here:.1f} photos/s",
            "—",
        ),
        ("  on a Dask cluster of 1 worker × 1 thread", f"{rates[1]:.1f} photos/s", "—"),
        (
            "  on a Dask cluster of 2 workers × 1 thread",
            f"{rates[2]:.1f} photos/s (scaling efficiency {efficiency:.0%})",
            "efficiency reported",
        ),
    ]
    return rows, 1 / rates[1], efficiency
