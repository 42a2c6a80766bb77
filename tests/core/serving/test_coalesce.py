"""The coalescer: calls that arrive while one runs go together next, each caller gets its own answer."""

from __future__ import annotations

import asyncio
import threading

import pytest

from core.serving.coalesce import Coalescer


class Recorder:
    """`run` for a coalescer: doubles each item; the first call waits until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = threading.Event()

    def __call__(self, items: list[int]) -> list[int]:
        if not self.batches:
            self.release.wait(5)
        self.batches.append(items)
        if -1 in items:
            raise ValueError("bad item")
        return [2 * i for i in items]


async def _gather_while_first_runs(
    coalescer: Coalescer[int, int], run: Recorder, items: list[int]
) -> list[object]:
    first = asyncio.ensure_future(coalescer(items[0]))
    await asyncio.sleep(0.05)  # the first call is running (and held)
    rest = [asyncio.ensure_future(coalescer(i)) for i in items[1:]]
    await asyncio.sleep(0.05)
    run.release.set()
    return await asyncio.gather(first, *rest, return_exceptions=True)


def test_calls_arriving_meanwhile_go_together_in_order() -> None:
    run = Recorder()
    coalescer = Coalescer(run)
    answers = asyncio.run(_gather_while_first_runs(coalescer, run, list(range(10))))
    assert answers == [2 * i for i in range(10)]
    assert run.batches == [[0], list(range(1, 10))]


def test_batches_are_capped() -> None:
    run = Recorder()
    coalescer = Coalescer(run, max_batch=4)
    answers = asyncio.run(_gather_while_first_runs(coalescer, run, list(range(10))))
    assert answers == [2 * i for i in range(10)]
    assert [len(b) for b in run.batches] == [1, 4, 4, 1]


def test_an_error_reaches_each_caller_of_its_batch_only() -> None:
    run = Recorder()
    coalescer = Coalescer(run, max_batch=3)
    answers = asyncio.run(_gather_while_first_runs(coalescer, run, [1, 2, -1, 3, 4, 5]))
    assert run.batches == [[1], [2, -1, 3], [4, 5]]
    assert answers[0] == 2 and answers[4:] == [8, 10]
    assert all(isinstance(a, ValueError) for a in answers[1:4])


def test_a_caller_gone_is_skipped_and_the_others_answered() -> None:
    run = Recorder()
    coalescer = Coalescer(run)

    async def main() -> list[object]:
        first = asyncio.ensure_future(coalescer(1))
        await asyncio.sleep(0.05)
        gone, kept = asyncio.ensure_future(coalescer(2)), asyncio.ensure_future(coalescer(3))
        await asyncio.sleep(0)
        gone.cancel()
        run.release.set()
        return await asyncio.gather(first, kept)

    assert asyncio.run(main()) == [2, 6]


def test_a_new_event_loop_starts_clean() -> None:
    run = Recorder()
    run.release.set()
    coalescer = Coalescer(run)
    assert asyncio.run(coalescer(1)) == 2
    assert asyncio.run(coalescer(2)) == 4  # a second loop (as each test client has its own)


def test_alone_a_call_runs_at_once() -> None:
    run = Recorder()
    run.release.set()
    coalescer = Coalescer(run)

    async def main() -> list[int]:
        return [await coalescer(i) for i in range(3)]

    assert asyncio.run(main()) == [0, 2, 4]
    assert run.batches == [[0], [1], [2]]


@pytest.mark.parametrize("n", [1, 50])
def test_many_concurrent_callers_all_answered(n: int) -> None:
    run = Recorder()
    run.release.set()
    coalescer = Coalescer(run, max_batch=8)

    async def main() -> list[int]:
        return list(await asyncio.gather(*(coalescer(i) for i in range(n))))

    assert asyncio.run(main()) == [2 * i for i in range(n)]
    assert sorted(i for b in run.batches for i in b) == list(range(n))
