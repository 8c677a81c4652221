"""What each graded cell needs exported, derived from the TRUSTED notebook by AST.

A request, per graded cell (JSON-ready)::

    {"grade_id": "test_todo3_optimizer",
     "names": ["define_model_with_momentum"],          # free names the cell reads
     "calls": [{"builder": "define_model_with_momentum", "args": [0.01, 0.9],
                "source": "call" | "list" | "args" | "fresh", "fresh": bool}, ...]}

``source``: ``call`` for a literal call ``f(0.01, 0.9)`` in the cell, ``list`` for
an argument tuple in a literal list passed beside ``f`` (``check(f, "f",
[(0.01, 0.9), ...])``), ``args`` for literal arguments after ``f`` in the same
call (``check_built_by(m, f, 0.01, 0.9)``), ``fresh`` for ones added by
:func:`fresh_calls`.

The setup names (what the verifier provides itself, so never requested) come
from the notebook's locked, non-graded cells by one rule, :func:`setup_statements`.
"""

from __future__ import annotations

import ast
import builtins
import random

#: Modules whose import in a locked setup cell the verifier repeats (plain libraries).
SETUP_MODULES = frozenset(
    {
        "numpy",
        "math",
        "matplotlib",
        "matplotlib.pyplot",
        "keras",
        "keras.layers",
        "keras.optimizers",
    }
)
#: Calls allowed in a data-only assignment: ``np.array([...])`` and the like.
DATA_CALLS = frozenset({"array", "asarray"})
_BUILTINS = frozenset(dir(builtins))


def _nbgrader(cell) -> dict:
    return (cell.get("metadata") or {}).get("nbgrader") or {}


def cell_source(cell) -> str:
    """A cell's source as one string: nbformat joins it, a notebook read as plain JSON
    (the verifier does, to skip nbformat's 2 s import) may hold a list of lines."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def graded_cells(notebook) -> list[tuple[str, str]]:
    """``(grade_id, source)`` of every graded code cell, in notebook order. ``notebook``:
    an nbformat node or the same notebook as plain JSON dicts."""
    cells = []
    for cell in notebook["cells"]:
        meta = _nbgrader(cell)
        if cell.get("cell_type") == "code" and meta.get("grade") is True and meta.get("grade_id"):
            cells.append((str(meta["grade_id"]), cell_source(cell)))
    return cells


def _is_data(node, numpy_names: set[str]) -> bool:
    """A literal, a list/tuple of data, a negated number, or ``np.array(data)``."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (int, float, str, bool)) or node.value is None
    if isinstance(node, (ast.List, ast.Tuple)):
        return all(_is_data(item, numpy_names) for item in node.elts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return isinstance(node.operand, ast.Constant) and isinstance(node.operand.value, (int, float))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        owner = node.func.value
        return (
            isinstance(owner, ast.Name)
            and owner.id in numpy_names
            and node.func.attr in DATA_CALLS
            and not node.keywords
            and len(node.args) == 1
            and _is_data(node.args[0], numpy_names)
        )
    return False


def _setup_import(statement, modules: frozenset[str]) -> bool:
    allowed = SETUP_MODULES | modules
    if isinstance(statement, ast.Import):
        return all(alias.name in allowed for alias in statement.names)
    if isinstance(statement, ast.ImportFrom):
        return (
            statement.level == 0 and statement.module in allowed and all(alias.name != "*" for alias in statement.names)
        )
    return False


def setup_statements(notebook, support_modules: frozenset[str] = frozenset()) -> list[ast.stmt]:
    """The statements of the locked, non-graded code cells that the verifier repeats.

    Rule: a statement is kept when it is an import of a module in ``SETUP_MODULES`` or
    of the assignment's own trusted support modules (``support_modules``, e.g.
    ``hw5_data``: the verifier has the instructor's copies), or an assignment of data (literals, ``np.array(literal)``) to plain names.
    Everything else (loading data, training, defining functions) is skipped, so
    the verifier never trains, never reads files and never runs student code.
    """
    kept: list[ast.stmt] = []
    numpy_names: set[str] = set()
    for cell in notebook["cells"]:
        meta = _nbgrader(cell)
        if cell.get("cell_type") != "code" or not meta.get("locked") or meta.get("grade"):
            continue
        try:
            tree = ast.parse(cell_source(cell))
        except SyntaxError:
            continue
        for statement in tree.body:
            if _setup_import(statement, support_modules):
                kept.append(statement)
                if isinstance(statement, ast.Import):
                    numpy_names |= {a.asname or a.name for a in statement.names if a.name == "numpy"}
            elif (
                isinstance(statement, ast.Assign)
                and all(isinstance(target, ast.Name) for target in statement.targets)
                and _is_data(statement.value, numpy_names)
            ):
                kept.append(statement)
    return kept


def bound_by(statement) -> set[str]:
    """The names an import or a data assignment (a setup statement) binds."""
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        return {(alias.asname or alias.name).split(".")[0] for alias in statement.names}
    return {target.id for target in statement.targets}


def setup_names(notebook, support_modules: frozenset[str] = frozenset()) -> set[str]:
    """Names that :func:`setup_statements` binds."""
    names: set[str] = set()
    for statement in setup_statements(notebook, support_modules):
        names |= bound_by(statement)
    return names


def _bound_in(tree) -> set[str]:
    """Names the cell binds itself: assignments, imports, definitions, arguments."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound


def _number(node):
    """The node's value if it is a literal int or float (not bool), else ``None``."""
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _argument_tuple(node):
    """``[0.01, 0.9]`` for a literal tuple/list of numbers, else ``None``."""
    if not isinstance(node, (ast.Tuple, ast.List)) or not node.elts:
        return None
    values = [_number(item) for item in node.elts]
    return None if any(value is None for value in values) else values


def _calls_in(tree, free: set[str]) -> list[dict]:
    calls: list[dict] = []

    def add(builder, args, source):
        call = {"builder": builder, "args": args, "source": source, "fresh": False}
        if not any(c["builder"] == builder and c["args"] == args for c in calls):
            calls.append(call)

    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Name) and node.func.id in free and not node.keywords:
            args = [_number(arg) for arg in node.args]
            if all(arg is not None for arg in args):
                add(node.func.id, args, "call")
        for position, argument in enumerate(node.args):
            if not (isinstance(argument, ast.Name) and argument.id in free):
                continue
            for other in node.args:  # literal lists of argument tuples beside the name
                if isinstance(other, (ast.List, ast.Tuple)) and other.elts:
                    tuples = [_argument_tuple(item) for item in other.elts]
                    if all(t is not None for t in tuples):
                        for args in tuples:
                            add(argument.id, args, "list")
            trailing = [_number(arg) for arg in node.args[position + 1 :]]
            if trailing and all(arg is not None for arg in trailing):
                add(argument.id, trailing, "args")
    return calls


def cell_request(grade_id: str, source: str, provided: set[str]) -> dict:
    """The request for one graded cell; ``provided``: the verifier's setup names."""
    tree = ast.parse(source)
    bound = _bound_in(tree)
    free: list[str] = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Name)
            and isinstance(node.ctx, ast.Load)
            and node.id not in bound
            and node.id not in _BUILTINS
            and node.id not in provided
            and node.id not in free
        ):
            free.append(node.id)
    free_set = set(free)
    return {"grade_id": grade_id, "names": sorted(free), "calls": _calls_in(tree, free_set)}


def export_requests(notebook, support_modules: frozenset[str] = frozenset()) -> dict[str, dict]:
    """``{grade_id: request}`` for every graded cell of the trusted notebook;
    ``support_modules``: as for :func:`setup_statements`."""
    provided = setup_names(notebook, support_modules)
    return {grade_id: cell_request(grade_id, source, provided) for grade_id, source in graded_cells(notebook)}


def _fresh_args(arity: int, rng: random.Random) -> list[float]:
    """A learning rate in [0.001, 0.5] and, for a second argument, a momentum in [0.05, 0.95]."""
    values = [round(rng.uniform(0.001, 0.5), 3)]
    if arity >= 2:
        values.append(round(rng.uniform(0.05, 0.95), 2))
    return values + [0.0] * max(0, arity - 2)


def fresh_calls(requests: dict[str, dict], rng: random.Random) -> dict[str, dict]:
    """A copy of ``requests`` where every builder with argument-tuple lists gets 1-2 new tuples.

    New calls are marked ``"fresh": true, "source": "fresh"``; the verifier runs
    ``check_builder_optimizer`` on them, which a builder answering from a table
    of the known arguments fails. ``rng``: a ``random.Random`` (seed it per run).
    """
    updated = {}
    for grade_id, request in requests.items():
        calls = [dict(call) for call in request["calls"]]
        listed: dict[str, int] = {}
        for call in calls:
            if call["source"] == "list":
                listed.setdefault(call["builder"], len(call["args"]))
        for builder, arity in listed.items():
            known = [call["args"] for call in calls if call["builder"] == builder]
            for _ in range(rng.choice((1, 2))):
                args = _fresh_args(arity, rng)
                while args in known:
                    args = _fresh_args(arity, rng)
                known.append(args)
                calls.append({"builder": builder, "args": args, "source": "fresh", "fresh": True})
        updated[grade_id] = {**request, "calls": calls}
    return updated
