"""No import cycle in ``src/oodlab``: the module graph, read from the source with ``ast``, is a DAG.

The rule (what counts as an edge ``a -> b``):
- only imports that run when ``a`` is imported: statements at module level, including inside
  a module-level ``try`` / ``if`` (a function-level import runs later and may point anywhere;
  an ``if TYPE_CHECKING:`` block never runs);
- ``import oodlab.x.y`` is an edge to ``oodlab.x.y``; ``from oodlab.x import y`` is an edge to
  the module ``oodlab.x.y`` when ``y`` is a submodule, and to ``oodlab.x`` (its ``__init__``)
  when ``y`` is a name defined or re-exported there;
- Python's implicit import of the parent packages is not an edge: a package's ``__init__``
  that imports its own submodules (the family pattern: ``losses/__init__.py`` imports every
  loss file) is fine, as long as those submodules take what they need from a sibling module
  (``losses/base.py``'s ``register_loss``) and not back from the ``__init__``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "oodlab"


def module_names(root: Path) -> dict[str, Path]:
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """The statements that run on import: module level, inside try/if but not TYPE_CHECKING."""
    out: list[ast.stmt] = []
    for node in body:
        if isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                out += _module_level(node.body) + _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            handlers = [stmt for h in node.handlers for stmt in h.body]
            out += _module_level(node.body + handlers + node.orelse + node.finalbody)
        else:
            out.append(node)
    return out


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    modules = module_names(root)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for node in _module_level(ast.parse(path.read_text()).body):
            if isinstance(node, ast.Import):
                edges |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    edges.add(sub if sub in modules else node.module)
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle ``[a, b, ..., a]`` of ``graph``, or ``None`` (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in sorted(graph):
        if start in state:
            continue
        path = [start]
        stack = [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_finder_sees_a_cycle_and_the_rule():
    # A hand-made graph: b -> c -> b is a cycle, a -> b is not part of it.
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"b"}}) == ["b", "c", "b"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_rule_on_a_small_package(tmp_path):
    pkg = tmp_path / "oodlab"
    (pkg / "fam").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "fam" / "__init__.py").write_text("from oodlab.fam import one\nX = 1\n")
    (pkg / "fam" / "one.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from oodlab.fam import X\n"
        "def f():\n    from oodlab.fam import X\n"
    )
    graph = import_graph(pkg)
    assert graph["oodlab.fam"] == {"oodlab.fam.one"}
    assert graph["oodlab.fam.one"] == set()  # TYPE_CHECKING and function-level imports ignored
    (pkg / "fam" / "one.py").write_text("from oodlab.fam import X\n")  # a name from the __init__
    assert find_cycle(import_graph(pkg)) == ["oodlab.fam", "oodlab.fam.one", "oodlab.fam"]


def test_no_import_cycle_in_oodlab():
    graph = import_graph()
    assert len(graph) > 100  # the whole package was read
    cycle = find_cycle(graph)
    assert cycle is None, (
        "import cycle in src/oodlab: "
        + " -> ".join(cycle or [])
        + "; import the name from the module that defines it (e.g. oodlab.losses.base, not "
        "oodlab.losses), or move the shared piece into a module both can import"
    )
