"""One definition of the chain: the Prefect flow's tasks and `dvc.yaml`'s stages are derived from it
(names, order, commands, inputs, outputs); `run_pipeline` runs it in order (timed per step: the
trained project's own run shows the order it really ran in)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.cli import app
from core.config import Settings
from core.pipeline import STEP_NAMES, STEPS

ROOT = Path(__file__).resolve().parents[3]


def _stages() -> dict[str, dict]:
    stages: dict[str, dict] = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    return stages


def _names(entries: list) -> set[str]:
    """DVC lists a path alone, or as a one-key mapping with its options (`path: {cache: false}`)."""
    return {next(iter(e)) if isinstance(e, dict) else str(e) for e in entries}


def _relative(paths: list[Path], settings: Settings) -> set[str]:
    return {p.relative_to(settings.root).as_posix() for p in paths}


def test_the_flow_dvc_and_the_chain_list_the_same_steps_in_the_same_order() -> None:
    from core.orchestration.flows import TASKS

    assert STEP_NAMES == ("ingest", "features", "train", "evaluate", "predict")
    assert tuple(TASKS) == STEP_NAMES
    assert [task.name for task in TASKS.values()] == list(STEP_NAMES)
    assert tuple(_stages()) == STEP_NAMES


def test_each_dvc_stage_runs_its_step_on_the_step_s_inputs_and_outputs(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path)
    commands = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    for step in STEPS:
        stage = _stages()[step.name]
        assert stage["cmd"] == f"python -m core {step.name}"
        assert step.name in commands, f"no `python -m core {step.name}`"
        data_deps = {d for d in _names(stage["deps"]) if not d.startswith("core/")}
        assert data_deps == _relative(step.inputs(settings), settings), step.name
        written = _names(stage.get("outs", [])) | _names(stage.get("metrics", []))
        assert written == _relative(step.outputs(settings), settings), step.name


def test_a_step_reads_only_what_an_earlier_step_writes_or_the_download(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path)
    available = {settings.data_dir, settings.corrections_dir}  # the download and the reviewed labels
    for step in STEPS:
        for path in step.inputs(settings):
            assert path in available or any(path.is_relative_to(p) for p in available), (step.name, path)
        available |= set(step.outputs(settings))


def test_only_idempotent_steps_are_retried() -> None:
    retried = {step.name for step in STEPS if step.retries}
    assert retried == {"ingest", "predict"}  # evaluate registers a version: it never runs twice


def test_run_pipeline_runs_the_chain_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`run_pipeline` is the chain run in this process: each step of `STEPS`, in order, timed."""
    from dataclasses import replace

    from core.params import Params
    from core.pipeline import chain

    ran: list[str] = []

    def recorder(name: str) -> Callable[[chain.Chain, Any], list[chain.Note]]:
        """Stands in for the step: records it and leaves a result for the next."""

        def run(state: chain.Chain, progress: Any) -> list[chain.Note]:
            ran.append(name)
            slot = {"ingest": "prepared", "evaluate": "evaluated", "predict": "predicted"}.get(name)
            if slot:
                setattr(state, slot, name)
            return []

        return run

    steps = tuple(replace(step, run=recorder(step.name)) for step in STEPS)
    monkeypatch.setattr(chain, "STEPS", steps)
    result = chain.run_pipeline(Settings(root=tmp_path), Params(), workers=1)
    assert ran == list(STEP_NAMES)
    assert list(result.timings) == list(STEP_NAMES)
