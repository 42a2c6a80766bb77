"""The batch CSV reader: the challenge's X files as downloaded, plain CSVs, and bad files named."""

from __future__ import annotations

import pytest

from core.errors import DataFormatError
from core.serving.batch_csv import parse_batch_csv


def test_parse_batch_csv_reads_the_challenge_test_file_layout() -> None:
    data = (
        ",designation,description,productid,imageid\n84916,Piscine Intex,<p>pompe</p>,1,2\n84917,Livre,,3,4\n"
    )
    rows = parse_batch_csv(data.encode())
    assert [(r.id, r.designation, r.description) for r in rows] == [
        ("84916", "Piscine Intex", "<p>pompe</p>"),
        ("84917", "Livre", ""),
    ]


def test_parse_batch_csv_ids_and_optional_description() -> None:
    rows = parse_batch_csv("\ufeffdesignation\nA\nB\n".encode())  # BOM, title only, no ids
    assert [(r.id, r.designation, r.description) for r in rows] == [(0, "A", ""), (1, "B", "")]
    rows = parse_batch_csv(b"id,designation,description\nsku-1,A,x\n")
    assert rows[0].id == "sku-1"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "empty_csv"),
        (b"title,description\nA,B\n", "missing_column"),
        (b'designation\n"unclosed\n', "malformed_csv"),
        ("designation\nCafé\n".encode("utf-16"), "encoding"),
    ],
)
def test_parse_batch_csv_refuses_bad_files(data: bytes, problem: str) -> None:
    with pytest.raises(DataFormatError) as err:
        parse_batch_csv(data)
    assert err.value.problem == problem
