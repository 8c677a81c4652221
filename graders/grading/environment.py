"""Tell a failure of the grading environment from a failure of the student's work.

The instructor's setup cells (imports, data loading, the sample model) run before any
code of the student's. When one of them raises, the environment is broken (no data file,
a missing package, a checks module that does not import), and every test after it would
score zero through no fault of the student. Such a notebook must not be graded.

Only cells *before the first cell the student could have written* count: a student can
insert a cell anywhere, and a cell of theirs that runs first could break ours on purpose
(``del np``, ``os.chdir``), which is then the student's failure, graded as such.
"""

from __future__ import annotations

import nbformat

EVALUE_CHARS = 200


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader") or {}


def is_instructor_cell(cell) -> bool:
    """A locked cell of the instructor's: ``locked`` true, neither ``grade`` nor ``solution``."""
    meta = _nbgrader(cell)
    return bool(meta.get("locked")) and not meta.get("grade") and not meta.get("solution")


def is_student_code(cell) -> bool:
    """A code cell whose source the student could have written: a solution cell, or a cell
    that is not one of nbgrader's (no metadata, or metadata naming no role)."""
    if cell.get("cell_type") != "code":
        return False
    meta = _nbgrader(cell)
    return bool(meta.get("solution")) or not (meta.get("locked") or meta.get("grade"))


def _one_line(text: str, limit: int) -> str:
    return " ".join(str(text).split())[:limit]


def _as_node(executed_notebook):
    """Accept an nbformat node, a plain dict, or the notebook's JSON text."""
    if isinstance(executed_notebook, (str, bytes)):
        return nbformat.reads(executed_notebook, as_version=4)
    return executed_notebook


def instructor_cell_failures(executed_notebook) -> list[str]:
    """Instructor setup cells that raised before any student code could run.

    ``executed_notebook``: an executed notebook (nbformat node, dict or JSON text).
    Returns one line per error output of an instructor cell (see
    :func:`is_instructor_cell`) that comes before the first :func:`is_student_code`
    cell: ``cell <grade_id> raised <ename>: <evalue, first 200 chars>``. Empty: the
    environment did its part.
    """
    failures = []
    for cell in _as_node(executed_notebook).get("cells", []):
        if is_student_code(cell):
            break  # from here on, a failure may be the student's doing
        if cell.get("cell_type") != "code" or not is_instructor_cell(cell):
            continue
        grade_id = _nbgrader(cell).get("grade_id", "?")
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                failures.append(
                    f"cell {grade_id} raised {_one_line(output.get('ename', '?'), 80)}: "
                    f"{_one_line(output.get('evalue', ''), EVALUE_CHARS)}"
                )
    return failures


def is_environment_failure(executed_notebook) -> bool:
    """True when an instructor setup cell raised before any student code ran (see above)."""
    return bool(instructor_cell_failures(executed_notebook))


def environment_failures(executed: dict[str, object]) -> dict[str, list[str]]:
    """Per notebook name, the failures of :func:`instructor_cell_failures`; notebooks
    without any are left out (``executed``: name -> executed notebook, or None when
    nothing came back, which is the sandbox's status to report, not ours)."""
    found = {}
    for name, notebook in executed.items():
        if notebook is not None:
            lines = instructor_cell_failures(notebook)
            if lines:
                found[name] = lines
    return found
