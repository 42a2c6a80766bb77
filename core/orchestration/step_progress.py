"""A flow step's live progress as a Prefect progress artifact: the stages it reported (`StageProgress`),
published while it runs so the console (`flow_runs.step_progress`) can draw them under the steps' bar.

`Stages` is the pure part (what to show); `LiveProgress` publishes it for the task run it was made in,
from whichever thread reports, and never fails or holds up the step for it.
"""
# Lazy imports: Prefect (~2–4 s) loads where a run publishes; the console reads `description_lines`
# through `flow_runs` without it.

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, cast
from uuid import UUID

import httpx

log = logging.getLogger(__name__)

SHOWN: Final = 3  # stages in the description: the step's latest ones
BULLET: Final = "- "


@dataclass
class Stages:
    """The stages a step reported, newest first: a stage moves to the top when it is first reported or
    starts over (its count went down, or it had finished), not at every report — alternating reports
    (rows here, cluster tasks there) would otherwise swap the lines at every look."""

    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # stage -> (done, total)
    order: list[str] = field(default_factory=list)  # newest first

    def report(self, stage: str, done: int, total: int) -> None:
        before = self.counts.get(stage)
        if before is None or done < before[0] or before[0] >= before[1]:
            if stage in self.order:
                self.order.remove(stage)
            self.order.insert(0, stage)
        self.counts[stage] = (done, total)

    def lines(self, most: int = SHOWN) -> list[str]:
        """E.g. `["Dask tasks (2 workers): 12 / 40", "images (train): 1,200 / 84,916"]`."""
        return [f"{s}: {self.counts[s][0]:,} / {self.counts[s][1]:,}" for s in self.order[:most]]

    def percent(self) -> float:
        """The newest stage's done / total, 0–100 (a stage with nothing to do is done)."""
        if not self.order:
            return 0.0
        done, total = self.counts[self.order[0]]
        return 100.0 if total <= 0 else max(0.0, min(100.0, 100.0 * done / total))

    def markdown(self) -> str:
        return "\n".join(BULLET + line for line in self.lines())


def description_lines(description: str | None) -> tuple[str, ...]:
    """The stage lines of a published description (`Stages.markdown`)."""
    lines = (line.strip() for line in (description or "").splitlines())
    return tuple(line.removeprefix(BULLET) for line in lines if line)


class LiveProgress:
    """A `StageProgress` keeping one Prefect progress artifact for the task run it is made in: created at
    the first report, updated at most every `every_s` and at each stage's last report.

    Made inside the task run; reports may come from any thread (the run's context is captured here and
    each call runs in a copy of it). A Prefect API error is logged at DEBUG and publishing pauses for
    `pause_s`: the Prefect client retries a failing call for seconds, which the step must not wait for
    at every report. Outside a run it only keeps count."""

    def __init__(
        self, *, every_s: float = 1.0, pause_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        from prefect.context import FlowRunContext
        from prefect.exceptions import PrefectException

        self.stages = Stages()
        self.artifact_id: UUID | None = None
        self._every_s, self._pause_s, self._clock = every_s, pause_s, clock
        self._next = float("-inf")  # when the next update may be published (sooner: a stage's last)
        self._quiet_until = float("-inf")  # after an API error: no call before then
        self._lock = threading.Lock()
        self._context = contextvars.copy_context()
        self._enabled = FlowRunContext.get() is not None
        # what a Prefect API call raises: an HTTP error status, no connection, a Prefect error
        # (e.g. ObjectNotFound: the artifact deleted meanwhile)
        self._errors: tuple[type[Exception], ...] = (httpx.HTTPError, OSError, PrefectException)

    def __call__(self, stage: str, done: int, total: int) -> None:
        with self._lock:  # one publisher at a time: two threads would create two artifacts
            self.stages.report(stage, done, total)
            now = self._clock()
            if not self._enabled or now < self._quiet_until or (now < self._next and done < total):
                return
            percent, description = self.stages.percent(), self.stages.markdown()
            try:
                self._context.copy().run(self._publish, percent, description)
            except self._errors as exc:
                log.debug("step progress not published (%r): retried in %.0f s", exc, self._pause_s)
                self._quiet_until = now + self._pause_s
                return
            self._next = now + self._every_s

    def _publish(self, percent: float, description: str) -> None:
        from prefect.artifacts import create_progress_artifact, update_progress_artifact

        # `_sync`: Prefect picks sync or async from the run context; these calls block, whatever it says
        if self.artifact_id is None:
            created = create_progress_artifact(percent, description=description, _sync=True)  # type: ignore[call-arg]
            self.artifact_id = cast(UUID, created)
        else:
            update_progress_artifact(self.artifact_id, percent, description=description, _sync=True)  # type: ignore[call-arg]
