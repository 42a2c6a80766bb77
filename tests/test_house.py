"""House rules that keep the code base readable as it grows (`docs/architecture.md`)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "core"

# The fork server's child *becomes* the requesting client's process: it takes on that process's whole
# environment, as `execve` would (`core/orchestration/forkserver.py`). Nothing else may write it.
_ENVIRONMENT_WRITERS = {"core/orchestration/forkserver.py": 2}


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and _name(node.value) == "os"


def _name(node: ast.AST) -> str | None:
    return node.id if isinstance(node, ast.Name) else None


def _environment_writes(tree: ast.AST) -> list[int]:
    """Lines that write the process environment: `os.environ[k] = …`, `del os.environ[k]`,
    `os.environ.setdefault/update/pop/clear(…)`, `os.putenv/unsetenv(…)`."""
    lines = []
    for node in ast.walk(tree):
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign | ast.Delete):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Subscript) and _is_environ(t.value) for t in targets):
            lines.append(node.lineno)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            func = node.func
            mutators = {"setdefault", "update", "pop", "popitem", "clear", "__setitem__"}
            if func.attr in mutators and _is_environ(func.value):
                lines.append(node.lineno)
            if func.attr in {"putenv", "unsetenv"} and _name(func.value) == "os":
                lines.append(node.lineno)
    return sorted(lines)


def test_the_rule_sees_every_kind_of_environment_write() -> None:
    source = (
        "import os\nos.environ['A'] = '1'\nos.environ.setdefault('B', '2')\nos.putenv('C', '3')\n"
        "del os.environ['D']\nos.environ.update(E='5')\nvalue = os.environ.get('F')\n"
    )
    assert _environment_writes(ast.parse(source)) == [2, 3, 4, 5, 6]


def test_core_never_writes_the_process_environment() -> None:
    """Configuration flows through Settings passed as an argument; a process started by core gets an
    environment built for it (`env=`), never a changed `os.environ`."""
    found = {}
    for path in sorted(CORE.rglob("*.py")):
        lines = _environment_writes(ast.parse(path.read_text(encoding="utf-8")))
        name = path.relative_to(ROOT).as_posix()
        if lines and len(lines) != _ENVIRONMENT_WRITERS.get(name):
            found[name] = lines
    assert not found, f"os.environ written at: {found}"


MAX_LINES = 260  # "~250": a module longer than this says why at its top
SIZE_NOTE = "# Size:"


def test_a_long_module_says_why_at_its_top() -> None:
    """Modules stay small and named for what they hold; one that grows past ~250 lines carries a
    one-line `# Size: <reason>` among its first lines, so the next reader knows it was a choice."""
    unexplained = {}
    for path in sorted(CORE.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) > MAX_LINES and not any(line.startswith(SIZE_NOTE) for line in lines[:25]):
            unexplained[path.relative_to(ROOT).as_posix()] = len(lines)
    assert not unexplained, f"over {MAX_LINES} lines without a `{SIZE_NOTE}` line: {unexplained}"


def test_the_architecture_page_is_drawn_from_the_current_code() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("draw_architecture", ROOT / "docs" / "draw_architecture.py")
    assert spec and spec.loader
    draw = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(draw)
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert draw.render(page) == page, "docs/architecture.md is stale: run `make architecture`"
    assert "mlflow_tracking_uri" in page and "flowchart TD" in page


def test_formatting_is_the_formatter_s() -> None:
    """No hand-packed lines: `ruff format` decides the layout everywhere (`make format`)."""
    markers = ("fmt: " + "skip", "fmt: " + "off")  # split: this file must not match itself
    folders = ("core", "app", "pages", "tests", "benchmarks", "docs")
    packed = [
        path.relative_to(ROOT).as_posix()
        for folder in folders
        for path in sorted((ROOT / folder).rglob("*.py"))
        if any(marker in path.read_text(encoding="utf-8") for marker in markers)
    ]
    assert not packed, packed


def test_an_import_inside_a_function_says_why() -> None:
    """Imports sit at a module's top, where its header says what it depends on; one inside a function
    is there for a measured start-up cost, said in a `# Lazy imports:` comment of the module (or beside
    the import)."""
    unexplained = {}
    for path in sorted(CORE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if "# Lazy imports:" in text:
            continue
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    near = lines[max(0, inner.lineno - 3) : inner.end_lineno]
                    if not any("#" in line for line in near):
                        unexplained.setdefault(path.relative_to(ROOT).as_posix(), []).append(inner.lineno)
    assert not unexplained, f"imports inside functions, with no reason given: {unexplained}"


# Pages reach the platform through `core.ui` (components and their view-models) and the pure domain
# modules; never a tracking, orchestration, HTTP or database client.
_PAGE_IMPORTS = (
    "streamlit",
    "pathlib",
    "core.ui",
    "core.errors",
    "core.categories",
    "core.data.explore",
    "core.serving.predictor",
    "core.serving.batch_csv",
)


def test_pages_import_only_the_console_layer_and_domain_modules() -> None:
    found = {}
    for path in [ROOT / "app" / "Home.py", *sorted((ROOT / "pages").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if not any(name == ok or name.startswith(ok + ".") for ok in _PAGE_IMPORTS):
                    found.setdefault(path.relative_to(ROOT).as_posix(), []).append(name)
    assert not found, found


# Registered models are pickles that name these modules (the views' classes, the text cleaning and image
# encoders they carry): renamed, every model already in a registry would no longer load.
_PICKLED_NAMES = {
    "text": ["core/features/text.py", "core/models/text.py"],
    "image": ["core/features/image.py", "core/models/image.py"],
}


def test_no_module_name_is_shared_by_two_packages() -> None:
    """`core.ui.runs_view`, not a third `runs.py`: a name says which room it is in."""
    seen: dict[str, list[str]] = {}
    for path in sorted(CORE.rglob("*.py")):
        if path.name != "__init__.py":
            seen.setdefault(path.stem, []).append(path.relative_to(ROOT).as_posix())
    shared = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert shared == _PICKLED_NAMES


# The audit trail is append-only: `audit_events` is only ever inserted into or read. The database refuses
# the rest too (triggers: tests/core/storage/test_audit.py); this keeps the code from even trying.
_AUDIT_TABLE = "audit_events"
_AUDIT_READS_AND_WRITES = {"insert", "select"}  # sa.insert(audit_events), sa.select(audit_events, …)
_AUDIT_COLUMNS = {"c", "columns", "name", "insert", "select"}  # audit_events.c.actor, audit_events.insert()
_REWRITING_SQL = re.compile(
    rf"\b(UPDATE|DELETE\s+FROM|TRUNCATE(\s+TABLE)?|DROP\s+TABLE(\s+IF\s+EXISTS)?|ALTER\s+TABLE|REPLACE\s+INTO)"
    rf"\s+[\"`]?{_AUDIT_TABLE}\b",
    re.IGNORECASE,
)


def _audit_rewrites(tree: ast.AST) -> list[int]:
    """Lines that could change or remove audit rows: any use of the `audit_events` table other than
    inserting, selecting or naming its columns, and any SQL text that updates, deletes, truncates,
    drops or alters it."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    lines = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _REWRITING_SQL.search(node.value)
        ):
            lines.append(node.lineno)
        named = (isinstance(node, ast.Name) and node.id == _AUDIT_TABLE) or (
            isinstance(node, ast.Attribute) and node.attr == _AUDIT_TABLE
        )
        if not named or isinstance(getattr(node, "ctx", None), ast.Store):
            continue
        parent = parents.get(node)
        if isinstance(parent, ast.Attribute) and parent.attr in _AUDIT_COLUMNS:
            continue
        if isinstance(parent, ast.Call) and node in parent.args:
            func = parent.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in _AUDIT_READS_AND_WRITES:
                continue
        lines.append(node.lineno)
    return sorted(set(lines))


def test_the_audit_rule_sees_every_kind_of_rewrite() -> None:
    source = (
        "import sqlalchemy as sa\nfrom core.storage.audit import audit_events\n"
        "sa.update(audit_events)\nsa.delete(audit_events)\naudit_events.delete()\n"
        "conn.exec_driver_sql('DELETE FROM audit_events')\nq = 'update audit_events set x = 1'\n"
        "conn.exec_driver_sql('TRUNCATE TABLE audit_events')\nsql = 'DROP TABLE IF EXISTS audit_events'\n"
        "helper(audit_events)\naudit = audit_events\n"
        "sa.insert(audit_events).values(actor='a')\nsa.select(audit_events.c.actor)\n"
        "sa.select(audit_events).where(audit_events.c.id > 1)\n"
        "'CREATE TRIGGER t BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_events'\n"
        "audit_events = sa.Table('audit_events', metadata)\n"
    )
    assert _audit_rewrites(ast.parse(source)) == [3, 4, 5, 6, 7, 8, 9, 10, 11]


def test_no_module_changes_or_removes_audit_rows() -> None:
    found = {}
    for path in sorted(CORE.rglob("*.py")):
        lines = _audit_rewrites(ast.parse(path.read_text(encoding="utf-8")))
        if lines:
            found[path.relative_to(ROOT).as_posix()] = lines
    assert not found, f"audit_events used other than to insert or select, at: {found}"
