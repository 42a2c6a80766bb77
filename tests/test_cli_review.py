"""`python -m core review …`: the scan says what to run first, import is all or nothing with the bad
lines named, export writes the file the next ingest applies, stats count it."""

from pathlib import Path

from typer.testing import CliRunner

from core.cli import app
from core.config import Settings
from core.storage.audit import AuditTrail
from core.storage.corrections_file import read_corrections_file

runner = CliRunner()
HEADER = "product_key,source,verdict,old_code,new_code,reviewer,row_id\n"


def test_scan_before_any_training_says_what_to_run(project: Path) -> None:
    result = runner.invoke(app, ["review", "scan"])
    assert result.exit_code == 2
    assert "python -m core train" in result.output


def test_import_export_stats(project: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "train:1,training,relabel,10,40,ana,1\ntrain:2,training,relabel,10,99,ana,2\n")
    result = runner.invoke(app, ["review", "import", str(bad)])
    assert result.exit_code == 2 and "none was applied" in result.output and "line 3" in result.output

    good = tmp_path / "good.csv"
    good.write_text(HEADER + "train:1,training,relabel,10,40,ana,1\ntrain:2,training,unclear,10,,bo,2\n")
    result = runner.invoke(app, ["review", "import", str(good)])
    assert result.exit_code == 0, result.output
    assert "2 corrections imported" in result.output
    again = runner.invoke(app, ["review", "import", str(good)])
    assert again.exit_code == 2 and "already corrected the same way" in again.output

    result = runner.invoke(app, ["review", "export"])
    assert result.exit_code == 0, result.output
    exported = read_corrections_file(Settings().corrections_file)
    assert exported["product_key"].tolist() == ["train:1", "train:2"]

    stats = runner.invoke(app, ["review", "stats"], env={"COLUMNS": "200"})
    assert stats.exit_code == 0, stats.output
    assert "2 active corrections" in stats.output and "unclear" in stats.output

    # each change in the audit trail, failures included; reading the counts is not an action
    rows = AuditTrail.open(str(Settings().audit_url)).read().to_dict("records")[::-1]
    assert [(r["action"], r["outcome"]) for r in rows] == [
        ("import_corrections", "failed"),
        ("import_corrections", "done"),
        ("import_corrections", "failed"),
        ("export_corrections", "done"),
    ]
    assert rows[1]["target"] == f"file:{good}" and rows[1]["detail"] == "2 corrections added"
    assert rows[3]["target"] == f"file:{Settings().corrections_file}"
