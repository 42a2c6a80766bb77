"""What the local stack runs, and the supervisord configuration that runs it — pure functions of
Settings (nothing started, nothing written here).

Four programs, each a child of one supervisord, in its own process group, logging to
`<root>/.stack/logs/<name>.log`, restarted with back-off when it crashes:

- `prefect`: a Prefect server (SQLite in `<root>/.prefect`, loopback, `prefect_port`);
- `worker`: a Prefect process worker that runs the deployed flows (started once the deployments exist);
- `runner`: the worker's fork server (`core.orchestration.forkserver`): flow runs start with Prefect and
  the pipeline already imported;
- `api`: the prediction service (`python -m core serve`);
- `console`: the Streamlit console, predicting through that API.
"""

from __future__ import annotations

import hashlib
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from core.config import Settings
from core.orchestration.flow_runs import prefect_environment
from core.orchestration.forkserver import SOCKET_ENV
from core.orchestration.launcher import WORK_POOL

REPO: Final = Path(__file__).resolve().parents[2]  # the checkout: prefect.yaml, app/, the flows' code
ProgramName = Literal["prefect", "runner", "worker", "api", "console"]
PROGRAMS: Final[tuple[ProgramName, ...]] = ("prefect", "runner", "worker", "api", "console")
# The Prefect server, its worker, the fork server and the runs it forks yield the CPU to what people
# wait on (the console's pages, the API's answers): on 2 busy cores a cold page draws in half the time
ORCHESTRATION_NICE: Final = 5


@dataclass(frozen=True)
class Program:
    name: ProgramName
    command: list[str]
    directory: Path
    health: str | Path | None  # a URL answering 200, or a socket accepting, once it serves; None: the
    # worker (asked of Prefect)
    url: str | None  # where a user opens it
    env: dict[str, str] = field(default_factory=dict)
    autostart: bool = True
    priority: int = 100  # supervisord starts lower first and stops them last
    nice: int = 0  # above 0: yields the CPU to the console and the API (orchestration, not people)


@dataclass(frozen=True)
class StackPaths:
    state: Path
    config: Path
    pidfile: Path
    socket: Path
    logs: Path
    forkserver: Path  # the fork server's socket

    @classmethod
    def of(cls, settings: Settings) -> StackPaths:
        state = settings.stack_dir

        def socket(name: str) -> Path:
            path = state / f"{name}.sock"
            if len(str(path)) > 100:  # AF_UNIX paths stop at 108 bytes: a deep checkout gets one in /tmp
                digest = hashlib.blake2b(str(state).encode(), digest_size=6).hexdigest()
                path = Path("/tmp") / f"rakuten-stack-{digest}-{name}.sock"
            return path

        config, pidfile = state / "supervisord.conf", state / "supervisord.pid"
        return cls(state, config, pidfile, socket("supervisor"), state / "logs", socket("forkserver"))

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    @property
    def address(self) -> Path:
        """Where the running stack listens (`core.stack.address`)."""
        return self.state / "stack.json"


def niced(command: list[str], nice: int) -> list[str]:
    """`command` run at a lower CPU priority (`nice` execs it: same process, same PID)."""
    return ["nice", "-n", str(nice), *command] if nice else command


def _tool(name: str) -> str:
    """An executable installed beside this interpreter (the virtual environment's `prefect`)."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else name


# An interactive console fails fast: MLflow's client retries an unreachable server for minutes by default
# (7 retries, exponential backoff), Prefect's waits 60 s for an answer. Read by the tools themselves.
CONSOLE_ENVIRONMENT: Final = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
    "PREFECT_API_REQUEST_TIMEOUT": "10",
}


def programs(settings: Settings) -> list[Program]:
    """The local stack's programs for these settings (ports, project root)."""
    prefect_env = prefect_environment(settings)
    api_url = f"http://{settings.api_host}:{settings.api_port}"
    console_url = f"http://127.0.0.1:{settings.console_port}"
    prefect_ui = settings.prefect_url.removesuffix("/api")
    forkserver = StackPaths.of(settings).forkserver
    return [
        Program(
            "prefect",
            [
                _tool("prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(settings.prefect_port),
            ],
            settings.root,
            health=f"{settings.prefect_url}/health",
            url=prefect_ui,
            env={k: v for k, v in prefect_env.items() if k != "PREFECT_API_URL"},
            priority=10,
            nice=ORCHESTRATION_NICE,
        ),
        Program(
            "runner",
            [sys.executable, "-m", "core.orchestration.forkserver", "serve", str(forkserver)],
            REPO,
            health=forkserver,
            url=None,
            env=prefect_env,
            autostart=False,  # `up` starts it with the worker: its imports would slow the first start
            priority=15,
        ),
        Program(
            "worker",
            [_tool("prefect"), "worker", "start", "--pool", WORK_POOL, "--type", "process"],
            REPO,  # the deployments' code lives here; the flows' settings come from the environment
            health=None,
            url=None,
            # 0.5 s polls: a Retrain's first step runs within seconds, not the default 10 s; flow runs
            # through the fork server (the work pool's command, `forkserver_command`)
            env={**prefect_env, "PREFECT_WORKER_QUERY_SECONDS": "0.5", SOCKET_ENV: str(forkserver)},
            autostart=False,  # `up` starts it once the deployments exist
            priority=20,
            nice=ORCHESTRATION_NICE,
        ),
        Program(
            "api",
            [sys.executable, "-m", "core", "serve"],
            Path.cwd(),
            health=f"{api_url}/health",
            url=f"{api_url}/docs",
            env=prefect_env,
            priority=30,
        ),
        Program(
            "console",
            [
                sys.executable,
                "-m",
                "core.ui.serve",  # `streamlit run app/Home.py`, with what its first page needs loaded
                "--server.headless",
                "true",
                "--server.address",
                "127.0.0.1",
                "--server.port",
                str(settings.console_port),
                "--browser.gatherUsageStats",
                "false",
                "--server.fileWatcherType",  # nobody edits the pages under a running stack: no watcher
                "none",  # resolving every imported module's path after each run (~1 s on a first run)
            ],
            Path.cwd(),
            health=f"{console_url}/_stcore/health",
            url=console_url,
            env={**prefect_env, **CONSOLE_ENVIRONMENT, "RAKUTEN_API_URL": settings.api_url or api_url},
            priority=40,
        ),
    ]


def forkserver_command() -> str:
    """The local work pool's flow-run command: the fork server's client (`python -m prefect.engine`
    itself when the server is not there)."""
    return shlex.join([sys.executable, "-m", "core.orchestration.forkserver", "run"])


def _quote(value: str) -> str:
    """A value for supervisord's configuration: `%` doubled (its own interpolation)."""
    return value.replace("%", "%%")


def _environment(env: dict[str, str]) -> str:
    return ",".join(
        f'{key}="{_quote(value).replace(chr(34), chr(92) + chr(34))}"' for key, value in env.items()
    )


def render_config(paths: StackPaths, stack: list[Program]) -> str:
    """supervisord's configuration: a private control socket, the logs under the project, and every
    program stopped with its whole process group (no orphan survives a stop)."""
    lines = [
        "; written by `python -m core up` — regenerated at every start, edits are lost",
        "[unix_http_server]",
        f"file={_quote(str(paths.socket))}",
        "chmod=0700",
        "",
        "[supervisord]",
        f"logfile={_quote(str(paths.log('supervisord')))}",
        "logfile_maxbytes=5MB",
        "logfile_backups=2",
        f"pidfile={_quote(str(paths.pidfile))}",
        f"childlogdir={_quote(str(paths.logs))}",
        "loglevel=info",
        "silent=true",  # in the foreground too: its log goes to the file only
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{_quote(str(paths.socket))}",
    ]
    for program in stack:
        lines += [
            "",
            f"[program:{program.name}]",
            f"command={_quote(shlex.join(niced(program.command, program.nice)))}",
            f"directory={_quote(str(program.directory))}",
            f"priority={program.priority}",
            f"autostart={str(program.autostart).lower()}",
            "autorestart=true",
            "startsecs=2",  # alive 2 s: started; an earlier exit is retried with a growing back-off
            "startretries=5",
            "stopsignal=TERM",
            "stopwaitsecs=15",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={_quote(str(paths.log(program.name)))}",
            "stdout_logfile_maxbytes=10MB",
            "stdout_logfile_backups=2",
        ]
        if program.env:
            lines.append(f"environment={_environment(program.env)}")
    return "\n".join(lines) + "\n"
