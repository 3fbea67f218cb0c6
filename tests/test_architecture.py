"""The package's import graph: no circle, and docs/architecture.md draws the graph the code has.

Every import of one ``c360`` module by another counts, the ones inside functions too (they run as soon as the
function does); imports under ``if TYPE_CHECKING:`` do not (they never run). The picture in the architecture
document is the graph's transitive reduction (an arrow the others already imply is left out), drawn bottom-up:
a module only imports modules below it.
"""

from __future__ import annotations

import ast
import re

from c360 import settings

PACKAGE = settings.INCLUDE_DIR / "c360"
DOC = settings.PROJECT_DIR / "docs" / "architecture.md"


def import_graph() -> dict[str, set[str]]:
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    graph: dict[str, set[str]] = {}
    for name in modules:
        tree = ast.parse((PACKAGE / f"{name}.py").read_text())
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and getattr(node.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(node)}
        deps: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom) and node.module == "c360":
                deps |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("c360."):
                deps.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                deps |= {a.name.split(".")[1] for a in node.names if a.name.startswith("c360.")}
        graph[name] = deps - {name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = "open"
        path.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                return path[path.index(d):] + [d]
            if d not in state and (found := visit(d)):
                return found
        state[m] = "done"
        path.pop()
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def _reach(graph: dict[str, set[str]], m: str) -> set[str]:
    seen, todo = set(), list(graph[m])
    while todo:
        d = todo.pop()
        if d not in seen:
            seen.add(d)
            todo += graph[d]
    return seen


def reduction(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """The arrows no longer path implies."""
    return {(m, d) for m in graph for d in graph[m]
            if not any(d in _reach(graph, other) for other in graph[m] - {d})}


def mermaid(graph: dict[str, set[str]]) -> str:
    lines = ["```mermaid", "graph BT"]
    lines += [f"    {m} --> {d}" for m, d in sorted(reduction(graph))]
    lines += [f"    {m}" for m in sorted(graph) if not graph[m] and not any(m in ds for ds in graph.values())]
    return "\n".join([*lines, "```"])


def test_no_import_circle():
    cycle = _cycle(import_graph())
    assert cycle is None, f"import circle: {' -> '.join(cycle)}"


def test_the_documented_import_graph_is_the_code_s():
    found = re.search(r"```mermaid\n.*?```", DOC.read_text(), re.S)
    expected = mermaid(import_graph())
    assert found and found.group(0) == expected, (
        f"{DOC} draws another import graph than the code has; replace its mermaid block with:\n{expected}")


def test_the_check_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert reduction({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == {("a", "b"), ("b", "c")}
