"""Service tokens against the prediction service as users run it (`python -m core serve`, real HTTP):
rotating a token — make the new one, revoke the old — takes effect in the running process within about
a second, with no restart, and each call is in the audit trail. The service here requires a token for
predictions too, as a public deployment does: the HTTP client sends its own."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from core.identity.roles import Role
from core.identity.service_tokens import create_token, revoke_token
from core.serving.client import ApiBackend, ApiRejected
from core.serving.predictor import Product
from core.storage.audit import AuditFilter, AuditTrail
from tests.integration.test_api_server import start_server, stop_server

pytestmark = pytest.mark.slow

ROTATION_S = 2.0  # the service looks at the token file at most once a second: this leaves a margin


def reload(url: str, token: str) -> httpx.Response:
    return httpx.post(f"{url}/admin/reload", headers={"Authorization": f"Bearer {token}"}, timeout=60)


def test_a_rotated_service_token_takes_effect_without_a_restart(trained_source: Path, tmp_path: Path) -> None:
    tokens = tmp_path / "service_tokens.json"
    database = f"sqlite:///{tmp_path / 'inference.db'}"
    old, old_record = create_token(tokens, "console", [Role.OPERATOR])
    env = {  # the shared trained project stays as it was: what the service writes goes here
        "RAKUTEN_SERVICE_TOKENS_FILE": str(tokens),
        "RAKUTEN_INFERENCE_LOG_URL": database,
        "RAKUTEN_MODELS_DIR": str(tmp_path / "models"),
        "RAKUTEN_REVIEW_INPUTS_DIR": str(tmp_path / "review_inputs"),
        "RAKUTEN_API_PREDICT_REQUIRES_TOKEN": "true",
    }
    server = start_server(trained_source, tmp_path / "api.log", alias_check_s=0, env=env)
    try:
        assert reload(server.url, old).status_code == 200
        new, _ = create_token(tokens, "console", [Role.OPERATOR])
        revoke_token(tokens, old_record.id)
        rotated = time.monotonic()
        while (refused := reload(server.url, old)).status_code == 200:
            assert time.monotonic() - rotated < ROTATION_S, "the revoked token still works"
            time.sleep(0.05)
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_token"
        assert refused.headers["www-authenticate"] == "Bearer"
        r = reload(server.url, new)
        assert r.status_code == 200 and r.json()["outcome"] == "unchanged", r.text
        pool = Product("Piscine tubulaire Intex", "pompe")
        assert ApiBackend(server.url, token=new).predict(pool).model_version == 1
        for client in (ApiBackend(server.url), ApiBackend(server.url, token=old)):
            with pytest.raises(ApiRejected) as refused_prediction:
                client.predict(pool)
            assert refused_prediction.value.status == 401
    finally:
        stop_server(server)
    trail = AuditTrail.open(database)  # the audit trail's default place: the inference log's database
    rows = trail.read(AuditFilter(actions=["reload"])).sort_values("id").to_dict("records")
    assert {(r["actor"], r["outcome"]) for r in rows} == {
        ("service:console", "done"),
        ("anonymous", "refused"),
    }
    assert rows[-1]["outcome"] == "done" and rows[-2]["detail"] == "invalid_token"
    assert {r["origin"] for r in rows} == {"127.0.0.1"}
