"""The Dask cluster that heavy steps fan out to, chosen by one setting (`RAKUTEN_DASK_ADDRESS`):
unset = this process as before, no Dask; `local` = a temporary cluster of `workers` processes on this
machine for the length of the work; an address = that scheduler (`dask scheduler` + `dask worker`s,
or the full stack's services). `cluster()` opens a client (the process's default, which joblib's
`dask` backend and the `map_ordered` helper use) and closes it; `probe()` is the health check."""
# Lazy imports: `distributed` (~1 s, and a thread pool) loads only where a cluster is configured.

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

from core.config import Settings
from core.errors import RakutenError

if TYPE_CHECKING:
    from distributed import Client
    from joblib import Parallel

    from core.progress import StageProgress  # a sibling of the foundations layer: for typing only

log = logging.getLogger(__name__)

LOCAL: Final = "local"
SETTING: Final = "RAKUTEN_DASK_ADDRESS"
T = TypeVar("T")
R = TypeVar("R")


class ClusterUnavailable(RakutenError):
    """The Dask scheduler named by the setting cannot be reached."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(
            f"Cannot reach the Dask scheduler at {address} ({SETTING}): {reason}. Start it "
            f"(`dask scheduler`, then `dask worker {address}`), correct the address, or unset {SETTING} "
            "to run on this machine."
        )
        self.address = address


class ClusterError(RakutenError):
    """Work sent to the cluster failed there (a task kept killing its workers, or the cluster went away)."""


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    address: str
    threads: int
    memory_limit: int  # bytes (0: none)
    memory_used: int  # bytes, as the worker last reported


@dataclass(frozen=True)
class ClusterInfo:
    """What a cluster offers: its scheduler, dashboard and workers."""

    address: str
    dashboard: str | None
    workers: tuple[WorkerInfo, ...]

    @property
    def threads(self) -> int:
        return sum(w.threads for w in self.workers)

    def summary(self) -> str:
        """E.g. `2 Dask workers (2 threads, 4.0 GiB) at tcp://127.0.0.1:8786`."""
        memory = sum(w.memory_limit for w in self.workers) / 2**30
        plural = "" if len(self.workers) == 1 else "s"
        size = f"{self.threads} threads, {memory:.1f} GiB"
        return f"{len(self.workers)} Dask worker{plural} ({size}) at {self.address}"


def describe(client: Client) -> ClusterInfo:
    info = client.scheduler_info(n_workers=-1)
    workers = tuple(
        WorkerInfo(
            name=str(w.get("name", address)),
            address=address,
            threads=int(w.get("nthreads", 0)),
            memory_limit=int(w.get("memory_limit") or 0),
            memory_used=int((w.get("metrics") or {}).get("memory") or 0),
        )
        for address, w in sorted(info.get("workers", {}).items())
    )
    return ClusterInfo(str(info.get("address", "")), client.dashboard_link, workers)


def tasks_stage(client: Client) -> str:
    """The progress stage of work on the cluster, naming it: `Dask tasks (2 workers)`."""
    workers = len(describe(client).workers)
    return f"Dask tasks ({workers} worker{'' if workers == 1 else 's'})"


def reported(
    results: Iterable[R], client: Client | None, total: int, progress: StageProgress | None
) -> Iterator[R]:
    """`results` (a joblib generator's: one job, one cluster task) as they come, each reported as one
    more of `total` tasks done on the cluster (`tasks_stage`); nothing is reported without a client."""
    if client is None or progress is None:
        yield from results
        return
    stage = tasks_stage(client)
    for done, result in enumerate(results, start=1):
        progress(stage, done, total)
        yield result


def task_window(client: Client) -> int:
    """Tasks to keep in flight on the cluster: two per worker thread (one running, one queued behind it)."""
    return 2 * max(describe(client).threads, 1)


def parallel(
    workers: int, client: Client | None = None, *, backend: str = "loky", **options: Any
) -> Parallel:
    """joblib's `Parallel`: `workers` local processes (`backend="threading"`: threads), or every thread of
    the cluster's workers when there is a client (joblib's own `dask` backend: a large argument is sent
    to the cluster once per call, not once per job)."""
    from joblib import Parallel, parallel_config

    if client is None:
        return Parallel(n_jobs=max(1, workers), backend=backend, **options)
    with parallel_config(backend="dask", client=client):
        return Parallel(**options)


@contextmanager
def cluster(settings: Settings) -> Iterator[Client | None]:
    """A client of the configured cluster (None when none is configured: the caller works in this
    process); closed on exit, a temporary local cluster with it."""
    address = settings.dask_address
    if not address:
        yield None
        return
    from distributed import Client, LocalCluster

    if address == LOCAL:
        with (
            LocalCluster(
                n_workers=settings.n_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.WARNING,
            ) as local,
            Client(local) as client,
        ):
            yield client
        return
    try:
        client = Client(address, timeout=settings.dask_connect_timeout_s)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterUnavailable(address, _reason(exc)) from exc
    try:
        yield client
    finally:
        client.close()


def probe(settings: Settings) -> ClusterInfo | None:
    """The configured cluster as it stands now (None when none is configured); `ClusterUnavailable`
    when its scheduler does not answer. A temporary local cluster is not started to be probed."""
    if not settings.dask_address or settings.dask_address == LOCAL:
        return None
    with cluster(settings) as client:
        assert client is not None
        return describe(client)


def map_ordered(
    client: Client | None,
    function: Callable[..., R],
    items: Iterable[T],
    *args: Any,
    window: int,
    progress: StageProgress | None = None,
    tasks: int | None = None,
) -> Iterator[R]:
    """`function(item, *args)` for each item, yielded in the items' order. On a cluster at most `window`
    tasks are in flight (and so in memory); a worker lost mid-task has its tasks run again elsewhere
    (the scheduler's own retry), so every item is answered exactly once. `args` may hold futures (a
    model scattered once to every worker). Without a client: this process, one item at a time.

    On a cluster, `progress` hears `tasks_stage(client)`: tasks done of `len(items)`, of the `tasks`
    hint for items read as they come (a chunked file), else of the tasks submitted so far. Without a
    client it hears nothing: the callers report their own rows."""
    if client is None:
        for item in items:
            yield function(item, *args)
        return
    from distributed import CancelledError
    from distributed.scheduler import KilledWorker

    stage = tasks_stage(client) if progress is not None else ""
    expected = len(items) if isinstance(items, Sized) else (tasks or 0)
    pending: deque[Any] = deque()
    submitted = done = 0

    def answer() -> R:
        nonlocal done
        result: R = pending.popleft().result()
        done += 1
        if progress is not None:  # a low hint is outgrown rather than overshot
            progress(stage, done, max(expected, submitted))
        return result

    try:
        for item in items:
            pending.append(client.submit(function, item, *args, pure=False))
            submitted += 1
            if len(pending) >= window:
                yield answer()
        while pending:
            yield answer()
    except KilledWorker as exc:
        raise ClusterError(
            f"A task kept losing its Dask worker ({exc}): the workers may be running out of memory. Give "
            "them more (dask worker --memory-limit) or lower RAKUTEN_BATCH_CHUNK_ROWS."
        ) from exc
    except (CancelledError, OSError) as exc:
        raise ClusterError(f"The Dask cluster went away mid-run: {_reason(exc)}.") from exc
    finally:
        if pending:
            client.cancel(list(pending))


def _reason(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__
