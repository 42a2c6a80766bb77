"""`python -m core up | down | status`: the local stack (Prefect server + worker, the API, the console)
under one supervisord — `make console` runs `up` in the foreground (Ctrl-C or SIGTERM stops it all)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import FrameType
from typing import Annotated

import typer
from rich.table import Table

from core.cli._shared import WorkersOpt, console, fail, stack_settings
from core.config import Settings, get_settings
from core.errors import RakutenError
from core.stack.programs import ORCHESTRATION_NICE, StackPaths

# Lazy imports: each command imports what it runs (the supervisord driver and its Prefect calls).


class _Stop(Exception):
    """SIGTERM / SIGHUP in the foreground: stop the stack like Ctrl-C does."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def up(
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Run in the background (stop with `python -m core down`)")
    ] = False,
    prepare: Annotated[
        bool,
        typer.Option(help="First use: demo data (while the services start), a first model on the worker"),
    ] = True,
    workers: WorkersOpt = None,
) -> None:
    """Start the local stack: Prefect server and worker, the prediction API and the console.

    One supervisord runs them (logs and PID file in .stack/, a crashed program restarted with
    back-off); in the foreground, Ctrl-C or SIGTERM stops every one of them."""
    from core.stack import supervisor as stack
    from core.stack.address import remove_address
    from core.stack.stopping import down as stop_stack
    from core.stack.stopping import stop_child

    settings = get_settings()
    if not settings.local_prefect:
        raise fail(
            RakutenError(
                f"PREFECT_API_URL points at a Prefect server of your own ({settings.prefect_api_url}): "
                "the local stack runs its own. Unset it, or run the full stack (docker compose up)."
            )
        )
    if stack.supervisor_pid(settings) is not None:
        console.print("The local stack is already running:")
        _print_status(stack_settings())
        return
    try:
        stack.check_ports(settings)
        paths = stack.write_config(settings)
    except RakutenError as exc:
        raise fail(exc) from exc
    console.print(f"Starting the local stack (supervisord; logs in {paths.logs})…")
    process = stack.launch_supervisor(paths, detach=detach)
    os.nice(ORCHESTRATION_NICE)  # from here this process waits, deploys and prepares: the console first
    # first use: demo data while the services start (a child process: this one stays small)
    preparing = _start_prepare(paths, workers) if prepare else None
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    code = 0
    try:
        with console.status("Starting the services" + (" and preparing the data…" if prepare else "…")):
            stack.bring_up(settings, paths, lambda line: console.print(f"  [green]✓[/] {line}"))
            _prepared(preparing, paths)
        console.print(
            f"[bold green]Ready[/]: the console on http://127.0.0.1:{settings.console_port} · "
            f"logs in {paths.logs}"
        )
        if process is None:
            console.print("Stop it with: python -m core down")
            return
        console.print("Ctrl-C stops the stack.")
        code = process.wait()
        console.print(f"[bold red]supervisord exited ({code})[/]: see {paths.log('supervisord')}")
    except (KeyboardInterrupt, _Stop):
        console.print("Stopping the local stack…")
    except RakutenError as exc:
        console.print(f"[bold red]Error:[/] {exc}")
        code = 2
        if process is None:
            stop_stack(settings)
    finally:
        if preparing is not None and preparing.poll() is None:
            preparing.terminate()
            preparing.wait()
        if process is not None:
            stop_child(process)
            remove_address(paths)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code:
        raise typer.Exit(code=code)


def _start_prepare(paths: StackPaths, workers: int | None) -> subprocess.Popen[bytes]:
    """`python -m core prepare --start-first-training` (demo data if data/raw is empty, ingest if
    anything changed; no champion yet: a first training on the worker, once deployed), its progress
    in .stack/logs/prepare.log."""
    command = [sys.executable, "-m", "core", "prepare", "--start-first-training"]
    command += ["--workers", str(workers)] if workers else []
    with paths.log("prepare").open("wb") as log:
        env = os.environ | {"COLUMNS": "1000"}  # one line per message: `up` prints them again
        return subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=_background
        )


def _background() -> None:
    """The preparation yields the CPU to the services starting beside it."""
    os.nice(10)


def _prepared(preparing: subprocess.Popen[bytes] | None, paths: StackPaths) -> None:
    """Wait for the data preparation and say how it went (when it failed, its log's tail: the stack
    runs on, and the Data explorer shows the problem too)."""
    if preparing is None:
        return
    code = preparing.wait()
    text = paths.log("prepare").read_text(errors="replace")
    said = [line for line in text.splitlines() if line.strip() and "━" not in line]  # not the bars
    if code == 0:
        for line in said:
            console.print(f"  [green]✓[/] {line}")
    else:
        tail = "\n".join(said[-15:])
        console.print(f"[bold red]Data preparation failed[/] (log: {paths.log('prepare')}):\n{tail}")


def down() -> None:
    """Stop the local stack and every process it started."""
    from core.stack.stopping import down as stop

    settings = get_settings()
    if stop(settings):
        console.print("The local stack is stopped.")
    else:
        console.print("The local stack is not running.")


def status() -> None:
    """Each program of the local stack: state, PID, uptime, health, URL and log. Exit code 1 when the
    stack is not running, 2 when a program is not running or not healthy."""
    if not _print_status(stack_settings()):
        raise typer.Exit(code=2)


def _print_status(settings: Settings) -> bool:
    from core.stack.supervisor import status as read_status

    found = read_status(settings)
    if found is None:
        console.print("The local stack is not running (start it: make console, or python -m core up).")
        raise typer.Exit(code=1)
    table = Table("program", "state", "pid", "up for", "health", "url", "log")
    for program in found:
        health = {True: "[green]healthy[/]", False: "[red]not answering[/]", None: "—"}[program.healthy]
        uptime = f"{program.uptime_s:.0f} s" if program.uptime_s is not None else ""
        table.add_row(
            program.name,
            program.state,
            str(program.pid or ""),
            uptime,
            health,
            program.url or "",
            program.log,
        )
    console.print(table)
    return all(p.state == "RUNNING" and p.healthy for p in found)
