"""Flow runs started in a second, not five: the local stack's fork server for its Prefect worker.

A fresh `python -m prefect.engine` (what a process worker starts per flow run) spends ~4 s importing
Prefect and the pipeline before the first step runs. The local stack runs one more program, `runner`
(`python -m core.orchestration.forkserver serve SOCKET`), that imports all of it once and waits; its
work pool's command is `python -m core.orchestration.forkserver run`, a small client that hands its
environment, working directory and standard streams to the server, which forks a child that is
`python -m prefect.engine` with everything already imported.

The client stands for the run towards the worker: it forwards SIGTERM / SIGINT (cancellation) to the
child and exits as the child did (its code, or the same signal). When the client goes away (killed),
the server terminates the child; when the server is not there, the client execs `python -m
prefect.engine` itself — slower, never broken. The children are the server's: stopping the stack
stops them with its process group. Nothing here is imported by the client beyond the standard library.
"""
# Size: the server and its client share one wire protocol, kept side by side.

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import runpy
import selectors
import signal
import socket
import struct
import sys
import time
import traceback
from typing import Any, Final

PRELOAD: Final = ("prefect.engine", "prefect.flow_engine", "core.orchestration.flows", "core.pipeline.steps")
SOCKET_ENV: Final = "RAKUTEN_FORKSERVER_SOCKET"
_HEADER: Final = struct.Struct("!I")
log = logging.getLogger("core.orchestration.forkserver")
NICE: Final = 5
_GRACE_S: Final = 30.0  # a child whose client vanished: SIGTERM, then SIGKILL after this


# --- the wire: a length-prefixed JSON request (with three file descriptors), then two lines back ----
def _send_request(sock: socket.socket, request: dict[str, Any]) -> None:
    body = json.dumps(request).encode()
    socket.send_fds(sock, [_HEADER.pack(len(body)) + body], [0, 1, 2])


def _receive_request(sock: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data, fds, _, _ = socket.recv_fds(sock, 1 << 20, 3)
    (size,) = _HEADER.unpack_from(data)
    body = data[_HEADER.size :]
    while len(body) < size:
        chunk = sock.recv(size - len(body))
        if not chunk:
            raise ConnectionError("the client went away mid-request")
        body += chunk
    return json.loads(body), list(fds)


def _read_line(stream: Any) -> str:
    line: str = stream.readline()
    if not line:
        raise ConnectionError("the fork server went away")
    return line.strip()


# --- the client (the work pool's command) --------------------------------------------------------
def _exec_engine() -> None:
    """No server: be `python -m prefect.engine`, as a plain process worker runs it."""
    os.execv(sys.executable, [sys.executable, "-m", "prefect.engine", *sys.argv[2:]])


def run() -> None:
    path = os.environ.get(SOCKET_ENV, "")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        _send_request(sock, {"env": dict(os.environ), "cwd": os.getcwd(), "argv": sys.argv[2:]})
        stream = sock.makefile("r")
        child = int(_read_line(stream))
    except (OSError, ValueError, ConnectionError):
        sock.close()
        _exec_engine()
        return

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    try:
        status = int(_read_line(stream))
    except (OSError, ValueError, ConnectionError):
        sys.exit(1)  # the server died with the child: the worker reports the run as crashed
    if os.WIFSIGNALED(status):
        ended_by = os.WTERMSIG(status)
        signal.signal(ended_by, signal.SIG_DFL)
        os.kill(os.getpid(), ended_by)  # end as the child did: the worker sees the same signal
    sys.exit(os.waitstatus_to_exitcode(status))


# --- the server (the stack's `runner` program) ---------------------------------------------------
def _child(request: dict[str, Any], fds: list[int], sockets: list[socket.socket]) -> None:
    """In the forked child: become `python -m prefect.engine` with the client's environment."""

    code = 1
    try:
        for sock in sockets:
            sock.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["prefect.engine", *request["argv"]]
        runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(path: str) -> None:
    """Import the flows' modules, then fork one child per request; report each child's end. Flow runs
    (a training) yield the CPU to the console and the API: the server and its children run at a
    lower priority (nice 5)."""

    os.nice(NICE)
    _log_to_stdout()
    for module in PRELOAD:
        importlib.import_module(module)
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    children: dict[int, socket.socket] = {}  # pid -> its client's connection
    orphaned: dict[int, float] = {}  # pid -> when its client went away
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("fork server ready on %s (preloaded: %s)", path, ", ".join(PRELOAD))
    signalled = False
    while not stopping or children:
        if stopping and not signalled:  # once: a second SIGTERM would cut Prefect's own clean-up short
            for pid in children:
                _signal(pid, signal.SIGTERM)
            signalled = True
        for key, _ in selector.select(timeout=0.2):
            if key.fileobj is listener and not stopping:
                _accept(listener, selector, children)
            elif key.fileobj is not listener:  # a client's connection: readable means it went away
                conn = key.fileobj
                assert isinstance(conn, socket.socket)
                if _alive(conn):
                    continue
                selector.unregister(conn)
                for pid, held in children.items():
                    if held is conn:
                        _signal(pid, signal.SIGTERM)
                        orphaned[pid] = time.monotonic()
        for pid, since in list(orphaned.items()):
            if pid in children and time.monotonic() - since > _GRACE_S:
                _signal(pid, signal.SIGKILL)
        _reap(children, orphaned, selector)
    listener.close()
    os.unlink(path)


def _accept(listener: socket.socket, selector: Any, children: dict[int, socket.socket]) -> None:

    conn, _ = listener.accept()
    conn.settimeout(5.0)  # a client that connects and says nothing does not hold the server
    try:
        request, fds = _receive_request(conn)
    except (OSError, ValueError, ConnectionError, struct.error):
        conn.close()
        return
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the server's sockets are not the child's: closed there
        _child(request, fds, [listener, conn, *children.values()])
    for fd in fds:
        os.close(fd)
    try:
        conn.sendall(f"{pid}\n".encode())
    except OSError:
        _signal(pid, signal.SIGTERM)
    conn.setblocking(True)
    children[pid] = conn
    selector.register(conn, selectors.EVENT_READ)
    log.info("flow run started in process %d", pid)


def _reap(children: dict[int, socket.socket], orphaned: dict[int, float], selector: Any) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        orphaned.pop(pid, None)
        if conn is None:
            continue
        with contextlib.suppress(OSError):
            conn.sendall(f"{status}\n".encode())
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(conn)
        conn.close()
        log.info("flow run process %d ended (%d)", pid, os.waitstatus_to_exitcode(status))


def _log_to_stdout() -> None:
    """The server's own lines on its standard output (the stack's runner.log), whatever logging
    configuration Prefect sets up when it is imported."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def _alive(conn: socket.socket) -> bool:
    """Whether a readable client connection still stands (it sends nothing after its request)."""
    try:
        return conn.recv(1, socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def main() -> None:
    if len(sys.argv) >= 2 and sys.argv[1] == "run":
        run()
    elif len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        sys.exit("usage: python -m core.orchestration.forkserver run | serve SOCKET")


if __name__ == "__main__":
    main()
