"""The full stack's configuration exercised without Docker: an MLflow server on PostgreSQL with its
artifacts in a real S3 server (as docker-compose.yml runs it) — the pipeline logs, registers and
promotes through it, and the champion loads back and predicts — a DVC remote on that S3 server,
pushed to and pulled from, and the audit trail in the stack's PostgreSQL (the inference database, as
the compose file leaves RAKUTEN_AUDIT_URL unset), whose rows the database refuses to change."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import boto3
import pytest
import sqlalchemy as sa

from core.config import Settings
from core.data.demo.generator import DemoSpec, write_demo
from core.params import Params
from core.pipeline import run_pipeline
from core.serving.predictor import ImageLimits, Product, predict
from core.storage.audit import AuditEvent, AuditFilter, AuditTrail
from core.tracking.store import load_classifier
from tests.integration.conftest import S3Server, _cannot_start, _executable

pytestmark = pytest.mark.slow


def bucket_keys(s3: S3Server, bucket: str) -> list[str]:
    client = boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        aws_access_key_id=s3.env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=s3.env["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    )
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def test_mlflow_on_postgres_with_s3_artifacts(
    mlflow_full_stack: str, postgres_url: str, s3_server: S3Server, tmp_path: Path
) -> None:
    root = tmp_path / "project"
    write_demo(root / "data" / "raw", DemoSpec(rows=1500, seed=11), workers=2)
    settings = Settings(root=root, mlflow_tracking_uri=mlflow_full_stack)
    result = run_pipeline(settings, Params(), workers=2)
    assert (result.evaluated.version, result.evaluated.champion_after) == (1, 1)

    keys = bucket_keys(s3_server, "mlflow")  # the artifacts went to S3, through the server
    assert any(k.endswith("MLmodel") for k in keys) and any("confusion" in k for k in keys), keys[:20]
    engine = sa.create_engine(postgres_url.rsplit("/", 1)[0] + "/mlflow")
    with engine.connect() as conn:  # the run, the version and the alias are in PostgreSQL
        assert conn.execute(sa.text("SELECT count(*) FROM runs")).scalar() == 1
        assert conn.execute(sa.text("SELECT count(*) FROM model_versions")).scalar() == 1
        alias = conn.execute(sa.text("SELECT alias, version FROM registered_model_aliases")).all()
    engine.dispose()
    assert ("champion", 1) in [tuple(row) for row in alias]

    classifier = load_classifier(settings, alias="champion")  # downloaded back from S3 via the server
    answer = predict(classifier, [Product("Piscine tubulaire Intex 366 x 122 cm")], ImageLimits.of(settings))[
        0
    ]
    assert answer.code and 0 < answer.probability <= 1


def test_dvc_remote_on_s3(s3_server: S3Server, tmp_path: Path) -> None:
    dvc = _executable("dvc")
    git = shutil.which("git")
    if dvc is None or git is None:
        _cannot_start("dvc or git missing", "DVC")
    assert dvc is not None and git is not None
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    who = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    env = {**os.environ, **s3_server.env, **who, "DVC_NO_ANALYTICS": "1"}

    def run(*args: str) -> str:
        done = subprocess.run(list(args), cwd=repo, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        return done.stdout + done.stderr

    run(git, "init", "-q")
    run(dvc, "init", "-q")
    run(dvc, "remote", "add", "-d", "stack", "s3://dvc/store")
    run(dvc, "remote", "modify", "stack", "endpointurl", s3_server.endpoint)
    table = repo / "data" / "train.csv"
    table.write_text("id,designation\n0,Piscine tubulaire\n1,Lampe de chevet\n")
    run(dvc, "add", "data/train.csv")
    run(dvc, "push")
    assert any(k.startswith("store/") for k in bucket_keys(s3_server, "dvc"))

    table.unlink()
    shutil.rmtree(repo / ".dvc" / "cache")
    run(dvc, "pull")
    assert table.read_text() == "id,designation\n0,Piscine tubulaire\n1,Lampe de chevet\n"


def test_audit_trail_in_postgres_is_append_only(postgres_url: str, tmp_path: Path) -> None:
    settings = Settings(root=tmp_path, inference_log_url=postgres_url)
    assert settings.audit_url == postgres_url  # beside the inference log, as in docker-compose.yml
    trail = AuditTrail.open(str(settings.audit_url))
    AuditTrail.open(str(settings.audit_url))  # every service opens it: the second opening changes nothing
    actor = f"alice-{tmp_path.name}"
    for outcome in ("refused", "done"):
        trail.record(
            AuditEvent(actor, "operator", "oidc", "promote", "model:v2", "better F1", outcome, "console")
        )

    engine = sa.create_engine(postgres_url)
    try:
        for statement in (
            "UPDATE audit_events SET outcome = 'done'",
            "DELETE FROM audit_events",
            "TRUNCATE audit_events",
        ):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()
    rows = trail.read(AuditFilter(actors=[actor]))
    assert rows["outcome"].tolist() == ["done", "refused"]  # newest first, both still there
    trail.engine.dispose()
