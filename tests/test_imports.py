"""The import graph: no cycles between modules, and layers that only point down.

Every `import` and `from ... import` of the project's own modules counts, those inside functions
too (a lazy import is still a dependency). Layers: benchmarks -> app -> model; inside app,
http -> protocol -> serving, never back, and the prediction routes reach the pipeline only
through their protocol.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from tests.helpers import ROOT

PACKAGES = ("app", "model", "benchmarks")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {
        module_name(p): p
        for pkg in PACKAGES
        for p in sorted((ROOT / pkg).rglob("*.py"))
        if "peers" not in p.parts
    }


def imports_of(path: Path, name: str, known: Iterable[str]) -> set[str]:
    """The project modules a module imports (a `from pkg import mod` counts as pkg.mod)."""
    known = set(known)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for target in targets:
            # The longest known module the target names (a function import names its module).
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(path, name, modules) for name, path in modules.items()}


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


# (importer prefix, forbidden prefix): the layers point one way.
FORBIDDEN = [
    ("model", "app"),
    ("model", "benchmarks"),
    ("app", "benchmarks"),
    ("app.serving", "app.http"),
    ("app.serving", "app.protocol"),
    ("app.protocol", "app.http"),
    ("app.http.routes.predict", "app.serving"),
    ("app.http.flow", "app.serving"),
]


def layer_violations(graph: Mapping[str, set[str]]) -> list[tuple[str, str]]:
    def under(module: str, prefix: str) -> bool:
        return module == prefix or module.startswith(prefix + ".")

    return sorted(
        (a, b)
        for a, targets in graph.items()
        for b in targets
        for importer, forbidden in FORBIDDEN
        if under(a, importer) and under(b, forbidden)
    )


def test_the_project_has_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 40 and graph["app.http.factory"], "the graph was not read"
    assert cycles(graph) == []


def test_layers_point_one_way() -> None:
    assert layer_violations(import_graph()) == []


def test_model_never_imports_fastapi() -> None:
    modules = project_modules()
    for name, path in modules.items():
        if name.startswith("model"):
            text = path.read_text()
            assert "import fastapi" not in text and "from fastapi" not in text, name


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ],
)
def test_the_cycle_check_finds_a_planted_cycle(
    graph: dict[str, set[str]], expected: list[list[str]]
) -> None:
    assert cycles(graph) == expected


def test_the_reader_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text(
        "def f():\n    from app.serving import onnx_runner\n    import model.network.net\n"
    )
    got = imports_of(path, "app.x", {"app.serving", "app.serving.onnx_runner", "model.network.net"})
    assert got == {"app.serving", "app.serving.onnx_runner", "model.network.net"}
    assert layer_violations({"app.serving.x": {"app.http.deps"}}) == [
        ("app.serving.x", "app.http.deps")
    ]


def test_the_service_imports_without_torch() -> None:
    """The CPU image and `make serve` on a CPU have no torch: the server process, the app and
    the photo worker must import (and the app's modules must not import torch at the top)."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"  # any `import torch` now fails
        "import app.serve, app.http.factory, app.serving.photo_worker, app.serving.onnx_runner\n"
        "import model.cli, model.network.checkpoint_info, model.images.silhouette\n"
        "import model.images.decode, model.images.photo_view, model.network.shapes\n"
        "import model.data.renderings\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
