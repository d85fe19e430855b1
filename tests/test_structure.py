"""The package's shape, read from its source (ast): imports point one way, no private names cross modules,
short functions and module docstrings. The layers are the picture in the README's Layout section."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "qrl"

# Lowest first; a module may import modules of its own layer or below, never above. A prefix ending in
# "." names a package's modules.
LAYERS = [
    ("base", ("qrl.errors", "qrl.io", "qrl.threads", "qrl.malloc", "qrl.processes", "qrl.data")),
    ("circuits", ("qrl.circuits", "qrl.circuits.")),
    ("presets and environments", ("qrl.config", "qrl.envs", "qrl.qenv")),
    ("simulator", ("qrl.simulator", "qrl.simulator.")),
    ("backends", ("qrl.backends", "qrl.backends.")),
    ("VQC module", ("qrl.nn",)),
    ("SB3 policies", ("qrl.sb3", "qrl.sb3.")),
    ("SB3 algorithms", ("qrl.algorithms", "qrl.algorithms.")),
    ("run folder, cost, statistics", ("qrl.runs", "qrl.cost", "qrl.stats")),
    ("training and evaluation", ("qrl.train", "qrl.evaluate")),
    ("many runs, teaching", ("qrl.study", "qrl.distill", "qrl.tune", "qrl.tune.")),
    ("what commands show", ("qrl.report", "qrl.plots", "qrl.bench", "qrl.diagnostics")),
    ("commands", ("qrl.cli", "qrl.cli.")),
    ("package", ("qrl",)),
]
MAX_FUNCTION_LINES = 80
MAX_DOCSTRING_LINES = 8


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text()) for name, path in MODULES.items()}


def layer(module: str) -> int:
    for rank, (_, names) in enumerate(LAYERS):
        if module in names or any(n.endswith(".") and module.startswith(n) for n in names):
            return rank
    raise AssertionError(f"{module} is in no layer of tests/test_structure.py; add it (and to the README picture)")


def imports(name: str) -> list[tuple[str, str, int]]:
    """``(imported module, imported name or "", line)`` for every import of a qrl module in ``name``,
    module level or inside functions; ``from qrl.x import y`` is an import of ``qrl.x.y`` if that is a module."""
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(TREES[name]):
        if isinstance(node, ast.Import):
            found += [(a.name, "", node.lineno) for a in node.names if a.name.split(".")[0] == "qrl"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "qrl":
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.append((sub, "", node.lineno) if sub in MODULES else (base, a.name, node.lineno))
    return found


def graph() -> dict[str, set[str]]:
    return {name: {m for m, _, _ in imports(name) if m in MODULES and m != name} for name in MODULES}


def test_every_module_is_in_a_layer():
    for name in MODULES:
        layer(name)


def test_imports_point_down_the_layers():
    upward = [f"{name} ({LAYERS[layer(name)][0]}) imports {m} ({LAYERS[layer(m)][0]}), line {line}"
              for name in MODULES for m, _, line in imports(name) if m in MODULES and layer(m) > layer(name)]
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    edges = graph()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_cycle_detection_finds_a_cycle(monkeypatch):
    # the checks above must be able to fail: a fake edge from the base layer up to the CLI
    real = graph()
    monkeypatch.setitem(TREES, "qrl.errors", ast.parse("from qrl.cli import main"))
    assert "qrl.cli" in graph()["qrl.errors"] and real != graph()
    with pytest.raises(AssertionError, match=r"qrl\.errors"):
        test_imports_point_down_the_layers()


def test_no_private_name_crosses_modules():
    private = [f"{name}: from {m} import {n} (line {line})"
               for name in MODULES for m, n, line in imports(name) if n.startswith("_") and m != name]
    aliases = {}
    for name, tree in TREES.items():  # `from qrl import x` then `x._private`
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("qrl"):
                aliases.update({(name, a.asname or a.name): f"{node.module}.{a.name}" for a in node.names
                                if f"{node.module}.{a.name}" in MODULES})
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__") \
                    and isinstance(node.value, ast.Name) and (name, node.value.id) in aliases:
                private.append(f"{name}: {node.value.id}.{node.attr} (line {node.lineno})")
    assert not private, "\n".join(private)


def test_functions_are_short():
    long = [f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
            for name, tree in TREES.items() for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, "\n".join(long)


def test_module_docstrings_say_what_the_module_owns_in_a_few_lines():
    bad = []
    for name, tree in TREES.items():
        doc = ast.get_docstring(tree)
        if MODULES[name].stat().st_size and not doc:
            bad.append(f"{name}: no docstring")
        elif doc and len(doc.splitlines()) > MAX_DOCSTRING_LINES:
            bad.append(f"{name}: {len(doc.splitlines())} lines")
    assert not bad, "\n".join(bad)
