"""The package layering holds: no import loop between packages, thin handlers.

Imports are read from the source with `ast` (function-level imports included, imports under
`if TYPE_CHECKING:` left out since they never run), so the check sees what the code asks for,
not only what one test run happened to load.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("connector", "model_store")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST):
    """Every node except those under `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def imports_of(path: Path) -> set[str]:
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names}
    return found


def modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def unit(module: str) -> str:
    """The layer a module belongs to: a subpackage of connector (connector.api, ...), a top-level
    module of connector (connector.views, ...), or model_store."""
    parts = module.split(".")
    if parts[0] == "model_store":
        return "model_store"
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def unit_graph() -> dict[str, set[str]]:
    known = modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in known.items():
        for target in imports_of(path):
            if target in known and unit(target) != unit(name):
                graph[unit(name)].add(unit(target))
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    trail: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        trail.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return trail[trail.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        trail.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_loop_between_packages():
    assert find_cycle(unit_graph()) is None, " -> ".join(find_cycle(unit_graph()) or [])


def test_the_cycle_finder_finds_a_loop():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None


def test_training_and_inference_share_only_modeling():
    graph = unit_graph()
    assert "connector.inference" not in graph["connector.training"]
    assert "connector.training" not in graph["connector.inference"]
    assert "connector.modeling" in graph["connector.training"] and "connector.modeling" in graph["connector.inference"]


def test_handlers_import_no_sqlalchemy_torch_or_detectron2():
    for path in (ROOT / "connector" / "api").glob("*.py"):
        heavy = sorted(t for t in imports_of(path) if t.split(".")[0] in ("sqlalchemy", "torch", "detectron2"))
        assert heavy == [], f"{path.name} imports {heavy}"
        inner = sorted(t for t in imports_of(path) if unit(t) in ("connector.training", "connector.inference",
                                                                   "connector.modeling", "model_store"))
        assert inner == [], f"{path.name} reaches past the services: {inner}"


def test_no_string_keyed_service_lookups():
    for path in (ROOT / "connector").rglob("*.py"):
        assert ".services[" not in path.read_text(), path
