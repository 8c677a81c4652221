"""graders.grading.environment: a raising setup cell of ours is the environment's failure,
unless student code could have run before it."""

from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from graders.grading.environment import (
    environment_failures,
    instructor_cell_failures,
    is_environment_failure,
)


def cell(grade_id=None, *, locked=False, grade=False, solution=False, raises=None, markdown=False):
    made = new_markdown_cell("text") if markdown else new_code_cell("pass")
    if grade_id is not None:
        made.metadata["nbgrader"] = {
            "grade_id": grade_id,
            "locked": locked,
            "grade": grade,
            "solution": solution,
            "schema_version": 3,
        }
    if raises:
        ename, evalue = raises
        made.outputs = [
            new_output("stream", name="stdout", text="loading\n"),
            new_output("error", ename=ename, evalue=evalue, traceback=[]),
        ]
    return made


def setup(grade_id="setup", raises=None):
    return cell(grade_id, locked=True, raises=raises)


def solution(grade_id="todo1", raises=None):
    return cell(grade_id, solution=True, raises=raises)


def test_a_raising_setup_cell_is_reported():
    notebook = new_notebook(
        cells=[
            new_markdown_cell("# HW5"),
            setup(raises=("FileNotFoundError", "HW5_MNIST_PATH='/x' does not name a file.")),
            setup("prepare_data"),
            solution(),
        ]
    )
    assert instructor_cell_failures(notebook) == [
        "cell setup raised FileNotFoundError: HW5_MNIST_PATH='/x' does not name a file."
    ]
    assert is_environment_failure(notebook)


def test_every_raising_setup_cell_is_reported_on_one_line_each():
    notebook = new_notebook(
        cells=[
            setup(raises=("URLError", "<urlopen error [Errno -3]\nTemporary failure>")),
            setup("prepare_data", raises=("NameError", "x" * 500)),
        ]
    )
    assert instructor_cell_failures(notebook) == [
        "cell setup raised URLError: <urlopen error [Errno -3] Temporary failure>",
        "cell prepare_data raised NameError: " + "x" * 200,
    ]


def test_a_raising_cell_after_a_solution_cell_is_not_reported():
    notebook = new_notebook(cells=[setup(), solution(), setup("plot_baseline", raises=("NameError", "model"))])
    assert instructor_cell_failures(notebook) == []
    assert not is_environment_failure(notebook)


def test_a_student_cell_inserted_before_setup_makes_its_failure_the_students():
    inserted = new_code_cell("del np")  # no nbgrader metadata: the student's own cell
    notebook = new_notebook(cells=[inserted, setup(raises=("NameError", "name 'np' is not defined"))])
    assert instructor_cell_failures(notebook) == []


def test_an_inserted_markdown_cell_runs_nothing_and_changes_nothing():
    notebook = new_notebook(cells=[cell(markdown=True), setup(raises=("ImportError", "graders.checks"))])
    assert instructor_cell_failures(notebook) == ["cell setup raised ImportError: graders.checks"]


def test_test_cells_and_student_errors_are_not_the_environments():
    notebook = new_notebook(
        cells=[
            cell("test_todo0", locked=True, grade=True, raises=("AssertionError", "wrong")),
            cell("answer_md", solution=True, markdown=True),  # a written answer runs nothing
            setup(raises=("ValueError", "bad")),
            solution(raises=("TypeError", "student")),
        ]
    )
    assert instructor_cell_failures(notebook) == ["cell setup raised ValueError: bad"]


def test_accepts_json_text_and_reports_per_notebook():
    broken = new_notebook(cells=[setup(raises=("OSError", "no data"))])
    fine = new_notebook(cells=[setup(), solution()])
    text = nbformat.writes(broken)
    assert instructor_cell_failures(text) == ["cell setup raised OSError: no data"]
    assert environment_failures({"b.ipynb": text, "a.ipynb": fine, "c.ipynb": None}) == {
        "b.ipynb": ["cell setup raised OSError: no data"]
    }


def test_the_real_part_b_notebook():
    from graders.course import source_dir

    notebook = nbformat.read(source_dir() / "hw5_part_b_cnn.ipynb", as_version=4)
    by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in notebook.cells}
    error = new_output("error", ename="FileNotFoundError", evalue="mnist.npz", traceback=[])
    by_id["setup"].outputs = [error]
    by_id["test_todo6_training"].outputs = [error]  # after the student's cells: theirs
    assert instructor_cell_failures(notebook) == ["cell setup raised FileNotFoundError: mnist.npz"]
