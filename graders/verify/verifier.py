"""Re-run each trusted graded cell on objects rebuilt from the student's exports.

For each graded cell of the TRUSTED notebook, in order: read
``exports_dir/<grade_id>/`` strictly, rebuild its objects, make a namespace of
the setup names (``requests.setup_statements``: allowlisted imports and data
assignments of the locked cells), the rebuilt objects and one stand-in per
exported builder, ``exec`` the trusted cell source there with the unchanged
``graders.checks``, then cross-check the numbers and run the fresh builder
calls. Nothing from the exports is ever imported or executed.

The checks load test data with ``import hw5_data``: the caller puts the TRUSTED
``hw5_data.py`` first on ``sys.path`` (``support_dir``), and sets
``NBGRADER_EXECUTION``/``HW5_GRADING_BUDGET`` as the kernel had them.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import io
import json
import math
import os
import secrets
import sys
from pathlib import Path

import numpy as np

from graders.checks.failures import CouldNotCheck, GradingFailure, instructor_part, student_part
from graders.verify import crosscheck, rebuild, replay
from graders.verify.export_reader import ArtifactError, read_cell_exports
from graders.verify.requests import bound_by, graded_cells, setup_statements


def use_support_dir(support_dir) -> None:
    """Put the trusted ``hw5_data.py``'s folder first on ``sys.path``; forget any other copy."""
    folder = os.path.abspath(os.fspath(support_dir))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"no support folder {folder}")
    if sys.path[:1] != [folder]:
        sys.path.insert(0, folder)
    loaded = sys.modules.get("hw5_data")
    if loaded is not None and os.path.dirname(os.path.abspath(loaded.__file__ or "")) != folder:
        del sys.modules["hw5_data"]
        from graders.checks import training_checks

        training_checks.forget_test_data()  # test data from the other copy


def support_modules(support_dir) -> frozenset[str]:
    """The trusted support modules (``hw5_data``, ...): their imports in a setup cell are repeated."""
    if support_dir is None:
        return frozenset()
    return frozenset(path.stem for path in Path(support_dir).glob("*.py"))


def _names_read(sources) -> set[str] | None:
    """Every name the graded cells mention, or None when one does not parse (keep all)."""
    names: set[str] = set()
    for source in sources:
        try:
            names |= {node.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}
        except SyntaxError:
            return None
    return names


def _setup_code(notebook, modules: frozenset[str] = frozenset()):
    """The setup statements that bind a name some graded cell mentions: the others (e.g.
    ``import matplotlib.pyplot``, 0.4 s) would only slow the verifier down."""
    statements = setup_statements(notebook, modules)
    wanted = _names_read(source for _, source in graded_cells(notebook))
    if wanted is not None:
        statements = [statement for statement in statements if bound_by(statement) & wanted]
    module = ast.Module(body=statements, type_ignores=[])
    return compile(ast.fix_missing_locations(module), "<setup>", "exec")


def _same_args(wanted, exported) -> bool:
    return len(wanted) == len(exported) and all(
        isinstance(a, (int, float))
        and not isinstance(a, bool)
        and math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-12)
        for a, b in zip(wanted, exported)
    )


def _raise_exported_error(text: str):
    """Re-raise a student's exception under its own class name, so checks word it the same
    (``student_error``: the verifier tells it from an exception of its own)."""
    kind, _, message = text.partition(": ")
    name = kind if kind.isidentifier() else "Exception"
    raise type(name, (Exception,), {"student_error": True})(message if name == kind else text)


def rebuilt_model(item: dict, arrays: dict, where: str, rebuilt: dict | None):
    """The model an item describes, rebuilt once per content (``rebuilt``: digest -> model,
    shared by a notebook's cells; ``None``: always a fresh one). The trusted test cells
    only inspect, train-free, the models they are given, so one object per content is
    safe, and the kernel's builders gave the same content for the same call."""
    if rebuilt is None:
        return rebuild.rebuild_model(item, arrays, where)
    digest = model_digest(item, arrays)
    if digest not in rebuilt:
        rebuilt[digest] = rebuild.rebuild_model(item, arrays, where)
    return rebuilt[digest]


def make_standin(name: str, calls: list[dict], arrays: dict, rebuilt: dict | None = None):
    """A function standing in for the student's builder ``name``.

    Each call returns the model rebuilt from the result exported for those arguments
    (compared as floats; see :func:`rebuilt_model` for ``rebuilt``), and raises
    ``GradingFailure`` for any others.
    """

    def standin(*args, **kwargs):
        if not kwargs:
            for call in calls:
                if _same_args(args, call["args"]):
                    result = call["result"]
                    if result["kind"] == "model":
                        return rebuilt_model(result, arrays, f"{name}{tuple(args)}", rebuilt)
                    if result["kind"] == "value":
                        return rebuild.rebuild_value(result, arrays)
                    if result["kind"] == "error":
                        _raise_exported_error(result["error"])
                    if result["kind"] == "unsupported":
                        return rebuild.placeholder(result["unsupported"])
                    if result["kind"] == "unrepresentable":
                        raise CouldNotCheck.about(
                            f"the grader could not carry what {name} returns out of your notebook",
                            f"{name}{tuple(args)}: the exporter could not represent this {result['type']} "
                            f"({result['reason']})",
                        )
                    break
        shown = ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])
        raise CouldNotCheck.about(
            f"no result of {name}({shown}) came out of your notebook to re-check",
            f"no exported result for {name}({shown})",
        )

    standin.__name__ = standin.__qualname__ = name
    return standin


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def model_digest(item: dict, arrays: dict) -> str:
    """A model item's whole content: its JSON and every array it names (weights, optimizer
    variables). Two cells exporting the same trained model get the same digest."""
    digest = hashlib.sha256(json.dumps(item, sort_keys=True, default=str).encode("utf-8"))
    for key in sorted({text for text in _strings(item) if text in arrays}):
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def cell_namespace(setup_code, exports: dict, rebuilt: dict | None = None) -> dict:
    """Setup names, rebuilt objects and builder stand-ins for one cell. ``rebuilt``: digest
    -> model, shared by the cells of one notebook, so that the model a TODO's two test
    cells both export is rebuilt once (in the kernel, too, both cells see one object)."""
    namespace: dict = {"__name__": "__main__"}
    exec(setup_code, namespace)  # only allowlisted imports and literal data (see requests)
    manifest, arrays = exports["manifest"], exports["arrays"]
    items = manifest["items"]
    models = {}
    for name, item in items.items():
        if item["kind"] == "model":
            models[name] = namespace[name] = rebuilt_model(item, arrays, name, rebuilt)
    for name, item in items.items():
        kind = item["kind"]
        if kind == "history":
            namespace[name] = rebuild.rebuild_history(item, models, name)
        elif kind in ("value", "array"):
            namespace[name] = rebuild.rebuild_value(item, arrays)
        elif kind == "unsupported":
            namespace[name] = rebuild.placeholder(item["unsupported"])
        elif kind == "unrepresentable":
            namespace[name] = rebuild.placeholder(item["type"])
        elif kind == "error":
            namespace[name] = rebuild.placeholder("unreadable")
        elif kind == "callable":
            calls = [call for call in manifest["calls"] if call["builder"] == name]
            namespace[name] = make_standin(name, calls, arrays, rebuilt)
        elif kind == "missing":
            namespace.pop(name, None)  # the cell meets a NameError, as in the kernel
    return namespace


def _message(error: BaseException) -> str:
    text = str(error)
    if isinstance(error, AssertionError):
        return text or "AssertionError"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


#: The three verdicts of a cell out of kernel.
PASSED, FAILED, UNVERIFIABLE = "passed", "failed", "unverifiable"


def passed() -> dict:
    return {"passed": True, "verdict": PASSED, "message": ""}


def failed(message: str) -> dict:
    """The trusted cell fails on objects the verifier could read and rebuild."""
    return {"passed": False, "verdict": FAILED, "message": message}


def unverifiable(limit: str) -> dict:
    """The verifier could not represent or re-check the student's objects: a limit of ours
    (``limit`` names it, for the instructor), never evidence against the student."""
    limit = " ".join(str(limit).split())[:600]
    return {"passed": False, "verdict": UNVERIFIABLE, "message": f"could not verify: {limit}", "limit": limit}


def export_limits(manifest: dict) -> list[str]:
    """What the kernel's exporter could not carry, per name: objects it stood in for with a
    placeholder. A cell that then fails out of kernel was not re-checked on the student's
    real objects: "could not verify", not a failure."""
    limits = []
    for name, item in manifest["items"].items():
        if item["kind"] == "unsupported":
            limits.append(f"{name}: the exporter does not carry a {item['unsupported']}")
        elif item["kind"] == "unrepresentable":
            limits.append(f"{name}: the exporter could not represent this {item['type']} ({item['reason']})")
        elif item["kind"] == "error":
            limits.append(f"{name}: exporting it raised {item['error']}")
    for call in manifest["calls"]:
        result = call["result"]
        shown = f"{call['builder']}{tuple(call['args'])}"
        if result["kind"] == "unsupported":
            limits.append(f"{shown}: the exporter does not carry a {result['unsupported']}")
        elif result["kind"] == "unrepresentable":
            limits.append(f"{shown}: the exporter could not represent this {result['type']} ({result['reason']})")
    return limits


def _is_student_error(error: BaseException) -> bool:
    """An exception the student's code raised in the kernel (re-raised from the export), or a
    name their notebook did not define: their failure, not ours."""
    return bool(getattr(type(error), "student_error", False)) or isinstance(error, NameError)


def judge(error: BaseException, limits: list[str]) -> dict:
    """The verdict for an exception met while re-running a trusted cell.

    A check's failure (``AssertionError``) or the student's own exception is ``failed``,
    unless the exporter stood in for some of the cell's objects (``limits``); a limit met by
    our checks (``CouldNotCheck``), an unreadable export (``ArtifactError``) or any other
    exception of the verifier's own is ``unverifiable``.
    """
    if isinstance(error, ArtifactError):
        return unverifiable(str(error))
    if isinstance(error, CouldNotCheck):
        return unverifiable(instructor_part(str(error)) or student_part(str(error)))
    if isinstance(error, AssertionError) or _is_student_error(error):
        if limits:
            return unverifiable("; ".join(limits) + f" (the re-check then said: {_message(error)[:200]})")
        return failed(_message(error))
    return unverifiable(f"the verifier raised {type(error).__name__}: {str(error)[:300]}")


def _fresh_checks(namespace: dict, request: dict | None) -> None:
    """``check_builder_optimizer`` on the freshly drawn arguments of each builder."""
    from graders.checks import check_builder_optimizer

    fresh: dict[str, list] = {}
    for call in (request or {}).get("calls", []):
        if call.get("fresh"):
            fresh.setdefault(call["builder"], []).append(tuple(call["args"]))
    for builder, argument_sets in fresh.items():
        check_builder_optimizer(namespace.get(builder), builder, argument_sets)


def _model_signature(item: dict) -> str:
    """A model's layers, input and compile settings: what must not change between two test cells."""
    return json.dumps(
        {
            "input": item["input_shape"],
            "compile": item["compile"],
            "layers": [(layer["class_name"], layer["config"]) for layer in item["layers"]],
        },
        sort_keys=True,
        default=str,
    )


def check_unchanged(items: dict, seen: dict[str, str]) -> None:
    """A model exported by several test cells is the same model each time (``seen``: name ->
    signature from the earlier cells, updated here). Nothing honest runs between a TODO's
    test cells; a model whose settings change there dodges a check (e.g. the accuracy floor,
    which applies only to a model with the run's settings)."""
    for name, item in items.items():
        if item["kind"] != "model":
            continue
        signature = _model_signature(item)
        if seen.setdefault(name, signature) != signature:
            raise GradingFailure(
                f"{name} changed between the test cells: its layers or optimizer settings differ from "
                "those an earlier test saw. Test the model you built and trained, unchanged."
            )


def verify_cell(
    grade_id: str,
    source: str,
    folder,
    setup_code,
    request: dict | None,
    seen: dict[str, str] | None = None,
    rebuilt: dict | None = None,
) -> dict:
    """The verdict for one graded cell: ``{"passed": bool, "verdict": "passed" | "failed" |
    "unverifiable", "message": str}`` (and ``"limit"`` for the instructor when unverifiable);
    ``seen``: see :func:`check_unchanged`."""
    try:
        exports = read_cell_exports(folder)
    except ArtifactError as error:
        return unverifiable(str(error))
    try:
        check_unchanged(exports["manifest"]["items"], {} if seen is None else seen)
    except GradingFailure as failure:
        return failed(str(failure))
    limits = export_limits(exports["manifest"])
    try:
        namespace = cell_namespace(setup_code, exports, rebuilt)
        exec(compile(source, f"<{grade_id}>", "exec"), namespace)
        crosscheck.crosscheck_items(exports["manifest"]["items"])
        _fresh_checks(namespace, request)
    except Exception as error:  # every exception gets a verdict; none escapes as the student's
        return judge(error, limits)
    return passed()


def verify_notebook(
    notebook, exports_dir, requests: dict | None = None, support_dir=None, replay_key: bytes | None = None
) -> dict[str, dict]:
    """``{grade_id: {"passed": bool, "message": str}}`` for every graded cell, in order.

    ``notebook``: the TRUSTED nbformat node (with hidden tests); ``exports_dir``:
    the folder holding one ``<grade_id>/`` per cell; ``requests``: what
    ``requests.fresh_calls`` returned (its fresh calls are checked); ``support_dir``:
    the folder of the trusted ``hw5_data.py`` (else the caller set ``sys.path``);
    ``replay_key``: the host's secret for this submission, which draws the epoch of each
    trained model that is replayed (:mod:`graders.verify.replay`); without one, a fresh
    random key.
    """
    os.environ.setdefault("MPLBACKEND", "Agg")  # the cells may plot; never open a window
    if support_dir is not None:
        use_support_dir(support_dir)
    replay.switch_on(replay_key or secrets.token_bytes(16))
    setup_code = _setup_code(notebook, support_modules(support_dir))
    verdicts, seen, rebuilt = {}, {}, {}
    for grade_id, source in graded_cells(notebook):
        if grade_id in (".", "..") or "/" in grade_id or "\0" in grade_id:
            verdicts[grade_id] = unverifiable("unusable grade_id")
            continue
        with contextlib.redirect_stdout(io.StringIO()):  # the checks print feedback lines
            verdicts[grade_id] = verify_cell(
                grade_id,
                source,
                os.path.join(os.fspath(exports_dir), grade_id),
                setup_code,
                (requests or {}).get(grade_id),
                seen,
                rebuilt,
            )
    return verdicts
