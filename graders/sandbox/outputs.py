"""Every output the executor adds to a notebook, built in one place.

The executor (:mod:`graders.sandbox.execute_inside`, inside the sandbox), the host's
reading of its result (:mod:`graders.sandbox.notebook`) and nbgrader's scoring pass
(:mod:`graders.grading.pipeline`) all mark cells the same way. nbgrader scores a test
cell with no error output as passed, so a cell that did not run, timed out, raised
out of sight or lost its output always gets an explicit error output. Only nbformat is
needed: this module runs inside the sandbox too.
"""

from __future__ import annotations

import copy
from typing import Any

TIMEOUT_ENAME = "CellTimeoutError"
NOT_EXECUTED_ENAME = "CellNotExecuted"
TOO_LARGE_ENAME = "OutputTooLarge"
HIDDEN_ERROR_ENAME = "HiddenError"
NOT_GRADED_ENAME = "NotExecuted"  # no executed notebook came back for nbgrader to score


def error_output(ename: str, evalue: str):
    """An nbformat error output whose traceback is its one-line message."""
    import nbformat

    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def has_error(cell) -> bool:
    return any(output.get("output_type") == "error" for output in cell.get("outputs", []))


def merge_outputs(sent, cells: dict) -> Any:
    """The notebook that was sent in, with the outputs and execution counts of the
    ``cell`` frames (index -> frame) put on its code cells; cells without a frame keep
    no outputs. Raises ValueError when a frame names no code cell or is malformed."""
    import nbformat

    result = copy.deepcopy(sent)
    for cell in result.cells:
        if cell.cell_type == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    for i, frame in cells.items():
        if not (isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(result.cells)):
            raise ValueError(f"a cell frame names cell {i!r}, which the notebook does not have")
        mine = result.cells[i]
        if mine.cell_type != "code":
            raise ValueError(f"cell {i}: a frame for a {mine.cell_type} cell")
        outputs = frame.get("outputs", [])
        count = frame.get("execution_count")
        if not isinstance(outputs, list) or not (
            count is None or (isinstance(count, int) and not isinstance(count, bool) and count >= 0)
        ):
            raise ValueError(f"cell {i}: bad outputs / execution_count")
        mine["outputs"] = nbformat.from_dict(outputs)
        mine["execution_count"] = count
    nbformat.validate(result)
    return result


def mark_unfinished(nb, status: str) -> None:
    """Every code cell that has source but never ran, and shows no error, gets one."""
    for cell in nb.cells:
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        if cell.get("execution_count") is None and not has_error(cell):
            cell.outputs.append(
                error_output(NOT_EXECUTED_ENAME, f"did not run to completion (sandbox status: {status})")
            )
