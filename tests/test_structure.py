"""The package structure the code promises: imports flow one way through the layers below
(benchmarks -> baselines -> dcgan_ref, and by stage inside each), no two modules import each
other (directly or around a cycle), function-level imports only for optional heavy
dependencies, modules and functions short enough to read, and every extractor is found by
the registry."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("dcgan_ref", "baselines", "benchmarks")
# A module may import its own layer or lower; the longest matching prefix names its layer.
LAYERS = (
    "dcgan_ref.runtime",       # errors, tracking, progress, checkpoints, distributed, hardware limits
    "dcgan_ref.datasets",      # the datasets' formats
    "dcgan_ref",               # the model under test: architectures, training, features, figures
    "baselines",               # the feature extractors and their registry
    "benchmarks.classifiers",  # SVMs, KNN: nothing else from benchmarks/
    "benchmarks.protocol",     # specs, data, evaluation, the runner, the results store
    "benchmarks.throughput",   # speed, measured against the device's limits
    "benchmarks.studies",      # the sensitivity table
    "benchmarks.report",       # REPORT.md from the committed rows
    "benchmarks",              # entry points: cifar10_probe, svhn_1000, gan_run, reproduce (runs them all)
)
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 80


def _layer(module: str) -> int:
    return max((i for i, prefix in enumerate(LAYERS) if module == prefix or module.startswith(prefix + ".")),
               key=lambda i: len(LAYERS[i]))
LAZY_OK = ("mlflow", "sklearn", "numpy")  # optional heavy dependencies (numpy: with sklearn's reference path)


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, is it inside a function) for every import in the file."""
    tree, out = ast.parse(path.read_text()), []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                out.extend((a.name, inside) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                out.append((child.module, inside))
                out.extend((f"{child.module}.{a.name}", inside) for a in child.names)
            visit(child, inside)

    visit(tree, False)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {m for m, _ in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def _upward(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return [(src, dst) for src, dsts in graph.items() for dst in dsts if _layer(dst) > _layer(src)]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def dfs(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                dfs(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            dfs(node, [node])
    return cycles


def test_imports_flow_one_way():
    assert not _upward(_graph()), f"imports against benchmarks -> baselines -> dcgan_ref: {_upward(_graph())}"


def test_no_import_cycles():
    assert not _cycles(_graph()), f"import cycles: {_cycles(_graph())}"


def _too_long() -> list[str]:
    found = []
    for name, path in _modules().items():
        n = len(path.read_text().splitlines())
        if n > MAX_MODULE_LINES:
            found.append(f"{name}: {n} lines")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{name}.{node.name}: {length} lines")
    return found


def test_modules_and_functions_fit_a_read():
    assert not _too_long(), f"over {MAX_MODULE_LINES} lines a module or {MAX_FUNCTION_LINES} a function: {_too_long()}"


def test_function_level_imports_only_for_optional_heavy_dependencies():
    lazy = [(name, m) for name, path in _modules().items() for m, inside in _imports(path)
            if inside and m.split(".")[0] not in LAZY_OK]
    assert not lazy, f"imports inside functions (move them to the top): {lazy}"


def test_the_checks_bite(tmp_path):
    """A planted upward import, a planted three-module cycle and a planted lazy import are all found."""
    assert _upward({"dcgan_ref.a": {"benchmarks.b"}}) == [("dcgan_ref.a", "benchmarks.b")]
    assert _upward({"benchmarks.protocol.a": {"benchmarks.throughput.b"}, "dcgan_ref.runtime.c": {"dcgan_ref.d"},
                    "benchmarks.classifiers.e": {"benchmarks.protocol.f"}, "benchmarks.report.g": {"benchmarks.h"}}
                   ) == [("benchmarks.protocol.a", "benchmarks.throughput.b"), ("dcgan_ref.runtime.c", "dcgan_ref.d"),
                         ("benchmarks.classifiers.e", "benchmarks.protocol.f"), ("benchmarks.report.g", "benchmarks.h")]
    assert not _upward({"benchmarks.gan_run": {"benchmarks.protocol.runner"},
                        "dcgan_ref.train": {"dcgan_ref.runtime.x"}})
    assert _cycles({"benchmarks.a": {"benchmarks.b"}, "benchmarks.b": {"benchmarks.c"},
                    "benchmarks.c": {"benchmarks.a"}}) == [["benchmarks.a", "benchmarks.b", "benchmarks.c",
                                                            "benchmarks.a"]]
    assert not _cycles({"benchmarks.a": {"benchmarks.b"}, "benchmarks.b": set()})
    planted = tmp_path / "planted.py"
    planted.write_text("import torch\n\ndef f():\n    from torchvision import utils\n")
    assert ("torchvision", True) in _imports(planted) and ("torch", False) in _imports(planted)


def test_registry_finds_every_extractor_module():
    from baselines import registry

    assert {"dcgan", "random-d", "pixels", "kmeans-<K>"} <= set(registry.available())
    factory, params = registry.resolve("kmeans-4000")
    assert params == {"K": 4000}
    for bad in ("kmeans-0", "kmeans-x", "resnet"):
        with pytest.raises(ValueError, match="unknown extractor"):
            registry.resolve(bad)
