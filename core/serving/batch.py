"""Large batches on every core. The text model's n-gram counting is pure Python and holds the GIL, so a
1,000-product batch would use one core; `BatchPool` splits its rows between this process and worker
processes, each holding the served model — loaded once per version from that version's immutable
local copy (`ServedModel.file`). Rows are scored independently, so the answers are the same numbers
as in one piece (a test holds them equal).
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from itertools import pairwise
from pathlib import Path
from typing import Final

import numpy as np
from threadpoolctl import threadpool_limits

from core.io import load_model
from core.models.classifier import ProductClassifier
from core.serving.holder import ServedModel

log = logging.getLogger(__name__)

MIN_ROWS: Final = 200  # below this, shipping rows to another process costs more than it saves
_loaded: dict[str, ProductClassifier] = {}  # inside a worker process: the model of the last file asked


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: leave when the API process is gone, however it ended (even SIGKILL) —
    a worker holds a model copy and must never outlive the service."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _score(file: str, designations: Sequence[str], descriptions: Sequence[str]) -> np.ndarray:
    model = _loaded.get(file)
    if model is None:
        _loaded.clear()  # one version at a time per worker
        model = _loaded[file] = load_model(Path(file))
        threadpool_limits(1)  # as in the service's own processes (`app.single_threaded_math`)
        gc.collect()
        gc.freeze()  # keep the model out of the cyclic collector's scans (see `app.settle_heap`)
    return model.proba_from_texts(designations, descriptions)


class BatchPool:
    """`processes` worker processes (0: score everything here). Start with `start`, stop with `close`."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._warming: list[Future[np.ndarray]] = []

    def start(self, model: ServedModel | None = None) -> BatchPool:
        if self.processes > 0:
            # spawn: the service has threads (log writer, alias watcher); forking them is unsafe
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                self.processes, mp_context=context, initializer=_exit_with_parent, initargs=(os.getpid(),)
            )
            if model is not None:
                self.warm(model)
        return self

    def warm(self, model: ServedModel) -> None:
        """Load `model` in the workers now (in the background), not on the first big batch."""
        if self._pool is not None and model.file is not None:
            self._warming = [
                self._pool.submit(_score, str(model.file), ["warm-up"], [""]) for _ in range(self.processes)
            ]

    def wait_warm(self, timeout: float) -> None:
        """Wait until the workers have loaded the model (at start-up: a service that says it is ready
        then answers at full speed, the workers' loading no longer taking CPU from its requests)."""
        wait(self._warming, timeout)

    def text_proba(
        self, model: ServedModel, designations: Sequence[str], descriptions: Sequence[str]
    ) -> np.ndarray:
        """`model.classifier.proba_from_texts`, split across the workers when the batch is large."""
        n = len(designations)
        if self._pool is None or model.file is None or n < MIN_ROWS:
            return model.classifier.proba_from_texts(designations, descriptions)
        bounds = np.linspace(0, n, self.processes + 2).astype(int).tolist()
        try:
            futures = [
                self._pool.submit(_score, str(model.file), designations[a:b], descriptions[a:b])
                for a, b in pairwise(bounds[1:])
            ]
            own = model.classifier.proba_from_texts(designations[: bounds[1]], descriptions[: bounds[1]])
            return np.vstack([own, *(f.result() for f in futures)])
        except (BrokenProcessPool, OSError) as exc:  # a worker died: answer anyway, then replace the pool
            log.error("batch worker failed (%s); scoring here and restarting the workers", exc)
            self.close(wait=False)
            self.start(model)
            return model.classifier.proba_from_texts(designations, descriptions)

    def close(self, *, wait: bool = True) -> None:
        """Stop the workers (waiting for them to exit unless `wait=False`)."""
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None
