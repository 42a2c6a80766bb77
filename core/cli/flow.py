"""`python -m core flow …`: run a flow here, start a training the way the console does (on the local
stack's worker, or your Prefect server's) and follow it, read, list and cancel runs. Running, starting and
cancelling act for the command's principal (`core.cli._shared.acting`), whose name the run carries."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.cli._shared import WorkersOpt, acting, console, fail, stack_settings
from core.config import Settings
from core.errors import RakutenError
from core.identity.roles import Action

if TYPE_CHECKING:
    from rich.console import Console

    from core.orchestration.flow_runs import LogLine, RunInfo

# Lazy imports: each command imports what it runs: the flows and Prefect's client (~3 s) are not loaded for
# `--help`.

flow_app = typer.Typer(
    help="Prefect flows: run or start a training, monitor-and-retrain, follow, list and cancel runs."
)

SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="params.yaml override KEY=VALUE (repeatable), e.g. text.C=1.0"),
]


class FlowName(StrEnum):
    training = "training"
    monitor = "monitor"


@flow_app.command("run")
def flow_run(
    which: Annotated[FlowName, typer.Argument(help="training | monitor")],
    set_: SetOpt = None,
    retrain: Annotated[bool, typer.Option(help="monitor: retrain when the decision says so")] = True,
    name: Annotated[str | None, typer.Option(help="Flow run name (the launcher finds the run by it)")] = None,
    workers: WorkersOpt = None,
) -> None:
    """Run a flow in this process, recorded in Prefect.

    Recorded by the configured Prefect server, or the local stack's (`make console`). To hand a
    training to the worker instead (as the console does), use `flow start`."""
    settings = stack_settings()
    from core.orchestration.flow_runs import check_prefect

    try:
        overrides = _overrides(set_ or [])
        check_prefect(settings)  # a clear error now, not a Prefect traceback from inside the flow
    except (ValueError, RakutenError) as exc:
        raise fail(exc) from exc
    from prefect import tags

    from core.orchestration import flows
    from core.orchestration.flow_runs import prefect_api, run_tags

    options = {"flow_run_name": name} if name else {}
    # the monitor builds a drift report, and retrains only when it decides to and may
    action = Action.RETRAIN if which is FlowName.training or retrain else Action.DRIFT_REPORT
    try:
        with acting(settings, action, target=f"flow:{which.value}") as (who, act):
            with prefect_api(settings), tags(*run_tags(who.name, who.via)):
                if which is FlowName.training:
                    training = flows.training_pipeline.with_options(**options)  # type: ignore[arg-type]
                    state = training(overrides=overrides, workers=workers, actor=who.name, return_state=True)
                else:
                    monitor = flows.monitor_and_retrain.with_options(**options)  # type: ignore[arg-type]
                    state = monitor(retrain=retrain, workers=workers, actor=who.name, return_state=True)
            run_id = state.state_details.flow_run_id
            act.target = f"run:{run_id}"
            if not state.is_completed():  # recorded as failed; the exit code below says so too
                act.outcome, act.detail = "failed", f"{state.type.value}: {state.message}"
    except RakutenError as exc:
        raise fail(exc) from exc
    if not state.is_completed():
        console.print(f"[bold red]{state.type.value}[/] flow run {run_id}: {state.message}")
        raise typer.Exit(code=2)
    console.print(f"[green]Completed[/] flow run {run_id} — details: python -m core flow status {run_id}")


def _overrides(pairs: list[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set takes KEY=VALUE (e.g. text.C=1.0), not {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


@flow_app.command("start")
def flow_start(
    set_: SetOpt = None,
    follow: Annotated[bool, typer.Option(help="Follow the run (progress and logs) until it ends")] = True,
) -> None:
    """Start a training as the console's Retrain does, and follow it.

    On the local stack's Prefect worker (or your server's); refused (exit code 3) while another
    training is pending or running."""
    settings = stack_settings()
    from core.orchestration.launcher import AlreadyRunning, start_training

    try:
        overrides = _overrides(set_ or [])
        with acting(settings, Action.RETRAIN, target="flow:training") as (who, act):
            launch = start_training(settings, overrides, actor=who.name, via=who.via)
            act.target = f"run:{launch.run_id}"
    except AlreadyRunning as exc:
        console.print(f"[yellow]Not started:[/] {exc}")
        console.print(f"  follow it: python -m core flow status {exc.run_id} --follow")
        raise typer.Exit(code=3) from exc
    except (RakutenError, ValueError) as exc:
        raise fail(exc) from exc
    console.print(f"Started {launch.name} ({launch.run_id}) in {launch.where} mode.")
    if follow:
        _follow(settings, launch.run_id)


@flow_app.command("status")
def flow_status(
    run_id: Annotated[str, typer.Argument(help="Flow run id (printed by `flow run` / `flow start`)")],
    logs: Annotated[int, typer.Option(help="How many log lines to show")] = 20,
    follow: Annotated[bool, typer.Option(help="Follow the run (progress and logs) until it ends")] = False,
) -> None:
    """A flow run's state, duration, steps (n of N) and latest log lines."""
    settings = stack_settings()
    from core.orchestration.flow_runs import read_run, run_logs

    try:
        if follow:
            _follow(settings, run_id)
            return
        run = read_run(settings, run_id)
        lines = run_logs(settings, run_id, last=logs) if logs else []
    except RakutenError as exc:
        raise fail(exc) from exc
    _print_run(run)
    for line in lines:
        _print_line(console, line)


def _print_line(out: Console, line: LogLine) -> None:
    out.print(f"  {line.at:%H:%M:%S} {line.level:<7} {line.message}", markup=False, highlight=False)


def _print_run(run: RunInfo) -> None:
    done, total, current = run.progress
    took = f"{run.seconds:.0f} s" if run.seconds is not None else "—"
    running = f" · running {current}" if current else ""
    by = f" · by {run.user}" if run.user else ""
    console.print(
        f"[bold]{run.flow}[/] {run.name} ({run.id}): [bold]{run.state}[/] · {took} · "
        f"step {done}/{total}{running}{by}"
    )
    if run.message and run.state != "COMPLETED":
        console.print(f"  {run.message}", markup=False)
    table = Table("step", "state", "seconds")
    for step in run.steps:
        table.add_row(step.name, step.state, f"{step.seconds:.1f}" if step.seconds is not None else "")
    console.print(table)


def _follow(settings: Settings, run_id: str, every_s: float = 1.0) -> None:
    """Live progress bar (step n of N, current step) and new log lines until the run ends; Ctrl-C
    stops following, not the run. Exit code 2 unless it completed."""
    from core.orchestration.flow_runs import read_run, run_logs, run_summary

    seen = 0
    try:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("waiting to start", total=None)
            while True:
                run = read_run(settings, run_id)
                for line in run_logs(settings, run_id, skip=seen):
                    seen += 1
                    _print_line(bar.console, line)
                done, total, current = run.progress
                label = current or run.state.lower()
                bar.update(task, description=label, completed=done, total=total)
                if run.final:
                    time.sleep(2.0)  # the last log lines reach the API in a batch after the state
                    for line in run_logs(settings, run_id, skip=seen):
                        _print_line(bar.console, line)
                    break
                time.sleep(every_s)
    except KeyboardInterrupt:
        console.print(f"Stopped following; the run goes on: python -m core flow status {run_id}")
        raise typer.Exit(code=130) from None
    except RakutenError as exc:
        raise fail(exc) from exc
    _print_run(run)
    summary = run_summary(settings, run_id)
    if summary:
        console.print(summary, markup=False, highlight=False)
    if run.state != "COMPLETED":
        raise typer.Exit(code=2)


@flow_app.command("cancel")
def flow_cancel(run_id: Annotated[str, typer.Argument(help="Flow run id")]) -> None:
    """Cancel a pending or running flow run (its process is stopped; the champion is unchanged)."""
    settings = stack_settings()
    from core.orchestration.launcher import cancel

    try:
        with acting(settings, Action.CANCEL_RUN, target=f"run:{run_id}"):
            cancel(settings, run_id)
    except RakutenError as exc:
        raise fail(exc) from exc
    console.print(f"Cancellation requested for {run_id}.")


@flow_app.command("runs")
def flow_runs(limit: Annotated[int, typer.Option(help="How many runs", min=1)] = 20) -> None:
    """Recent runs of the platform's flows (newest first) and, on a server, the next scheduled ones."""
    settings = stack_settings()
    from core.orchestration.flow_runs import recent_runs

    try:
        runs = recent_runs(settings, limit=limit)
        upcoming = recent_runs(settings, limit=5, scheduled=True)
    except RakutenError as exc:
        raise fail(exc) from exc
    table = Table("flow", "run", "state", "started", "seconds", "by", "overrides", title="Recent runs")
    table.add_column("id", no_wrap=True)
    for run in runs:
        table.add_row(
            run.flow,
            run.name,
            run.state,
            f"{run.started:%Y-%m-%d %H:%M:%S}" if run.started else "",
            f"{run.seconds:.0f}" if run.seconds is not None else "",
            run.user or "",
            str(run.parameters.get("overrides") or ""),
            run.id,
        )
    console.print(table)
    if upcoming:
        console.print(
            "Next scheduled: " + ", ".join(f"{r.flow} at {r.started:%Y-%m-%d %H:%M %Z}" for r in upcoming)
        )
