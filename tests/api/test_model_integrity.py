"""A registry write cannot make the API run code: a version whose files do not match the digests recorded
at registration — or that has none — is refused before any of it loads, the served model stays, and the
refusal is counted, audited and shown in `/model`.

The attacker here can write the registry (and a folder the registry may point at), as someone with
MLflow's or the bucket's keys could: they register a version whose pickle runs a command when loaded."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.config import REGISTERED_MODEL_NAME, Settings
from core.serving.app import create_app
from core.storage.audit import AuditFilter, AuditTrail
from core.tracking import store
from core.tracking.integrity import DIGEST_TAG
from tests.conftest import build_trained_project, clean_env

TOKEN = "integrity-admin-token-1234567890"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    root = tmp_path_factory.mktemp("integrity-api") / "project"
    root.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        clean_env(mp, root)
        mp.chdir(root)
        build_trained_project(root)
        yield Settings(root=root, api_admin_token=TOKEN, api_alias_check_s=0.2)  # type: ignore[arg-type]


def _register(settings: Settings, folder: Path, tags: dict[str, str]) -> int:
    """A registry write as an attacker would make it: a new version whose files are theirs."""
    client = store.connect(settings)
    version = client.create_model_version(REGISTERED_MODEL_NAME, source=str(folder), tags=tags)
    return int(version.version)


def _wait_for(check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the service did not notice the alias move in time"
        time.sleep(0.1)


def test_a_tampered_or_unsigned_champion_is_refused_and_the_served_model_stays(
    settings: Settings, tmp_path: Path
) -> None:
    client = store.connect(settings)
    good = client.get_model_version(REGISTERED_MODEL_NAME, "1")
    genuine = Path(client.get_model_version_download_uri(REGISTERED_MODEL_NAME, "1").removeprefix("file://"))
    evil = tmp_path / "evil"
    shutil.copytree(genuine, evil)
    ran = tmp_path / "the-payload-ran"
    (evil / "artifacts" / "classifier.pkl").write_bytes(
        b"cos\nsystem\n(V" + f"touch {ran}".encode() + b"\ntR."
    )
    tampered = _register(settings, evil, {DIGEST_TAG: good.tags[DIGEST_TAG]})  # the digest copied over
    unsigned = _register(settings, genuine, {})  # genuine files, no digest recorded
    trail = AuditTrail.open(str(settings.audit_url))

    with TestClient(create_app(settings)) as api:
        assert api.get("/model").json()["version"] == 1
        for version, kind in ((tampered, "mismatch"), (unsigned, "missing")):
            # the alias moved by a registry write (the platform's own promote refuses unsigned versions)
            client.set_registered_model_alias(REGISTERED_MODEL_NAME, "champion", str(version))
            _wait_for(lambda v=version: v in {r["version"] for r in api.get("/model").json()["refused"]})
            model = api.get("/model").json()
            assert model["version"] == 1 and model["source"] == "registry"  # still serving v1
            refusal = next(r for r in model["refused"] if r["version"] == version)
            assert refusal["kind"] == kind
            assert api.post("/predict", json={"designation": "Piscine tubulaire"}).status_code == 200
            assert f'rakuten_model_refusals_total{{kind="{kind}"}} 1.0' in api.get("/metrics").text
        assert (
            "classifier.pkl differs"
            in next(r for r in model["refused"] if r["version"] == tampered)["reason"]
        )

        # the watcher does not retry a refused version every few seconds; an operator's reload does
        time.sleep(1.0)
        assert 'rakuten_model_refusals_total{kind="missing"} 1.0' in api.get("/metrics").text
        reload = api.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert reload.status_code == 503 and "still serving the previous model" in reload.json()["detail"]
        assert 'rakuten_model_refusals_total{kind="missing"} 2.0' in api.get("/metrics").text
    assert not ran.exists()  # nothing of the tampered version ran

    refused = trail.read(AuditFilter(actions=["load_model"])).sort_values("id")
    assert refused["target"].tolist() == [f"model:v{tampered}", f"model:v{unsigned}", f"model:v{unsigned}"]
    assert set(refused["outcome"]) == {"refused"} and set(refused["actor"]) == {"system:api"}
    assert "classifier.pkl differs" in refused["detail"].iloc[0]
    assert "no file digests are recorded" in refused["detail"].iloc[1]
