"""`pip install .` alone gives a working package: pyproject.toml declares every distribution `core`
imports at run time (a clean virtual environment, the lock only as constraints: no package comes from
it that pyproject does not ask for)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_clean_install_of_the_package_runs_its_cli(tmp_path: Path) -> None:
    source = tmp_path / "source"  # pip builds in the source tree: a copy keeps the checkout clean
    shutil.copytree(ROOT / "core", source / "core", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=clean)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--constraint",
            str(ROOT / "requirements.txt"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=1500,
        env=clean,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    outside = tmp_path / "elsewhere"  # not the checkout: `core` must come from the installed package
    outside.mkdir()
    for args in (["--help"], ["serve", "--help"], ["flow", "--help"]):
        run = subprocess.run(
            [str(python), "-m", "core", *args],
            cwd=outside,
            capture_output=True,
            text=True,
            timeout=120,
            env=clean,
        )
        assert run.returncode == 0, (args, run.stderr[-3000:])
        assert "Usage" in run.stdout
    where = subprocess.run(
        [str(python), "-c", "import core; print(core.__file__)"],
        cwd=outside,
        capture_output=True,
        text=True,
        env=clean,
    )
    assert str(venv) in where.stdout, where.stdout
    # every module imports with only the declared distributions (the extras' encoders load lazily);
    # `python -m core` and the pyfunc's model code run, they are not imported
    check = (
        "import importlib, pkgutil, core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'core.'):\n"
        "    if m.name not in ('core.__main__', 'core.models.mlflow_model'):\n"
        "        importlib.import_module(m.name)\n"
    )
    imported = subprocess.run(
        [str(python), "-c", check], cwd=outside, capture_output=True, text=True, timeout=300, env=clean
    )
    assert imported.returncode == 0, imported.stderr[-3000:]
