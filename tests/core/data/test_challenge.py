"""Finding and reading the challenge files exactly as downloaded (and as commonly renamed)."""

from pathlib import Path

import pytest

from core.data.challenge import X_COLUMNS, image_name, locate, read_table
from core.errors import DataFormatError, DataNotFoundError

HEADER = ",designation,description,productid,imageid\n"


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_image_name_matches_the_download() -> None:
    assert image_name(1263597046, 3804725264) == "image_1263597046_product_3804725264.jpg"


@pytest.mark.parametrize(
    ("x", "y", "t", "naming"),
    [
        ("X_train_update.csv", "Y_train_CVw08PX.csv", "X_test_update.csv", "official"),
        ("X_train.csv", "Y_train.csv", "X_test.csv", "renamed"),
    ],
)
def test_locate_accepts_both_namings(tmp_path: Path, x: str, y: str, t: str, naming: str) -> None:
    for name in (x, y, t):
        (tmp_path / name).touch()
    (tmp_path / "images" / "image_train").mkdir(parents=True)
    files = locate(tmp_path)
    assert (files.x_train.name, files.y_train.name, files.x_test and files.x_test.name) == (x, y, t)
    assert files.naming == naming
    assert files.image_dirs["train"] == tmp_path / "images" / "image_train"
    assert files.image_dirs["test"] is None
    assert files.notes == (
        "no images/image_test/ folder: every test image will be reported missing (text is still used)",
    )


def test_locate_prefers_the_official_name_and_says_so(tmp_path: Path) -> None:
    for name in ("X_train_update.csv", "X_train.csv", "Y_train.csv"):
        (tmp_path / name).touch()
    files = locate(tmp_path)
    assert files.x_train.name == "X_train_update.csv"
    assert any("X_train.csv" in n for n in files.notes)


def test_locate_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "X_train.csv").touch()
    with pytest.raises(DataNotFoundError, match=r"Y_train_CVw08PX\.csv or Y_train\.csv"):
        locate(tmp_path)
    with pytest.raises(DataNotFoundError, match="does not exist"):
        locate(tmp_path / "nowhere")


def test_read_keeps_the_unnamed_id_column_and_text_as_written(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "X.csv",
        HEADER + '0,NA,"<p>Très &amp; bien</p>, avec virgule",3804725264,1263597046\n1,Livre,,12,34\n',
    )
    frame = read_table(path, X_COLUMNS).frame
    assert list(frame.columns) == ["id", *X_COLUMNS]
    assert frame.loc[0, "designation"] == "NA"  # a literal title, not a missing value
    assert frame.loc[0, "description"] == "<p>Très &amp; bien</p>, avec virgule"
    assert frame["description"].isna().tolist() == [False, True]
    assert frame.loc[0, "productid"] == "3804725264"


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path / "X.csv", "\ufeff" + HEADER + "0,a,,1,2\n")
    assert read_table(path, X_COLUMNS).frame["id"].tolist() == ["0"]


def test_bad_lines_come_back_separately(tmp_path: Path) -> None:
    path = _write(tmp_path / "X.csv", HEADER + "0,a,,1,2\n1,b,c,d,3,4,5\n2,c,,5,6\n")
    result = read_table(path, X_COLUMNS)
    assert result.frame["id"].tolist() == ["0", "2"]
    assert result.bad_lines == [["1", "b", "c", "d", "3", "4", "5"]]


@pytest.mark.parametrize(
    ("content", "encoding", "problem", "message"),
    [
        (HEADER.replace(",", ";") + "0;a;b;1;2\n", "utf-8", "delimiter", "semicolons"),
        (HEADER.replace(",", "\t") + "0\ta\tb\t1\t2\n", "utf-8", "delimiter", "tabs"),
        (HEADER + "0,Journal Ã©tÃ© élève,,1,2\n", "latin-1", "encoding", "not UTF-8"),
        ("", "utf-8", "empty_file", "empty"),
        (",designation,productid,imageid\n0,a,1,2\n", "utf-8", "missing_column", "description"),
        (
            "designation,description,productid,imageid\na,b,1,2\n",
            "utf-8",
            "missing_id_column",
            "no id column",
        ),
    ],
)
def test_fatal_file_problems(tmp_path: Path, content: str, encoding: str, problem: str, message: str) -> None:
    path = _write(tmp_path / "X_train.csv", content, encoding)
    with pytest.raises(DataFormatError, match=message) as info:
        read_table(path, X_COLUMNS)
    assert info.value.problem == problem
    assert info.value.path == str(path)


def test_unreadable_file(tmp_path: Path) -> None:
    folder = tmp_path / "X_train.csv"
    folder.mkdir()  # a directory where a file is expected: reading fails with an OS error
    with pytest.raises(DataFormatError, match="Cannot read") as info:
        read_table(folder, X_COLUMNS)
    assert info.value.problem == "unreadable_file"
