"""distsk's import structure: what a Dask scheduler imports to pass distsk's tasks on,
and no import cycles between distsk's modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import distsk

PACKAGE = Path(distsk.__file__).resolve().parent


def test_remote_task_functions_import_without_sklearn():
    # A fresh interpreter: this one has imported scikit-learn long ago.
    code = (
        "import sys, distsk._units.remote\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sklearn', 'scipy', 'distributed', 'dask'))\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "", (
        "importing distsk._units.remote (which every Dask scheduler does to unpickle distsk's "
        f"tasks) imported {out.stdout.strip()}"
    )


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """distsk modules ``path`` imports anywhere in its body (TYPE_CHECKING blocks aside)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()

    def visit(node):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            return  # never executed
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:  # ``from . import _sharing`` imports a module
                sub = f"{source}.{alias.name}"
                found.add(sub if sub in modules else source)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in found if m in modules and m != name}


def _unit(module: str) -> str:
    # A subpackage is one unit: distsk._engines (the engines, behind one registry)
    # must not import back from the modules that use it.
    parts = module.split(".")
    if len(parts) > 2 and (PACKAGE / parts[1]).is_dir():
        return ".".join(parts[:2])
    return module


def import_cycles() -> list[frozenset[str]]:
    """Strongly connected groups of distsk modules, at two levels: modules, and
    subpackages taken as one unit."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    edges = {m: _imports(p, modules) for m, p in paths.items()}
    units: dict[str, set[str]] = {}
    for m, targets in edges.items():
        units.setdefault(_unit(m), set()).update(_unit(t) for t in targets if _unit(t) != _unit(m))
    found = []
    for graph in (edges, units):
        found.extend(c for c in _strongly_connected(graph) if len(c) > 1)
    return sorted(set(found), key=sorted)


def _strongly_connected(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups = []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            groups.append(frozenset(group))

    for v in list(graph):
        if v not in index:
            visit(v)
    return groups


def test_the_import_graph_has_no_cycle():
    """Function-level imports count: a cycle through one still makes two modules that
    cannot be understood, tested or moved apart -- a deferred import only moves the
    failure from import time to call time. (The lazy registries in ``distsk/__init__``
    and ``distsk/_engines/__init__``, which import by name with importlib, are
    dependencies *on* the engines, never back, so they cannot close a cycle.)"""
    assert import_cycles() == [], f"import cycles between distsk modules: {import_cycles()}"


def test_the_worker_side_does_not_import_the_runners():
    # What runs in a worker (``_worker``, reached from the Dask task functions in
    # ``_remote``) is below the runners in ``_engines``: they import it, never back.
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    for name in ("_units/worker.py", "_units/remote.py"):
        imported = _imports(PACKAGE / name, modules)
        assert not {m for m in imported if m.startswith("distsk._engines")}, (name, imported)


def test_cycle_detection_sees_function_level_imports():
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    # _remote imports the worker side inside run_batch only.
    assert "distsk._units.worker" in _imports(PACKAGE / "_units/remote.py", modules)
    assert frozenset({"a", "b"}) in _strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"a"}})


#: The parts of distsk (docs/internals.rst, "The parts") and what each must never import:
#: deciding never imports an engine (engines are specs in a registry it loops over);
#: engines never import the search or the public face; units (what runs on workers,
#: what a Dask scheduler unpickles) import no other part at all.
FORBIDDEN = {
    "distsk._decide": ("distsk._engines", "distsk._search", "distsk._face", "distsk._cluster.client"),
    "distsk._engines": ("distsk._search", "distsk._face", "distsk.cli"),
    "distsk._units": ("distsk._engines", "distsk._search", "distsk._face", "distsk._decide",
                      "distsk._cluster", "distsk.cli"),
    "distsk._cluster": ("distsk._engines", "distsk._search", "distsk._face", "distsk.cli"),
    "distsk._search": ("distsk._face", "distsk.cli"),
}


def _forbidden(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """``(module, imported)`` pairs of ``edges`` (module -> modules it imports) that
    FORBIDDEN bans."""
    found = []
    for name, imported in sorted(edges.items()):
        for part, banned in FORBIDDEN.items():
            if name == part or name.startswith(part + "."):
                found += [(name, m) for m in sorted(imported)
                          if any(m == b or m.startswith(b + ".") for b in banned)]
    return found


def test_no_import_in_a_forbidden_direction():
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    edges = {_module_name(p): _imports(p, modules) for p in PACKAGE.rglob("*.py")}
    assert _forbidden(edges) == [], (
        "imports against the direction of distsk's parts (FORBIDDEN above, "
        f"docs/internals.rst): {_forbidden(edges)}")


def test_forbidden_direction_check_finds_a_banned_import():
    edges = {"distsk._decide.planning": {"distsk._engines.dask", "distsk._decide.cost_model"},
             "distsk._engines.dask": {"distsk._units.worker"},
             "distsk._units.worker": {"distsk._compat"}}
    assert _forbidden(edges) == [("distsk._decide.planning", "distsk._engines.dask")]
