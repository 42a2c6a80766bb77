"""Draw the house from the code, into docs/architecture.md between its markers: the import graph between
`core`'s packages (grimp, the library import-linter checks the layers with) as a Mermaid diagram, and
where each setting is read. Run `make architecture` after moving code; a test fails when they are stale.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

import grimp

from core.config import Settings

DOC = Path(__file__).with_name("architecture.md")
BEGIN, END = "<!-- drawing: begin (make architecture) -->", "<!-- drawing: end -->"
SETTINGS_BEGIN, SETTINGS_END = "<!-- settings: begin (make architecture) -->", "<!-- settings: end -->"
CORE = Path(__file__).resolve().parents[1] / "core"
# Used by nearly every package: drawn as one box at the bottom instead of ~50 arrows.
FOUNDATIONS = ("config", "errors", "io", "params", "progress", "categories", "net", "extras")


def edges() -> list[tuple[str, str]]:
    """(importer, imported) between core's packages and top modules, type-checking imports excluded."""
    graph = grimp.build_graph("core", exclude_type_checking_imports=True)
    units = sorted({m.split(".")[1] for m in graph.modules if m.count(".") >= 1} - {"__main__"})
    found = []
    for a in units:
        for b in units:
            if a != b and graph.direct_import_exists(
                importer=f"core.{a}", imported=f"core.{b}", as_packages=True
            ):
                found.append((a, b))
    return found


def reduced(found: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The arrows not implied by a longer path (a → b is left out when a reaches b through others)."""
    out = {a: {b for x, b in found if x == a} for a, _ in found}

    def reaches(start: str, goal: str, skip: tuple[str, str]) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            for nxt in out.get(node, ()):
                if (node, nxt) != skip and nxt not in seen:
                    if nxt == goal:
                        return True
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    return [(a, b) for a, b in found if not reaches(a, b, (a, b))]


def mermaid(found: list[tuple[str, str]]) -> str:
    lines = ["```mermaid", "flowchart TD"]
    drawn = sorted({a for a, _ in found} | {b for _, b in found})
    for unit in drawn:
        if unit not in FOUNDATIONS:
            lines.append(f"  {unit}[{unit}]")
    lines.append(f"  foundations[[{' · '.join(FOUNDATIONS)}]]")
    inner = [(a, b) for a, b in found if a not in FOUNDATIONS and b not in FOUNDATIONS]
    lines += [f"  {a} --> {b}" for a, b in reduced(inner)]
    # every package uses the foundations: the arrow is drawn from the lowest ones only
    lowest = sorted(u for u in drawn if u not in FOUNDATIONS and not any(a == u for a, _ in inner))
    lines += [f"  {u} -.-> foundations" for u in lowest]
    lines.append("```")
    return "\n".join(lines)


def settings_readers() -> dict[str, list[str]]:
    """Each setting (a field or a path derived in config.py) → the modules that read it from a
    Settings object (`settings.x`, `settings().x`, `self.settings.x`, `s.x`)."""
    derived = {n for n, v in vars(Settings).items() if isinstance(v, property) and not n.startswith("_")}
    names = set(Settings.model_fields) | derived
    readers: dict[str, set[str]] = defaultdict(set)
    for path in sorted(CORE.rglob("*.py")):
        module = ".".join(path.relative_to(CORE.parent).with_suffix("").parts)
        if module == "core.config":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in names:
                owner = ast.unparse(node.value)
                if owner in {"s", "settings()"} or owner.endswith("settings"):
                    readers[node.attr].add(module.removeprefix("core."))
    return {name: sorted(readers[name]) for name in sorted(names)}


def settings_table() -> str:
    rows = ["| setting | read in (`core.`…) |", "|---|---|"]
    for name, modules in settings_readers().items():
        rows.append(f"| `{name}` | {', '.join(modules) or '— (config.py only)'} |")
    return "\n".join(rows)


def _replace(text: str, begin: str, end: str, body: str) -> str:
    block = f"{begin}\n{body}\n{end}"
    return re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)


def render(text: str) -> str:
    text = _replace(text, BEGIN, END, mermaid(edges()))
    return _replace(text, SETTINGS_BEGIN, SETTINGS_END, settings_table())


if __name__ == "__main__":
    current = DOC.read_text(encoding="utf-8")
    updated = render(current)
    if "--check" in sys.argv:
        sys.exit(
            0 if updated == current else "docs/architecture.md's drawing is stale: run `make architecture`"
        )
    DOC.write_text(updated, encoding="utf-8")
