"""The local stack's definition and its edges: supervisord's configuration for the settings' ports
and project, a port another program holds, where a running stack listens (its record), and `status` /
`down` when nothing runs. (The stack
itself runs in the tests that use `tests.conftest.local_stack` and in tests/e2e/test_first_run.py.)"""

from __future__ import annotations

import configparser
import socket
import sys
import time
from pathlib import Path

import pytest

from core.config import Settings
from core.io import write_text
from core.stack.address import StackAddress, read_address, write_address
from core.stack.programs import PROGRAMS, REPO, Program, StackPaths, programs, render_config
from core.stack.stopping import down
from core.stack.supervisor import (
    PortBusy,
    check_ports,
    launch_supervisor,
    running_address,
    starting,
    status,
    write_config,
)
from tests.conftest import LocalStack, clean_env, free_port


def test_config_runs_each_program_in_its_group_with_logs_under_the_project(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path, prefect_port=14200, api_port=18000, console_port=18501)
    paths = StackPaths.of(settings)
    parsed = configparser.RawConfigParser()
    parsed.read_string(render_config(paths, programs(settings)))
    assert [s.removeprefix("program:") for s in parsed.sections() if s.startswith("program:")] == list(
        PROGRAMS
    )
    assert parsed["supervisord"]["pidfile"] == str(tmp_path / ".stack" / "supervisord.pid")
    for name in PROGRAMS:
        section = parsed[f"program:{name}"]
        assert section["stopasgroup"] == section["killasgroup"] == "true"  # no orphan after a stop
        assert section["autorestart"] == "true" and int(section["startretries"]) > 0
        assert section["stdout_logfile"] == str(tmp_path / ".stack" / "logs" / f"{name}.log")
    assert "--port 14200" in parsed["program:prefect"]["command"]
    assert 'PREFECT_API_URL="http://127.0.0.1:14200/api"' in parsed["program:worker"]["environment"]
    assert parsed["program:worker"]["autostart"] == "false"  # started once the flows are deployed
    assert parsed["program:worker"]["directory"] == str(REPO)
    # the worker's flow runs go through the fork server, which `up` starts before it
    assert parsed["program:runner"]["autostart"] == "false"
    assert parsed["program:runner"]["command"].endswith(f"forkserver serve {paths.forkserver}")
    assert f'RAKUTEN_FORKSERVER_SOCKET="{paths.forkserver}"' in parsed["program:worker"]["environment"]
    assert "--server.port 18501" in parsed["program:console"]["command"]
    # the console loads what its first page needs before it answers; no file watcher under the stack
    assert " -m core.ui.serve " in parsed["program:console"]["command"]
    assert "--server.fileWatcherType none" in parsed["program:console"]["command"]
    # orchestration yields the CPU to what people wait on (the console, the API)
    for name in ("prefect", "worker"):
        assert parsed[f"program:{name}"]["command"].startswith("nice -n 5 "), name
    for name in ("api", "console"):
        assert not parsed[f"program:{name}"]["command"].startswith("nice"), name
    assert 'RAKUTEN_API_URL="http://127.0.0.1:18000"' in parsed["program:console"]["environment"]


def test_percent_signs_are_escaped_for_supervisord(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path / "100%done")
    text = render_config(StackPaths.of(settings), programs(settings))
    parsed = configparser.ConfigParser()  # supervisord interpolates %(…)s: a bare % would break it
    parsed.read_string(text)
    assert parsed["supervisord"]["pidfile"] == str(tmp_path / "100%done" / ".stack" / "supervisord.pid")


def test_a_deep_project_gets_its_sockets_in_tmp(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    paths = StackPaths.of(Settings(root=deep))
    for path in (paths.socket, paths.forkserver):
        assert len(str(path)) < 108 and str(path).startswith("/tmp/")
    assert paths.socket != paths.forkserver


def test_a_taken_port_names_the_setting_to_change(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        settings = Settings(root=tmp_path, prefect_port=free_port(), api_port=port, console_port=free_port())
        with pytest.raises(PortBusy, match="RAKUTEN_API_PORT"):
            check_ports(settings)


def test_a_start_records_where_the_stack_listens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Read by commands run without the ports `up` had; what a command's settings set itself wins."""
    clean_env(monkeypatch, tmp_path)
    started = Settings(root=tmp_path, prefect_port=4301, api_port=8101, console_port=8601)
    paths = write_config(started)
    assert read_address(paths) == StackAddress(4301, "127.0.0.1", 8101, 8601)
    assert running_address(started) is None  # no supervisord answers: a record a crash left says nothing

    bare = Settings(_env_file=None, root=tmp_path)  # type: ignore[call-arg]
    found = StackAddress(4301, "127.0.0.1", 8101, 8601).applied_to(bare)
    assert (found.prefect_url, found.api_port, found.console_port) == (
        "http://127.0.0.1:4301/api",
        8101,
        8601,
    )
    explicit = Settings(_env_file=None, root=tmp_path, api_port=8000)  # type: ignore[call-arg]
    assert StackAddress.of(started).applied_to(explicit).api_port == 8000  # its own port wins
    assert StackAddress.of(started).applied_to(explicit).prefect_port == 4301

    paths.address.write_text("{not json")
    assert read_address(paths) is None
    paths.address.write_text('{"prefect_port": "x"}')
    assert read_address(paths) is None


def test_status_and_down_without_a_running_stack(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path)
    assert status(settings) is None and down(settings) is False
    stack = LocalStack(tmp_path, {"RAKUTEN_ROOT": str(tmp_path)})
    shown = stack.cli("status", timeout=60)
    assert shown.returncode == 1 and "not running" in shown.stderr and "make console" in shown.stderr
    stopped = stack.cli("down", timeout=60)
    assert stopped.returncode == 0 and "not running" in stopped.stderr


def test_a_program_the_stack_just_started_is_starting(tmp_path: Path) -> None:
    """What the Overview follows while the stack starts: supervisord's young programs."""
    settings = Settings(root=tmp_path, api_port=free_port())
    assert starting(settings) == set()  # no stack here
    paths = StackPaths.of(settings)
    paths.logs.mkdir(parents=True)
    sleeper = Program("api", [sys.executable, "-c", "import time; time.sleep(120)"], tmp_path, None, None)
    write_text(paths.config, render_config(paths, [sleeper]))
    write_address(paths, StackAddress.of(settings))
    launch_supervisor(paths, detach=True)
    try:
        deadline = time.monotonic() + 60
        while starting(settings) != {"api"}:
            assert time.monotonic() < deadline, status(settings)
            time.sleep(0.2)
        while _state(settings) != "RUNNING":  # past supervisord's start: young, so still starting
            assert time.monotonic() < deadline, status(settings)
            time.sleep(0.2)
        assert starting(settings) == {"api"}  # its health check does not answer (nothing listens)
        assert starting(settings, ["prefect"]) == set()  # only those asked about
        assert starting(settings, within_s=0) == set()  # running longer than that: started (or down)
        assert running_address(Settings(root=tmp_path)) == StackAddress.of(settings)
    finally:
        assert down(settings)
    assert not paths.address.exists() and running_address(settings) is None  # stopped: no record left


def _state(settings: Settings) -> str:
    found = status(settings) or []
    return next((p.state for p in found if p.name == "api"), "UNKNOWN")
