"""Scale-out on a real Dask cluster: a `dask scheduler` and two `dask worker` processes (each a nanny and
its worker, one thread) started here, as a user starts them on their machines. Image encoding, text
embedding, the cross-validated training and batch scoring give the numbers one process gives, and report
their tasks done / total on the cluster besides their own progress; a worker killed mid-run loses and
repeats no output row."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from distributed import Client, get_task_stream

from core.config import Settings
from core.features.build import FeatureSet
from core.features.cache import ImageFeatureCache
from core.features.image import get_encoder
from core.features.pretrained import INSTALL, vision_installed
from core.features.sentence import INSTALL as EMBEDDINGS_INSTALL
from core.features.sentence import TextEmbeddingCache, embeddings_installed, get_text_encoder
from core.models.train import train
from core.params import Params
from core.pipeline.catalogue import STAGE as SCORING
from core.pipeline.catalogue import BatchReport, score_file
from core.progress import StageProgress
from core.tracking import store
from tests.conftest import free_port, require_extra

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
CHUNK = 50
TASKS = "Dask tasks (2 workers)"


class Heard:
    """A progress callback that keeps what it hears (not a list: an empty one would be falsy, and
    `progress or silent` would drop it)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.calls.append((stage, done, total))

    def of(self, stage: str) -> list[tuple[int, int]]:
        return [(done, total) for s, done, total in self.calls if s == stage]

    def besides(self, stage: str) -> list[tuple[str, int, int]]:
        return [heard for heard in self.calls if heard[0] != stage]


def _wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on port {port} after {timeout} s")


@pytest.fixture(scope="module")
def dask_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`dask scheduler` and two `dask worker`s (one thread, 2 GiB each) on free ports; stopped after."""
    dask = shutil.which("dask") or str(Path(sys.executable).with_name("dask"))
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": "1",
    }
    logs = tmp_path_factory.mktemp("dask")
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str) -> None:
        log = (logs / f"{name}.log").open("wb")
        processes.append(subprocess.Popen([dask, *args], env=env, stdout=log, stderr=subprocess.STDOUT))

    try:
        start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
        _wait_for_port(port, 60)
        for name in ("w1", "w2"):
            start(
                name,
                "worker",
                address,
                "--name",
                name,
                "--nthreads",
                "1",
                "--nworkers",
                "1",
                "--memory-limit",
                "2GiB",
                "--no-dashboard",
                "--local-directory",
                str(logs / name),
            )
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _settings(root: Path, address: str | None) -> Settings:
    return Settings(root=root, dask_address=address, batch_chunk_rows=CHUNK, dask_connect_timeout_s=30)


def _catalogue(root: Path, folder: Path, copies: int) -> Path:
    """X_test `copies` times over (fresh ids), as a CSV like the download's."""
    source = pd.read_csv(next((root / "data" / "raw").glob("X_test*.csv")), index_col=0)
    parts = []
    for k in range(copies):
        part = source.copy()
        part.index = part.index + k * 1_000_000
        parts.append(part)
    path = folder / "catalogue.csv"
    pd.concat(parts).to_csv(path)
    return path


def _score(
    root: Path, source: Path, output: Path, address: str | None, progress: StageProgress | None = None
) -> BatchReport:
    """Score `source` with the project's v1 and its test photos, on the cluster at `address` (None: here)."""
    classifier = store.load_classifier(Settings(root=root), version=1)
    images = root / "data" / "raw" / "images" / "image_test"
    return score_file(
        classifier, 1, source, output, _settings(root, address), images_dir=images, progress=progress
    )


def test_batch_scoring_on_the_cluster_gives_the_numbers_of_one_process(
    trained_project: Path, dask_address: str, tmp_path: Path
) -> None:
    source = _catalogue(trained_project, tmp_path, 2)
    alone = _score(trained_project, source, tmp_path / "alone.parquet", None)
    heard = Heard()
    spread = _score(trained_project, source, tmp_path / "cluster.parquet", dask_address, heard)
    chunks = [done for done, _ in heard.of(TASKS)]
    assert chunks == list(range(1, spread.chunks + 1)) and heard.of(TASKS)[-1] == (
        spread.chunks,
        spread.chunks,
    )
    assert heard.of(SCORING)[-1] == (spread.rows_written, spread.rows_written)
    assert (
        alone.cluster is None and spread.cluster is not None and spread.cluster.startswith("2 Dask workers")
    )
    assert spread.rows_written == alone.rows_written == spread.rows_read
    one, many = pd.read_parquet(tmp_path / "alone.parquet"), pd.read_parquet(tmp_path / "cluster.parquet")
    assert len(one) == len(pd.read_csv(source)) and one["prdtypecode"].notna().all()
    pd.testing.assert_frame_equal(one, many)


def test_a_worker_killed_mid_run_loses_and_repeats_no_row(
    trained_project: Path, dask_address: str, tmp_path: Path
) -> None:
    source = _catalogue(trained_project, tmp_path, 8)
    _score(trained_project, source, tmp_path / "alone.parquet", None)

    with Client(dask_address, timeout=30) as client:
        pids = client.run(os.getpid)  # worker address -> the worker process (its nanny restarts it)
    victim = sorted(pids.values())[0]
    killed: list[int] = []

    def kill_once(stage: str, done: int, total: int) -> None:
        if stage == SCORING and done >= 2 * CHUNK and not killed:  # a few chunks written, several in flight
            os.kill(victim, signal.SIGKILL)
            killed.append(done)

    report = _score(trained_project, source, tmp_path / "cluster.parquet", dask_address, kill_once)
    assert killed, "the worker was not killed mid-run"
    with pytest.raises(ProcessLookupError):
        os.kill(victim, 0)
    assert report.rows_written == report.rows_read == len(pd.read_csv(source))
    one, many = pd.read_parquet(tmp_path / "alone.parquet"), pd.read_parquet(tmp_path / "cluster.parquet")
    assert many["id"].is_unique
    pd.testing.assert_frame_equal(one, many)
    with Client(dask_address, timeout=30) as client:  # the nanny brought a fresh worker back
        client.wait_for_workers(2, timeout=120)


def test_a_network_on_a_worker_uses_the_worker_s_threads_not_every_core(dask_address: str) -> None:
    from core.features.pretrained import _worker_threads

    with Client(dask_address, timeout=30) as client:
        assert client.submit(_worker_threads, pure=False).result() == 1  # `--nthreads 1`
    assert _worker_threads() is None  # here, not in a worker: ONNX Runtime takes every core


def _photos(root: Path, n: int) -> list[str]:
    return [str(p) for p in sorted((root / "data" / "raw" / "images" / "image_train").glob("*.jpg"))[:n]]


@pytest.mark.parametrize("encoder", ["colour_edge", "efficientnet_lite0"])
def test_image_encoding_on_the_cluster_gives_the_numbers_of_one_process(
    trained_project: Path, dask_address: str, tmp_path: Path, encoder: str
) -> None:
    if encoder != "colour_edge":
        require_extra("vision", vision_installed(), INSTALL)
    paths = _photos(trained_project, 150)
    paths.append(str(tmp_path / "missing.jpg"))  # an unreadable one: ok=False on both paths
    here, ok_here = ImageFeatureCache(tmp_path / "here", get_encoder(encoder)).features(paths, workers=1)
    cache = ImageFeatureCache(tmp_path / "cluster", get_encoder(encoder))
    heard = Heard()
    with Client(dask_address, timeout=30) as client, get_task_stream(client) as stream:
        there, ok_there = cache.features(paths, client=client, progress=heard)
    tasks = -(-len(paths) // 128)
    assert len(stream.data) == tasks  # tasks of 128 photos, run by the workers
    assert heard.of(TASKS) == [(done, tasks) for done in range(1, tasks + 1)]
    np.testing.assert_array_equal(ok_here, ok_there)
    assert ok_here[:-1].all() and not ok_here[-1]
    np.testing.assert_allclose(there, here, rtol=1e-5, atol=1e-6)
    assert cache.last_stats.encoded == len(paths) - 1
    again = ImageFeatureCache(tmp_path / "cluster", get_encoder(encoder))  # written to the content cache
    cached, _ = again.features(paths)
    assert again.last_stats.encoded == 0
    np.testing.assert_array_equal(cached, there)


def test_text_embedding_on_the_cluster_gives_the_numbers_of_one_process(
    dask_address: str, tmp_path: Path
) -> None:
    require_extra("embeddings", embeddings_installed(), EMBEDDINGS_INSTALL)
    texts = [f"passage: Lot de {n} piles alcalines AA longue durée, marque {n % 7}" for n in range(300)]
    encoder = get_text_encoder("e5_small", 32)
    here = TextEmbeddingCache(tmp_path / "here", encoder).features(texts)
    with Client(dask_address, timeout=30) as client, get_task_stream(client) as stream:
        there = TextEmbeddingCache(tmp_path / "cluster", encoder).features(texts, client=client)
    assert len(stream.data) == -(-len(texts) // 128)
    np.testing.assert_allclose(there, here, rtol=1e-4, atol=1e-5)


def test_cross_validated_training_on_the_cluster_gives_the_model_of_one_process(
    trained_project: Path, dask_address: str
) -> None:
    features = FeatureSet.load(Settings(root=trained_project).features_dir)
    params = Params()
    here, there = Heard(), Heard()
    alone = train(features, params, workers=2, progress=here)
    with Client(dask_address, timeout=30) as client, get_task_stream(client) as stream:
        spread = train(features, params, workers=2, client=client, progress=there)
    assert len({task["worker"] for task in stream.data}) == 2  # the fits ran on both workers
    assert (
        not here.of(TASKS) and there.besides(TASKS) == here.calls
    )  # the step's own progress as in one process
    fits = [total for done, total in there.of(TASKS) if done == total]  # each search's, then the folds'
    assert fits and fits[-1] == here.of("cross-fitting")[-1][1]
    assert spread.summary["search"] == alone.summary["search"]  # the same hyper-parameters chosen
    assert alone.out_of_fold is not None and spread.out_of_fold is not None
    for view, proba in alone.out_of_fold.probas.items():
        np.testing.assert_allclose(spread.out_of_fold.probas[view], proba, rtol=1e-7, atol=1e-9, err_msg=view)
    test = features.part("test")
    here = alone.classifier.proba_from_features(test.products, test.image_features, test.has_image)
    there = spread.classifier.proba_from_features(test.products, test.image_features, test.has_image)
    np.testing.assert_allclose(there, here, rtol=1e-7, atol=1e-9)
