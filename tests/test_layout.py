"""The house rules of server/, checked on the source: no import circle, no SQL outside
storage/, nobody outside hub/ touching the hub's own state, and each concern in its room.

Read from the files with ``ast``, so a rule broken anywhere (also inside a function) fails
here, naming the place.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "server"


def modules() -> dict[str, Path]:
    """Every module of server/ by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in sorted(SERVER.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> Iterator[tuple[int, str]]:
    """(line, module) of each server module ``path`` imports, wherever the import stands;
    ``from server.intake import personal_code`` imports the module ``personal_code``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in known:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                yield node.lineno, sub if sub in known else node.module
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}:{node.lineno}: a relative import; spell it absolute")


def test_no_module_of_server_imports_itself_back_through_others() -> None:
    known = modules()
    graph = {
        name: {m for _, m in imports(path, known) if m != name} for name, path in known.items()
    }
    # Tarjan's strongly connected components: a component of two or more is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not circles, f"import circles in server/: {circles}"


_SQL = re.compile(
    r"\b(SELECT\b.*\bFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX|TRIGGER)"
    r"|PRAGMA\s+\w+|BEGIN\s+IMMEDIATE)\b",
    re.S,
)


def test_no_sql_and_no_database_driver_outside_storage() -> None:
    found = []
    known = modules()
    for name, path in known.items():
        if name.startswith("server.storage"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if _SQL.search(node.value):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: SQL")
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                module = node.module if isinstance(node, ast.ImportFrom) else None
                if {"sqlite3", "aiosqlite"} & {*names, module}:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: a database driver")
    assert not found, found


def test_only_the_hub_touches_the_hubs_own_state() -> None:
    """Outside server/hub/, nothing reads or writes the hub's private attributes, and its
    dictionaries are reached only through its methods."""
    found = []
    for name, path in modules().items():
        if name.startswith("server.hub"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and _names_the_hub(node.value)
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: hub.{node.attr}")
    assert not found, found


def _names_the_hub(node: ast.expr) -> bool:
    """``hub``, ``self.hub``, ``app[HUB]``, ``request.app[HUB]``."""
    if isinstance(node, ast.Name):
        return node.id == "hub"
    if isinstance(node, ast.Attribute):
        return node.attr == "hub"
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Name) and node.slice.id == "HUB"
    return False


def test_each_app_key_is_defined_once_in_the_module_that_owns_it() -> None:
    """``web.AppKey(...)`` appears once per key, and there is no module of keys alone."""
    definitions: dict[str, list[str]] = {}
    for path in modules().values():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "AppKey"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                definitions.setdefault(str(node.args[0].value), []).append(str(path))
    twice = {key: where for key, where in definitions.items() if len(where) > 1}
    assert not twice, twice
    assert not (SERVER / "app_keys.py").exists()


def test_the_readme_layout_table_names_every_package_of_server() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    packages = sorted(p.parent.name for p in SERVER.glob("*/__init__.py"))
    missing = [p for p in packages if f"`server/{p}/`" not in readme]
    assert not missing, f"README's layout table lacks {missing}"


def test_the_tests_of_server_mirror_its_packages() -> None:
    """tests/server/<package>/ holds the tests of server/<package>/; nothing else."""
    tests = ROOT / "tests" / "server"
    packages = {p.parent.name for p in SERVER.glob("*/__init__.py")}
    folders = {p.name for p in tests.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders <= packages, f"test folders without a package: {folders - packages}"


_PATH = re.compile(
    r"`((?:server|tests|scripts|static_client|docs)/[\w./-]+\.(?:py|js|md|sql|toml))`"
)


def test_every_path_the_docs_name_exists() -> None:
    """A path in backticks in the README or docs/ names a file that is there."""
    missing = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            for path in _PATH.findall(line):
                if not (ROOT / path).exists():
                    missing.append(f"{doc.name}:{number}: {path}")
    assert not missing, missing
