"""The console's launcher (`python -m core.ui.serve`, what the local stack runs): what the first page
needs is loaded before Streamlit answers — without creating a tracking store by looking — and then
the console serves as `streamlit run app/Home.py` does; it refuses to serve beyond loopback, or
outside local, without sign-in, and hands the sign-in settings to `st.login`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import psutil
import pytest

from core.config import Settings, get_settings
from core.stack.programs import CONSOLE_ENVIRONMENT
from core.tracking.store import connect
from core.ui.serve import auth_secrets, listen_address, warm
from tests.conftest import free_port


def test_warming_an_empty_project_creates_no_tracking_store(project: Path) -> None:
    assert warm(get_settings()) == []
    assert not (project / "mlflow.db").exists()  # nothing trained: looking must not create one


def test_warming_opens_an_existing_store(project: Path) -> None:
    connect(get_settings())  # an empty store, as the first training leaves one
    assert (project / "mlflow.db").is_file()
    assert warm(get_settings()) == []


def test_the_console_answers_once_loaded(project: Path) -> None:
    port = free_port()
    log = project / "console.log"
    with log.open("wb") as out:
        console = subprocess.Popen(
            [
                *(sys.executable, "-m", "core.ui.serve", "--server.port", str(port)),
                *("--server.address", "127.0.0.1", "--server.headless", "true"),
            ],
            cwd=project,
            env={k: v for k, v in os.environ.items() if k not in CONSOLE_ENVIRONMENT}
            | {"RAKUTEN_ROOT": str(project)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert console.poll() is None, log.read_text(errors="replace")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.2)
        said = log.read_text(errors="replace")
        assert "console: loaded what its first page needs in" in said
        # it fails fast on a service that is down: the clients' settings are in its environment
        environment = psutil.Process(console.pid).environ()
        assert {k: environment.get(k) for k in CONSOLE_ENVIRONMENT} == CONSOLE_ENVIRONMENT
        assert "could not load" not in said and "Traceback" not in said
    finally:
        console.terminate()
        console.wait(timeout=30)


def test_the_listening_address_comes_from_the_flag_the_variable_or_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STREAMLIT_SERVER_ADDRESS", raising=False)
    assert listen_address(["--server.address", "0.0.0.0"], tmp_path) == "0.0.0.0"
    assert listen_address(["--server.address=127.0.0.1"], tmp_path) == "127.0.0.1"
    assert listen_address([], tmp_path) is None  # Streamlit's default: every interface
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "config.toml").write_text('[server]\naddress = "127.0.0.1"\n')
    assert listen_address([], tmp_path) == "127.0.0.1"
    monkeypatch.setenv("STREAMLIT_SERVER_ADDRESS", "10.1.2.3")
    assert listen_address([], tmp_path) == "10.1.2.3"
    # the repository's own config keeps a plain `streamlit run app/Home.py` on this machine
    assert listen_address([], Path(__file__).resolve().parents[2]) == "10.1.2.3"
    monkeypatch.delenv("STREAMLIT_SERVER_ADDRESS")
    assert listen_address([], Path(__file__).resolve().parents[2]) == "127.0.0.1"


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--server.address", "0.0.0.0"], {}, "listens on 0.0.0.0"),
        ([], {}, "every network interface"),
        (["--server.address", "127.0.0.1"], {"RAKUTEN_ENVIRONMENT": "production"}, "RAKUTEN_ENVIRONMENT"),
    ],
)
def test_without_sign_in_the_console_refuses_to_start_exposed(
    project: Path, args: list[str], env: dict[str, str], says: str
) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "core.ui.serve", "--server.port", str(free_port()), *args],
        cwd=project,
        env={**os.environ, **CONSOLE_ENVIRONMENT, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2, run.stderr[-2000:]
    assert "refuses to start without sign-in" in run.stderr and says in run.stderr
    assert "RAKUTEN_OIDC_SERVER_METADATA_URL" in run.stderr


def test_sign_in_settings_become_streamlit_auth_secrets(project: Path) -> None:
    s = Settings(
        root=project,
        oidc_server_metadata_url="http://idp:8080/realms/rakuten/.well-known/openid-configuration",
        oidc_client_id="rakuten-console",
        oidc_client_secret="console-secret-0123456789",  # type: ignore[arg-type]
        oidc_cookie_secret='cookie "quoted" secret-0123456789-0123456789',  # type: ignore[arg-type]
        console_port=8600,
    )
    auth = tomllib.loads(auth_secrets(s))["auth"]
    assert auth == {
        "redirect_uri": "http://localhost:8600/oauth2callback",
        "cookie_secret": 'cookie "quoted" secret-0123456789-0123456789',
        "client_id": "rakuten-console",
        "client_secret": "console-secret-0123456789",
        "server_metadata_url": "http://idp:8080/realms/rakuten/.well-known/openid-configuration",
    }
