"""End to end: release, submit, `nbgrader autograde` (real kernels, real TensorFlow), gradebook.

Each submission costs tens of seconds, so this module grades a handful, with the
sandboxed class grader: the sample class, one correct solution in another style, the
reference twice (determinism) and three mutants. ``nbgrader validate`` runs plain nbgrader.
The whole mutant corpus is in test_corpus_slow.py behind the `slow` marker.
"""

from __future__ import annotations

import re
from dataclasses import replace

import nbformat
import pytest

from corpus.correct_styles import KERAS2_STYLE
from corpus.grading import SHARED_MUTANTS, shared_class
from corpus.mutants import MUTANTS
from graders.authoring.mock_submissions import autograded_max_points
from graders.authoring.sample_class import REFERENCE, SAMPLE_CLASS
from graders.course import course_db_url, release_dir, run_nbgrader, source_dir
from graders.gradebook import student_grades
from graders.reporting.score_table import autograded_points

pytestmark = [pytest.mark.e2e, pytest.mark.needs_mnist]

REFERENCE_AGAIN = replace(REFERENCE, name="reference-again", intent="The reference, graded a second time.")
STUDENTS = (
    *SAMPLE_CLASS,
    KERAS2_STYLE,
    REFERENCE_AGAIN,
    *(mock for mock in MUTANTS if mock.name in SHARED_MUTANTS),
)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The session's graded class (hw5-autograde, sandboxed, as instructors grade)."""
    return shared_class(tmp_path_factory)


@pytest.mark.parametrize("mock", STUDENTS, ids=lambda mock: mock.name)
def test_each_submission_gets_exactly_its_expected_points(graded, mock):
    root, outcomes = graded
    assert outcomes[mock.name]["status"] == "graded" and not outcomes[mock.name]["errors"], outcomes[mock.name]
    got = autograded_points(student_grades(course_db_url(root), mock.name))
    want = mock.expected_points(autograded_max_points(root))
    assert got == want


def _training_lines(root, student):
    """The lines check_training prints: run, updates and recomputed test accuracy."""
    notebook = nbformat.read(root / "autograded" / student / "hw5" / "hw5_part_b_cnn.ipynb", as_version=4)
    lines = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("name") == "stdout":
                lines += re.findall(r"^\w+: 10 epochs, .*test accuracy .*$", output["text"], re.M)
    return lines


def test_grading_twice_gives_identical_scores_and_accuracies(graded):
    root, _ = graded
    first, second = _training_lines(root, "reference"), _training_lines(root, "reference-again")
    assert len(first) == 4, first  # TODO 1, 2, 4 and 6
    assert first == second
    db_url = course_db_url(root)
    assert autograded_points(student_grades(db_url, "reference")) == autograded_points(
        student_grades(db_url, "reference-again")
    )


def test_the_budget_is_written_into_the_graded_notebook(graded):
    root, _ = graded
    notebook = nbformat.read(root / "autograded" / "reference" / "hw5" / "hw5_part_b_cnn.ipynb", as_version=4)
    assert "HW5 data budget: fast" in notebook.cells[1].outputs[0]["text"]


def test_correct_code_loses_nothing_to_warnings_or_logs(graded):
    """The Keras-2-style submission triggers Keras's input_shape= UserWarning in test cells."""
    root, _ = graded
    notebook = nbformat.read(root / "autograded" / KERAS2_STYLE.name / "hw5" / "hw5_part_b_cnn.ipynb", as_version=4)
    text = "".join(output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", []))
    assert "input_shape" in text  # the warning was raised, and shown on stdout
    stderr = [
        output
        for cell in notebook.cells
        if cell.metadata.get("nbgrader", {}).get("grade")
        for output in cell.get("outputs", [])
        if output.get("name") == "stderr"
    ]
    assert stderr == []


@pytest.mark.slow  # plain nbgrader runs the notebook unsandboxed: minutes; the canary and
# the shared class grade the source (all points) and the release (none) on every run
def test_nbgrader_validate_passes_on_the_source():
    for name in ("hw5_part_a_written.ipynb", "hw5_part_b_cnn.ipynb"):
        result = run_nbgrader(["validate", str(source_dir() / name)], check=False)
        assert "Success! Your notebook passes all the tests." in result.stdout, result.stdout[-3000:]


@pytest.mark.slow  # plain nbgrader runs the notebook unsandboxed: minutes; the canary and
# the shared class grade the source (all points) and the release (none) on every run
def test_nbgrader_validate_invert_passes_on_the_untouched_release():
    for name in ("hw5_part_a_written.ipynb", "hw5_part_b_cnn.ipynb"):
        result = run_nbgrader(["validate", "--invert", str(release_dir() / name)], check=False)
        assert "Success! The notebook does not pass any tests." in result.stdout, result.stdout[-3000:]
