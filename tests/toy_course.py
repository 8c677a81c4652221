"""A tiny nbgrader course (no TensorFlow) for testing the class grader's failure handling.

Assignment ``toy`` has one notebook, ``toy.ipynb``: a solution cell defining ``add``
and two test cells of 1 point each, plus a support file ``helper.py``. Grading one
submission takes seconds, so sandbox and failure cases can run in the default suite.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from graders.authoring.release import scratch_release
from graders.course import COURSE_ROOT

ASSIGNMENT = "toy"
NOTEBOOK = "toy.ipynb"
TESTS = ("test_add", "test_add_more")


def _meta(**fields):
    return {"nbgrader": {"schema_version": 3, **fields}}


def source_notebook():
    cells = [
        new_markdown_cell("# Toy assignment (2 points)"),
        new_code_cell("import helper", metadata=_meta(grade=False, solution=False, locked=True, grade_id="setup")),
        new_code_cell(
            "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION",
            metadata=_meta(grade=False, solution=True, locked=False, grade_id="solution"),
        ),
        new_code_cell(
            "assert add(1, 2) == 3, 'add(1, 2) should be 3'\n"
            "### BEGIN HIDDEN TESTS\nassert add(-1, 1) == 0\n### END HIDDEN TESTS\n"
            "assert helper.SUPPORT_FILE_OK",
            metadata=_meta(grade=True, solution=False, locked=True, points=1, grade_id="test_add"),
        ),
        new_code_cell(
            "assert add(2, 2) == 4\n### BEGIN HIDDEN TESTS\nassert add(10, -3) == 7\n### END HIDDEN TESTS\n"
            "assert add(0, 0) == 0",
            metadata=_meta(grade=True, solution=False, locked=True, points=1, grade_id="test_add_more"),
        ),
    ]
    for number, cell in enumerate(cells):  # fixed ids: the same source, byte for byte, each time
        cell.id = f"toy-cell-{number}"
    notebook = new_notebook(cells=cells)
    notebook.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    return notebook


def make_toy_course(root: Path) -> Path:
    """Config, source and a generated release (and gradebook) in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy2(COURSE_ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    source = root / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    nbformat.write(source_notebook(), source / NOTEBOOK)
    (source / "helper.py").write_text("SUPPORT_FILE_OK = True\n")
    scratch_release(root, assignment=ASSIGNMENT)
    return root


def toy_course_with(root: Path, students: dict) -> Path:
    """A toy course in ``root`` with one submission per student: ``{student: (solution, ...)}``."""
    make_toy_course(root)
    for student, (solution, *_) in students.items():
        submit(root, student, solution)
    return root


def grade_toy(root: Path, *extra: str, cell_timeout: int = 10, notebook_timeout: int = 60) -> tuple[int, dict]:
    """``hw5-autograde toy`` without the canary (these tests are not about it); returns the
    exit status and the report per student."""
    import time

    from graders.grading import batch

    report = root / f"report-{time.time_ns()}.json"
    code = batch.main(
        [
            "toy",
            "--course",
            str(root),
            "--cell-timeout",
            str(cell_timeout),
            "--notebook-timeout",
            str(notebook_timeout),
            "--no-canary",
            "--report",
            str(report),
            *extra,
        ]
    )
    return code, report_of(report)


def released(root: Path):
    return nbformat.read(root / "release" / ASSIGNMENT / NOTEBOOK, as_version=4)


def submit(
    root: Path,
    student: str,
    solution: str | None = None,
    *,
    notebook=None,
    raw: bytes | None = None,
    name: str = NOTEBOOK,
    extra_files: dict | None = None,
) -> Path:
    """Write a submission: the release with ``solution`` as the solution cell's source,
    or a given ``notebook`` node, or ``raw`` bytes. Returns the submission folder."""
    folder = root / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    if raw is not None:
        (folder / name).write_bytes(raw)
    else:
        notebook = notebook or released(root)
        if solution is not None:
            for cell in notebook.cells:
                if cell.metadata.get("nbgrader", {}).get("grade_id") == "solution":
                    cell.source = solution
        nbformat.write(notebook, folder / name)
    for file_name, content in (extra_files or {}).items():
        (folder / file_name).write_text(content)
    return folder


CORRECT = "def add(a, b):\n    return a + b\n"


def points(root: Path, student: str) -> dict[str, float]:
    from graders.course import course_db_url
    from graders.gradebook import student_grades
    from graders.reporting.score_table import autograded_points

    return autograded_points(student_grades(course_db_url(root), student, assignment=ASSIGNMENT))


def report_of(path: Path) -> dict[str, dict]:
    return {entry["student"]: entry for entry in json.loads(path.read_text())}
