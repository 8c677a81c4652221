"""No import cycle among the modules of ``graders``: the graph of their module-level
``graders.*`` imports (read with ast; imports inside functions are left out, as they run
only when called) has no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

from graders.course import COURSE_ROOT

GRADERS = COURSE_ROOT / "graders"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_level(tree: ast.Module):
    """The statements that run on import: the body, and the bodies of its if/try blocks
    (``if TYPE_CHECKING:`` left out)."""
    todo = list(tree.body)
    while todo:
        node = todo.pop(0)
        if isinstance(node, ast.If):
            test = node.test
            if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
                continue
            if isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__":
                continue  # if __name__ == "__main__": runs as a script only
            todo[:0] = [*node.body, *node.orelse]
        elif isinstance(node, ast.Try):
            todo[:0] = [
                *node.body,
                *node.orelse,
                *node.finalbody,
                *(statement for handler in node.handlers for statement in handler.body),
            ]
        else:
            yield node


def imports_of(path: Path, modules: set[str], root: Path) -> set[str]:
    """The modules of ``modules`` that ``path`` imports at module level (a package counts
    as its ``__init__``; ``from package import module`` as both)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _module_level(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            targets = [origin] + [f"{origin}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            # importing a.b.c runs a, a.b and a.b.c
            pieces = target.split(".")
            for end in range(1, len(pieces) + 1):
                candidate = ".".join(pieces[:end])
                # an ancestor package is imported before its modules, always: no edge
                if candidate in modules and candidate != name and not name.startswith(candidate + "."):
                    found.add(candidate)
    return found


def import_graph(root: Path = GRADERS) -> dict[str, set[str]]:
    paths = sorted(root.rglob("*.py"))
    modules = {module_name(path, root) for path in paths}
    return {module_name(path, root): imports_of(path, modules, root) for path in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (its modules in order, the first repeated last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for successor in sorted(graph.get(node, ())):
            if state.get(successor) == 1:
                return path[path.index(successor) :] + [successor]
            if successor not in state:
                cycle = visit(successor)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_graph_is_read():
    graph = import_graph()
    assert len(graph) >= 60
    assert "graders.grading.kits" in graph["graders.grading.execution"]
    assert "graders.sandbox.limits" in graph["graders.sandbox.run"]  # relative imports count


def test_graders_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "graders imports in a circle: " + " -> ".join(cycle)


def test_a_cycle_is_found(tmp_path):
    package = tmp_path / "graders"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "a.py").write_text("from graders.sub import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from graders.sub import a\n")
    assert find_cycle(import_graph(package)) is None  # an import inside a function does not count
    (package / "sub" / "b.py").write_text("try:\n    from .a import f\nexcept ImportError:\n    pass\n")
    assert find_cycle(import_graph(package)) == ["graders.sub.a", "graders.sub.b", "graders.sub.a"]
