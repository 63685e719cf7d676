"""The import contract (issue 14, DESIGN §3): the layers of dockd/ hold.

Read from the source with `ast`, so that it holds for code paths a test run
never imports:
- the stage packages and the values below them never import `service`,
  `runner` or `cli`; `service` never imports `runner` or `cli`;
- no cycle between dockd's top-level packages and modules;
- only `service/` (and the catalog itself) calls the catalog's write methods;
- `service/` goes through the catalog's methods, never its connection (`catalog.db`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

DOCKD = Path(__file__).resolve().parent.parent / "dockd"
ABOVE = {"service", "runner", "cli"}
# Fronts and the service: everything else is below them.
FRONTS = {"runner", "cli", "__main__", "demo", "doctor"}
# The catalog's methods that change it (docs/FORMAT.md: one writer).
WRITE_PREFIXES = (
    "insert_", "update_", "append", "link", "unlink", "record_", "retire_", "delete_",
    "transaction", "mark_", "tombstone",
)  # fmt: skip
# The standalone checker that ships on discs and in log exports must run without
# dockd (integrity/standalone_verify.py): one file, whatever its length.
LONG_ON_PURPOSE = {"integrity/standalone_verify.py"}


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(DOCKD.rglob("*.py")):
        rel = path.relative_to(DOCKD)
        yield ".".join(("dockd", *rel.with_suffix("").parts)).removesuffix(".__init__"), path


def _unit(module: str) -> str:
    """dockd.service.docking -> service; dockd.clock -> clock."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(module: str, path: Path) -> set[str]:
    """The dockd modules `module` imports (absolute, and relative resolved)."""
    tree = ast.parse(path.read_text("utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("dockd"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.startswith("dockd"):
                found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    """unit -> the other units it imports."""
    units: dict[str, set[str]] = {}
    for module, path in _modules():
        unit = _unit(module)
        targets = {_unit(t) for t in _imports(module, path)} - {unit, ""}
        units.setdefault(unit, set()).update(targets)
    known = set(units)
    return {u: {t for t in ts if t in known} for u, ts in units.items()}


def test_below_the_service_nothing_imports_what_is_above() -> None:
    wrong = [
        f"{unit} imports {target}"
        for unit, targets in _graph().items()
        if unit not in ABOVE | FRONTS
        for target in targets & ABOVE
    ]
    assert wrong == []


def test_the_service_never_imports_a_runner_or_the_cli() -> None:
    assert _graph().get("service", set()) & (ABOVE - {"service"}) == set()


def _cycles(graph: dict[str, set[str]]) -> list[str]:
    found: set[str] = set()

    def visit(unit: str, trail: list[str]) -> None:
        for target in sorted(graph.get(unit, ())):
            if target in trail:
                found.add(" -> ".join([*trail[trail.index(target) :], target]))
            else:
                visit(target, [*trail, target])

    for start in sorted(graph):
        visit(start, [start])
    return sorted(found)


def test_no_import_cycle_between_packages() -> None:
    assert _cycles(_graph()) == []


def _catalog_writes(path: Path, root: Path = DOCKD) -> list[str]:
    tree = ast.parse(path.read_text("utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr.startswith(WRITE_PREFIXES)
        ):
            owner = node.func.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if name == "catalog":
                found.append(f"{path.relative_to(root)}:{node.lineno} catalog.{node.func.attr}")
    return found


def test_only_the_service_writes_the_catalog() -> None:
    writers = [
        hit
        for module, path in _modules()
        if _unit(module) not in {"service", "catalog"}
        for hit in _catalog_writes(path)
    ]
    assert writers == []


def _catalog_db_uses(path: Path, root: Path = DOCKD) -> list[str]:
    """Where `path` reaches past the catalog's methods to its connection (`x.catalog.db`)."""
    tree = ast.parse(path.read_text("utf-8"), str(path))
    return [
        f"{path.relative_to(root)}:{node.lineno} catalog.db"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr == "db"
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "catalog"
    ]


# Service modules allowed to use `catalog.db` (none: every table has its methods).
CATALOG_DB_ALLOWED: set[str] = set()


def test_the_service_goes_through_the_catalogs_methods() -> None:
    """Issue 14: every table has Catalog methods; the service does not run its own SQL."""
    uses = [
        hit
        for module, path in _modules()
        if _unit(module) == "service" and str(path.relative_to(DOCKD)) not in CATALOG_DB_ALLOWED
        for hit in _catalog_db_uses(path)
    ]
    assert uses == []
    # An entry of the allow-set that no longer applies is taken out of it.
    stale = {rel for rel in CATALOG_DB_ALLOWED if not _catalog_db_uses(DOCKD / rel)}
    assert stale == set(), "remove these from CATALOG_DB_ALLOWED"


def test_the_checks_see_what_they_are_meant_to(tmp_path: Path) -> None:
    """Each check fails on a planted violation (a check that cannot fail proves nothing)."""
    fake = tmp_path / "retention" / "bad.py"
    fake.parent.mkdir(parents=True)
    fake.write_text(
        "import dockd.runner.daemon\nfrom ..service import Service\n"
        "def f(s):\n    s.catalog.insert_recording({})\n    s.catalog.recording(1)\n"
    )
    assert _catalog_writes(fake, tmp_path) == ["retention/bad.py:4 catalog.insert_recording"]
    raw = tmp_path / "service" / "raw.py"
    raw.parent.mkdir()
    raw.write_text(
        "def f(s, db):\n    s.catalog.recording(1)\n    db.execute('x')\n"
        "    return s.catalog.db.execute('SELECT 1'), s.catalog.db\n"
    )
    assert _catalog_db_uses(raw, tmp_path) == [
        "service/raw.py:4 catalog.db", "service/raw.py:4 catalog.db",
    ]  # fmt: skip
    assert {"dockd.runner.daemon", "dockd.service"} <= _imports("dockd.retention.bad", fake)
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        "a -> b -> c -> a", "b -> c -> a -> b", "c -> a -> b -> c",
    ]  # fmt: skip
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_modules_stay_small() -> None:
    """Issue 14: no module over ~600 lines, so that a module is one thing."""
    long = {
        str(path.relative_to(DOCKD)): n
        for _, path in _modules()
        if (n := len(path.read_text("utf-8").splitlines())) > 650
        and str(path.relative_to(DOCKD)) not in LONG_ON_PURPOSE
    }
    assert long == {}
