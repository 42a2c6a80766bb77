"""The DVC pipeline (dvc.yaml) end to end, in a throw-away clone of the project.

Protects what `dvc repro` promises: the five stages run in order and write what dvc.yaml declares, a second
run skips everything and registers no model version, a changed hyperparameter re-runs exactly
train → evaluate → predict and registers a new version, and metrics / DAG commands work offline.
The real DVC binary runs the real `python -m core <step>` commands, with RAKUTEN_ROOT pointing every path
(data, models, reports, the SQLite MLflow store) into the temporary project.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pandas as pd
import pytest
import yaml

from core.config import CHAMPION_ALIAS, REGISTERED_MODEL_NAME
from core.data.demo.generator import DemoSpec, write_demo

pytestmark = pytest.mark.slow  # about a minute: the pipeline trains three times

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
DVC = VENV_BIN / "dvc"
STAGES = ("ingest", "features", "train", "evaluate", "predict")
# What a fresh clone holds that the pipeline needs: DVC's config, the pipeline, the params and the code.
CLONED_FILES = (
    "dvc.yaml",
    "params.yaml",
    ".dvcignore",
    ".gitignore",
    ".dvc/config",
    ".dvc/.gitignore",
    "data/corrections/.gitkeep",  # the reviewed labels' folder, a dependency of the ingest stage
)
# Settings a developer's shell may carry that would send the stages elsewhere (or to a real server).
_FOREIGN_ENV = ("RAKUTEN_", "MLFLOW_", "PREFECT_", "DVC_", "AWS_")


@dataclass(frozen=True)
class DvcProject:
    root: Path
    env: dict[str, str]
    first_run: str

    def dvc(self, *args: str) -> str:
        return _run([str(DVC), *args], self.root, self.env)

    def git(self, *args: str) -> str:
        return _run(["git", *args], self.root, self.env)

    def registry(self) -> dict:
        return json.loads((self.root / "reports" / "registry.json").read_text(encoding="utf-8"))

    def model_versions(self) -> list:
        """Registered versions in the project's own MLflow store (newest first)."""
        from mlflow import MlflowClient

        from core.tracking.registry import Registry

        uri = f"sqlite:///{self.root / 'mlflow.db'}"
        # registry_uri too: it would otherwise follow MLflow's process-wide URI, set by earlier tests
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        return Registry(client, REGISTERED_MODEL_NAME, self.root / "models" / ".registry.lock").versions()


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run a command; on failure, fail the test with everything it printed."""
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        pytest.fail(f"`{' '.join(cmd)}` exited {done.returncode}:\n{output}", pytrace=False)
    return output


def _ran(output: str) -> list[str]:
    return re.findall(r"Running stage '(\w+)'", output)


def _skipped(output: str) -> list[str]:
    return re.findall(r"Stage '(\w+)' didn't change, skipping", output)


def _env(root: Path, scratch: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_ENV)}
    # Let Python write bytecode next to the copied sources, as on a developer's machine: .dvcignore must
    # keep those files out of the code dependencies' hashes, or the second `dvc repro` would re-run.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for name in ("global", "system"):  # no user- or machine-wide DVC config (remotes, cache dirs)
        (scratch / name).mkdir(parents=True)
    env.update(
        {
            # `python` in the stage commands must be this virtual environment's interpreter.
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            "RAKUTEN_ROOT": str(root),
            "RAKUTEN_WORKERS": "2",
            "DVC_NO_ANALYTICS": "1",
            "DVC_GLOBAL_CONFIG_DIR": str(scratch / "global"),
            "DVC_SYSTEM_CONFIG_DIR": str(scratch / "system"),
            # DVC keeps per-repository state in /var/tmp/dvc by default: keep it with the test.
            "DVC_SITE_CACHE_DIR": str(scratch / "site-cache"),
        }
    )
    return env


@pytest.fixture(scope="module")
def dvc_project(tmp_path_factory: pytest.TempPathFactory) -> DvcProject:
    """A git + DVC project with 1,200 demo rows (with images) and one `dvc repro` behind it."""
    base = tmp_path_factory.mktemp("dvc")
    root = base / "project"
    root.mkdir()
    for name in CLONED_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, root / name)
    # DVC's wiring is under test, not the image encoder (the pretrained one has tests of its own): the
    # light encoder a default install resolves `auto` to, whether or not this environment has the extra
    params = root / "params.yaml"
    text = params.read_text(encoding="utf-8")
    params.write_text(text.replace("encoder: auto", "encoder: colour_edge", 1), encoding="utf-8")
    # dvc.yaml lists core packages as dependencies, so the code travels with the project.
    shutil.copytree(REPO / "core", root / "core", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    write_demo(root / "data" / "raw", DemoSpec(rows=1200, seed=3), workers=2)

    env = _env(root, base / "dvc-state")
    project = DvcProject(root, env, first_run="")
    project.git("init", "-q", "-b", "main")
    project.git("config", "user.name", "DVC test")
    project.git("config", "user.email", "dvc-test@example.invalid")
    project.git("config", "commit.gpgsign", "false")
    project.git("add", "-A")
    project.git("commit", "-q", "-m", "project")

    first_run = project.dvc("repro")
    project.git("add", "dvc.lock")
    project.git("commit", "-q", "-m", "pipeline run")  # `dvc exp run` needs a commit to branch from
    return DvcProject(root, env, first_run)


def test_first_repro_runs_every_stage_in_order(dvc_project: DvcProject) -> None:
    assert _ran(dvc_project.first_run) == list(STAGES), dvc_project.first_run
    lock = yaml.safe_load((dvc_project.root / "dvc.lock").read_text(encoding="utf-8"))
    assert sorted(lock["stages"]) == sorted(STAGES)


def test_first_repro_writes_every_declared_output(dvc_project: DvcProject) -> None:
    pipeline = yaml.safe_load((dvc_project.root / "dvc.yaml").read_text(encoding="utf-8"))
    declared = [
        next(iter(entry)) if isinstance(entry, dict) else entry
        for stage in pipeline["stages"].values()
        for entry in (*stage.get("outs", []), *stage.get("metrics", []))
    ]
    missing = [path for path in declared if not (dvc_project.root / path).exists()]
    assert not missing
    # the MLflow store is the temporary project's own, not the developer's
    assert (dvc_project.root / "mlflow.db").is_file()
    assert dvc_project.registry()["version"] == 1
    versions = dvc_project.model_versions()
    assert [v.version for v in versions] == [1]
    assert CHAMPION_ALIAS in versions[0].aliases


def test_predictions_are_in_submission_format(dvc_project: DvcProject) -> None:
    raw_test = pd.read_csv(dvc_project.root / "data" / "raw" / "X_test_update.csv", index_col=0)
    path = dvc_project.root / "data" / "processed" / "predictions.csv"
    assert path.read_text(encoding="utf-8").splitlines()[0] == ",prdtypecode"
    predictions = pd.read_csv(path, index_col=0)
    assert list(predictions.columns) == ["prdtypecode"]
    assert predictions.index.tolist() == raw_test.index.tolist()
    assert predictions["prdtypecode"].notna().all()


def test_second_repro_skips_every_stage_and_registers_nothing(dvc_project: DvcProject) -> None:
    before = len(dvc_project.model_versions())
    output = dvc_project.dvc("repro")
    assert _ran(output) == [], output
    assert sorted(_skipped(output)) == sorted(STAGES), output
    assert len(dvc_project.model_versions()) == before


def test_metrics_show_lists_the_challenge_metric(dvc_project: DvcProject) -> None:
    (workspace,) = json.loads(dvc_project.dvc("metrics", "show", "--json")).values()  # keyed "" in DVC 3
    metrics = workspace["data"]["reports/evaluation/metrics.json"]["data"]
    assert 0 < metrics["weighted_f1"] <= 1
    assert "weighted_f1" in dvc_project.dvc("metrics", "show")


def test_dag_chains_the_five_stages_in_order(dvc_project: DvcProject) -> None:
    ascii_dag = dvc_project.dvc("dag")
    positions = [ascii_dag.index(stage) for stage in STAGES]
    assert positions == sorted(positions), ascii_dag
    edges = set(re.findall(r'"(\w+)" -> "(\w+)"', dvc_project.dvc("dag", "--dot")))
    assert set(pairwise(STAGES)) <= edges
    assert ("train", "predict") not in edges  # predict uses the registry's champion, not the candidate


def test_experiment_with_a_new_param_retrains_and_registers(dvc_project: DvcProject) -> None:
    output = dvc_project.dvc("exp", "run", "-S", "text.C=0.2")
    assert _ran(output) == ["train", "evaluate", "predict"], output
    assert sorted(_skipped(output)) == ["features", "ingest"], output
    params = yaml.safe_load((dvc_project.root / "params.yaml").read_text(encoding="utf-8"))
    assert params["text"]["C"] == 0.2
    assert dvc_project.registry()["version"] == 2
    assert [v.version for v in dvc_project.model_versions()] == [2, 1]

    # Back to the committed value: the candidate comes back from DVC's run-cache, but evaluate is never
    # restored from it (reports/registry.json is uncached), so the gate really runs against the current
    # champion and registers again instead of replaying an old decision.
    output = dvc_project.dvc("exp", "run", "-S", "text.C=[0.25,0.5,1.0]")
    assert "Stage 'train' is cached - skipping run" in output, output
    assert _ran(output) == ["evaluate", "predict"], output
    assert dvc_project.registry()["version"] == 3
    assert len(dvc_project.model_versions()) == 3
