"""The layers of docs/architecture.md, checked on the code's own imports (every import, also inside functions).

operators -> methods -> codecs -> data / metrics / models -> readout -> training -> inference -> export -> cli:
a module imports only from its own layer or the layers below it, and no import closes a cycle.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "sampling_argmax"

#: Layer of each top-level name of the package (a module or a subpackage), lowest first. Names of one layer
#: may import each other; metrics, models and data share a rank but may not import each other (below).
RANK = {
    **{name: 0 for name in ("_checks", "_noise", "_fused", "_io", "_memory", "_devices", "_native", "_chunked", "coords", "bases",
                            "learned_bases", "functional", "losses", "modules", "__init__")},
    "methods": 1,
    "codecs": 2,
    "metrics": 3, "models": 3, "data": 3,
    "readout": 4,
    "training": 5,
    "inference": 6,
    "export": 7,
    "cli": 8,
}
#: Same-rank neighbours that must stay apart: metrics are pure functions on arrays, models know no dataset.
APART = {("metrics", "data"), ("metrics", "models"), ("models", "data"), ("data", "models"), ("data", "metrics"),
         ("models", "metrics")}


def _layer(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["sampling_argmax", *parts])


def _imports(path: Path) -> set[str]:
    """Every sampling_argmax module that ``path`` imports (absolute and relative, anywhere in the file)."""
    package = _module(path).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("sampling_argmax")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.startswith("sampling_argmax"):
                found |= {f"{base}.{alias.name}" for alias in node.names}  # a name, or a submodule
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))
GRAPH = {_module(path): _imports(path) for path in SOURCES}


def test_every_top_level_name_has_a_layer():
    assert {_layer(path) for path in SOURCES} <= set(RANK), "a new module or package needs its layer in RANK"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_downward_only(path):
    own = _layer(path)
    for target in GRAPH[_module(path)]:
        parts = target.split(".")
        layer = parts[1] if len(parts) > 2 or parts[1] in RANK else "__init__"
        if layer == own:
            continue
        assert RANK[layer] <= RANK[own], f"{path.name} ({own}) imports {target} ({layer}), a higher layer"
        assert (own, layer) not in APART, f"{path.name} ({own}) imports {target}: {own} must not import {layer}"


def test_no_import_cycle():
    modules = set(GRAPH)

    def resolve(name: str) -> str | None:  # "pkg.mod.Name" imports resolve to the module that exists
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    edges = {m: {t for t in map(resolve, GRAPH[m]) if t and t != m} for m in GRAPH}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in edges[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
