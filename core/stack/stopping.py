"""Stopping the local stack so that nothing is left behind: supervisord stops each program with its
process group; flow runs a worker started in sessions of their own are stopped first, and any process
of the tree that outlived the shutdown is killed after."""

from __future__ import annotations

import os
import signal
import subprocess
import xmlrpc.client
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psutil

from core.config import Settings
from core.stack.address import remove_address
from core.stack.programs import StackPaths
from core.stack.supervisor import STOP_S, proxy, supervisor_pid


def _tree(pid: int) -> list[Any]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


def _escaped(supervisord: int) -> list[Any]:
    """Processes under supervisord outside every program's process group: flow runs a worker started
    in a session of their own, which a group stop does not reach."""
    groups = set()
    children = []
    try:
        children = psutil.Process(supervisord).children()
    except psutil.NoSuchProcess:
        return []
    for child in children:
        try:
            groups.add(os.getpgid(child.pid))
        except ProcessLookupError:
            continue
    escaped = []
    for process in _tree(supervisord):
        try:
            if os.getpgid(process.pid) not in groups:
                escaped.append(process)
        except ProcessLookupError:
            continue
    return escaped


def _terminate(processes: list[Any], grace_s: float) -> None:
    for process in processes:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(processes, timeout=grace_s)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(alive, timeout=5)


@contextmanager
def _stopping(supervisord: int) -> Iterator[None]:
    """Around a supervisord shutdown: escaped processes are stopped first (their parents are still
    there to reap them), and any process of the tree that outlived the shutdown is killed after."""
    tree = _tree(supervisord)
    _terminate(_escaped(supervisord), grace_s=10)
    yield
    survivors = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    _terminate(survivors, grace_s=5)


def stop_child(process: subprocess.Popen[bytes]) -> int:
    """Stop a foreground supervisord (our child) and everything under it."""
    if process.poll() is not None:
        return process.returncode
    with _stopping(process.pid):
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()


def down(settings: Settings) -> bool:
    """Stop a running stack (foreground or detached); False when none was running."""
    paths, pid = StackPaths.of(settings), supervisor_pid(settings)
    if pid is None:
        return False  # a record a crash left stays, ignored (`running_address`): a starting stack's too
    with _stopping(pid):
        with suppress(OSError, xmlrpc.client.Fault):
            proxy(paths).supervisor.shutdown()
        try:
            psutil.Process(pid).wait(timeout=STOP_S)
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:
            psutil.Process(pid).kill()
    remove_address(paths)
    return True
