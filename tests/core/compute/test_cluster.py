"""The cluster setting: unset = this process; `local` = a temporary cluster; an address that does not
answer = an error that names the setting; `map_ordered` answers every item once, in order, and on a
cluster reports its tasks done / total (`tasks_stage`), as `reported` does for joblib's jobs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from joblib import delayed

from core.compute.cluster import (
    ClusterUnavailable,
    cluster,
    describe,
    map_ordered,
    parallel,
    probe,
    reported,
    tasks_stage,
)
from core.config import Settings
from tests.conftest import free_port


def _slow_square(x: int) -> int:
    time.sleep(0.05 * (x % 3))  # later items finish first now and then: the order is map_ordered's
    return x * x


def _fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"item {x} is bad")
    return x


class _Heard:
    """A progress callback that keeps what it hears (not a list: an empty one would be falsy)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.calls.append((stage, done, total))


def test_unset_or_empty_means_this_process(tmp_path: Path) -> None:
    for value in (None, "", "  "):
        settings = Settings(root=tmp_path, dask_address=value)
        assert settings.dask_address is None
        with cluster(settings) as client:
            assert client is None
        assert probe(settings) is None
    heard = _Heard()
    assert list(map_ordered(None, _slow_square, range(5), window=1, progress=heard)) == [0, 1, 4, 9, 16]
    assert list(reported(iter([1, 2]), None, 2, heard)) == [1, 2]
    assert heard.calls == []  # no cluster: the callers report their own rows


def test_cluster_tasks_are_reported_done_of_total_in_order() -> None:
    from distributed import Client, LocalCluster

    heard = _Heard()
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as local,
        Client(local) as client,
    ):
        stage = tasks_stage(client)
        assert stage == "Dask tasks (2 workers)"
        assert list(map_ordered(client, _slow_square, range(6), window=2, progress=heard)) == [
            x * x for x in range(6)
        ]
        assert heard.calls == [(stage, done, 6) for done in range(1, 7)]

        heard.calls.clear()  # items read as they come: of the hint, outgrown when it was low
        assert list(map_ordered(client, _slow_square, iter(range(5)), window=2, progress=heard, tasks=3)) == [
            x * x for x in range(5)
        ]
        assert heard.calls == [(stage, 1, 3), (stage, 2, 3), (stage, 3, 4), (stage, 4, 5), (stage, 5, 5)]
        heard.calls.clear()  # no hint: of the tasks submitted so far
        list(map_ordered(client, _slow_square, iter(range(3)), window=2, progress=heard))
        assert heard.calls == [(stage, 1, 2), (stage, 2, 3), (stage, 3, 3)]

        heard.calls.clear()  # joblib's jobs on the cluster, one task each
        jobs = parallel(2, client, return_as="generator")(delayed(_slow_square)(x) for x in range(4))
        assert list(reported(jobs, client, 4, heard)) == [0, 1, 4, 9]
        assert heard.calls == [(stage, done, 4) for done in range(1, 5)]


def test_an_unreachable_scheduler_names_the_setting(tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    settings = Settings(root=tmp_path, dask_address=address, dask_connect_timeout_s=1)
    with pytest.raises(ClusterUnavailable) as caught, cluster(settings):
        pass
    message = str(caught.value)
    assert "RAKUTEN_DASK_ADDRESS" in message and address in message and "dask scheduler" in message
    with pytest.raises(ClusterUnavailable):
        probe(settings)


@pytest.mark.slow
def test_a_temporary_local_cluster_answers_in_order_and_goes_away(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path, dask_address="local", workers=2)
    with cluster(settings) as client:
        assert client is not None
        assert len(client.scheduler_info(n_workers=-1)["workers"]) == 2
        assert list(map_ordered(client, _slow_square, range(20), window=4)) == [x * x for x in range(20)]
        with pytest.raises(ValueError, match="item 7 is bad"):  # a task's own error, as raised there
            list(map_ordered(client, _fail_on, range(10), 7, window=3))
        pids = set(parallel(2, client)(delayed(os.getpid)() for _ in range(6)))
        assert os.getpid() not in pids  # joblib's jobs ran on the cluster's processes
        address = describe(client).address
    assert client.status == "closed"
    gone = Settings(root=tmp_path, dask_address=address, dask_connect_timeout_s=1)
    with pytest.raises(ClusterUnavailable), cluster(gone):  # the temporary cluster left with its client
        pass
