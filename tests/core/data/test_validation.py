"""Row rules on small tables: each bad row is quarantined with its reason, nothing is lost."""

import pandas as pd
import pytest

from core.data.validation import RULES, ValidationReport, check_rows, image_problems, problem
from core.errors import DataFormatError


def _x(rows: list[tuple[str, str | None, str | None, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        rows, columns=["id", "designation", "description", "productid", "imageid"], dtype="string"
    )


def _y(rows: list[tuple[str, str | None]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["id", "prdtypecode"], dtype="string")


GOOD = [("0", "Piscine tubulaire", None, "11", "21"), ("1", "Roman", "<p>poche</p>", "12", "22")]
LABELS = [("0", "2583"), ("1", "10")]


def test_clean_rows_are_kept_typed() -> None:
    result = check_rows(_x(GOOD), "train", y=_y(LABELS))
    assert result.problems == []
    assert result.quarantined.empty
    kept = result.kept
    assert kept["id"].tolist() == [0, 1]
    assert kept["prdtypecode"].tolist() == [2583, 10]
    assert str(kept["productid"].dtype) == "int64"


@pytest.mark.parametrize(
    ("x_rows", "y_rows", "code", "bad_id"),
    [
        ([*GOOD, ("2", "  ", None, "13", "23")], [*LABELS, ("2", "2583")], "empty_title", 2),
        ([*GOOD, ("2", None, None, "13", "23")], [*LABELS, ("2", "2583")], "empty_title", 2),
        ([*GOOD, ("2", "Jeu", None, "13", "23")], [*LABELS, ("2", "9999")], "unknown_label", 2),
        ([*GOOD, ("2", "Jeu", None, "13", "23")], [*LABELS, ("2", "abc")], "unknown_label", 2),
        ([*GOOD, ("2", "Jeu", None, "13", "23")], [*LABELS, ("2", None)], "missing_label", 2),
        ([*GOOD, ("2", "Jeu", None, "x13", "23")], [*LABELS, ("2", "40")], "invalid_productid", 2),
        ([*GOOD, ("2", "Jeu", None, "13", "")], [*LABELS, ("2", "40")], "invalid_imageid", 2),
        ([*GOOD, ("1", "Jeu", None, "13", "23")], LABELS, "duplicate_id", 1),
        (GOOD, [*LABELS, ("1", "10")], "duplicate_label_id", 1),
    ],
)
def test_row_rule_quarantines_and_reports(x_rows, y_rows, code: str, bad_id: int) -> None:
    result = check_rows(_x(x_rows), "train", y=_y(y_rows))
    codes = {p.code: p for p in result.problems}
    assert code in codes
    assert codes[code].row_ids == [bad_id]
    assert codes[code].severity == "error"
    assert bad_id not in result.kept["id"].tolist()
    assert result.quarantined["reasons"].str.contains(code).all()
    # nothing silently dropped: every input row is kept or quarantined
    assert len(result.kept) + len(result.quarantined) == len(x_rows)


def test_a_row_with_several_problems_lists_them_all() -> None:
    result = check_rows(_x([*GOOD, ("2", "", None, "bad", "23")]), "train", y=_y([*LABELS, ("2", "7")]))
    assert set(result.quarantined.loc[0, "reasons"].split(";")) == {
        "empty_title",
        "invalid_productid",
        "unknown_label",
    }


def test_quarantined_rows_keep_their_original_values_and_label() -> None:
    result = check_rows(_x([*GOOD, ("2", "Jeu", "desc", "x13", "23")]), "train", y=_y([*LABELS, ("2", "40")]))
    row = result.quarantined.iloc[0]
    assert (row["productid"], row["description"], row["prdtypecode"], row["split"]) == (
        "x13",
        "desc",
        "40",
        "train",
    )


def test_malformed_lines_are_quarantined_not_counted_as_misaligned() -> None:
    result = check_rows(
        _x(GOOD), "train", y=_y([*LABELS, ("2", "40")]), x_bad_lines=[["2", "a", "b", "c", "d", "e"]]
    )
    assert [p.code for p in result.problems] == ["malformed_line"]
    assert result.quarantined["raw_fields"].tolist() == ["2 | a | b | c | d | e"]


@pytest.mark.parametrize(
    ("y_rows", "message"),
    [
        (LABELS[:1], r"1 id\(s\) in X have no label \(e.g. \[1\]\)"),
        ([*LABELS, ("5", "10")], r"1 label id\(s\) have no row in X \(e.g. \[5\]\)"),
        ([*LABELS, ("x", "10")], "not an integer"),
    ],
)
def test_misaligned_x_and_y_is_fatal(y_rows, message: str) -> None:
    with pytest.raises(DataFormatError, match=message) as info:
        check_rows(_x(GOOD), "train", y=_y(y_rows))
    assert info.value.problem == "misaligned_ids"


def test_test_split_needs_no_labels() -> None:
    result = check_rows(_x(GOOD), "test")
    assert "prdtypecode" not in result.kept
    assert len(result.kept) == 2


def test_image_statuses_become_warnings_and_info() -> None:
    ids = pd.Series([1, 2, 3, 4])
    status = pd.Series(["ok", "missing", "corrupt", "odd_size"])
    found = {p.code: (p.severity, p.row_ids) for p in image_problems("train", ids, status)}
    assert found == {
        "missing_image": ("warning", [2]),
        "corrupt_image": ("warning", [3]),
        "unexpected_image_size": ("info", [4]),
    }


def test_report_round_trips_and_renders() -> None:
    report = ValidationReport(
        source_dir="/data",
        naming="official",
        created_at="2026-01-01T00:00:00+00:00",
        problems=[problem("empty_title", "train", range(30)), problem("missing_image", "test", [7])],
        stats={
            "train": {
                "rows_read": 10,
                "rows_kept": 9,
                "rows_quarantined": 1,
                "empty_descriptions": 3,
                "images_missing": 0,
                "images_corrupt": 0,
            }
        },
    )
    assert report.status == "quarantined"
    again = ValidationReport.from_dict(report.to_dict())
    assert again == report
    md = report.to_markdown()
    assert "empty_title" in md and "| 30 |" in md and "…" in md
    assert set(RULES) >= {p.code for p in report.problems}
