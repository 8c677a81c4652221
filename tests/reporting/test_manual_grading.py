"""Manual grading in nbgrader's formgrader: graders see a rubric, and the points add up.

The rubric mechanism (docs/grading.md, "Grading written answers"): a locked markdown cell right
after each written answer holds the rubric between ``=== BEGIN MARK SCHEME ===`` and
``=== END MARK SCHEME ===``, with ``c.ClearMarkScheme.enforce_metadata = False`` in the
config. ``generate_assignment`` stores the cell whole in the gradebook and strips the
region from the release; autograde restores locked cells from the gradebook, so the
autograded notebook (what the formgrader shows) has the rubric again; hw5-feedback
strips it. Shown on the toy course with a rubric cell (test_feedback.make_rubric_toy_course).

Scores set through nbgrader's API (``Gradebook``) add to the autograded points, in the
gradebook, in nbgrader's CSV and in the LMS export; on the real HW5 too (e2e).
"""

from __future__ import annotations

import shutil

import nbformat
import pandas as pd
import pytest
from nbgrader.api import Gradebook

from graders.course import course_db_url
from graders.reporting import exports, feedback
from reporting.test_feedback import (
    REFERENCE_ANSWER,
    RUBRIC_TEXT,
    graded_hw5_course,
    graded_toy_course,
    needs_bwrap,
)


def set_manual_score(grade, score) -> None:
    """What the formgrader's grade API does when a grader types a score
    (nbgrader/server_extensions/formgrader/apihandlers.py, GradeHandler.put)."""
    grade.manual_score = score
    grade.needs_manual_grade = grade.manual_score is None and grade.auto_score is None


def _cell(path, grade_id):
    notebook = nbformat.read(path, as_version=4)
    return next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def formgrader_html(root, student: str, assignment: str, notebook: str) -> str:
    """The page the formgrader serves for one submitted notebook (its handler's exporter)."""
    from nbconvert.exporters import HTMLExporter
    from nbgrader.server_extensions.formgrader import handlers

    exporter = HTMLExporter(template_name="formgrade", extra_template_basedirs=[handlers.template_path])
    resources = {
        "assignment_id": assignment,
        "notebook_id": notebook,
        "submission_id": "x",
        "index": 0,
        "total": 1,
        "base_url": "",
        "student": student,
        "last_name": "",
        "first_name": "",
        "notebook_path": f"autograded/{student}/{assignment}/{notebook}.ipynb",
    }
    html, _ = exporter.from_filename(
        str(root / "autograded" / student / assignment / f"{notebook}.ipynb"), resources=resources
    )
    return html


@pytest.fixture
def toy(tmp_path_factory, tmp_path):
    """A private copy of the graded toy course (these tests write grades)."""
    source, report = graded_toy_course(tmp_path_factory)
    root = tmp_path / "course"
    shutil.copytree(source, root, ignore=shutil.ignore_patterns(".grading", "feedback"))
    return root, report


@pytest.mark.batch
@needs_bwrap
def test_rubric_is_absent_from_the_release_shown_to_graders_and_absent_from_feedback(toy):
    root, _ = toy
    release = (root / "release" / "toy" / "toy.ipynb").read_text()
    assert RUBRIC_TEXT not in release and REFERENCE_ANSWER not in release
    assert "MARK SCHEME" not in release
    assert RUBRIC_TEXT in _cell(root / "autograded" / "alice" / "toy" / "toy.ipynb", "rubric_explain").source
    page = feedback.html_text(formgrader_html(root, "alice", "toy", "toy"))
    assert RUBRIC_TEXT in page and "It returns the sum of a and b." in page  # rubric beside the answer
    written, problems = feedback.generate(root, "toy", ["alice"])
    assert problems == [] and RUBRIC_TEXT not in feedback.html_text(written[0].read_text())


@pytest.mark.batch
@needs_bwrap
def test_manual_score_adds_to_the_autograded_points(toy):
    root, report = toy
    db_url = course_db_url(root)
    with Gradebook(db_url) as gradebook:
        submission = gradebook.find_submission("toy", "alice")
        auto = sum(g.score for nb in submission.notebooks for g in nb.grades if g.cell_type == "code")
        answer = gradebook.find_grade("answer_explain", "toy", "toy", "alice")
        assert answer.needs_manual_grade and answer.max_score == 2 and auto == 2
        assert submission.score == auto  # the written answer counts 0 until graded
        set_manual_score(answer, 1.5)
        gradebook.db.commit()
    with Gradebook(db_url) as gradebook:
        submission = gradebook.find_submission("toy", "alice")
        answer = gradebook.find_grade("answer_explain", "toy", "toy", "alice")
        assert not answer.needs_manual_grade and not submission.needs_manual_grade
        assert submission.score == auto + 1.5 == 3.5 and submission.max_score == 4
    out = root / "exports"
    assert exports.main(["toy", "--course", str(root), "--out", str(out), "--report", str(report)]) == 0
    lms = pd.read_csv(out / "lms-grades.csv").set_index("Student ID")
    nbgrader_csv = pd.read_csv(out / "nbgrader-grades.csv").set_index("student_id")
    assert lms.loc["alice", "toy auto (2)"] + lms.loc["alice", "toy manual (2)"] == lms.loc["alice", "Total (4)"] == 3.5
    assert nbgrader_csv.loc["alice", "score"] == 3.5
    assert lms.loc["alice", "Status"] == "complete" and lms.loc["bob", "Status"] == "awaiting manual grading"


@pytest.mark.e2e
@pytest.mark.needs_mnist
@needs_bwrap
def test_hw5_manual_scores_add_up_with_the_autograded_parts(tmp_path_factory, tmp_path):
    source, report = graded_hw5_course(tmp_path_factory)
    root = tmp_path / "course"
    shutil.copytree(source, root, ignore=shutil.ignore_patterns(".grading", "feedback"))
    db_url = course_db_url(root)
    given = {
        "answer_q1": 4,
        "answer_q2": 2,
        "answer_q3": 1.5,
        "answer_q4": 2,
        "answer_1_2": 2,
        "answer_1_3": 1,
        "answer_2_1": 2.5,
        "answer_2_2": 0,
    }
    with Gradebook(db_url) as gradebook:
        submission = gradebook.find_submission("hw5", "reference")
        auto = sum(g.score for nb in submission.notebooks for g in nb.grades if g.cell_type == "code")
        pending = {g.name for nb in submission.notebooks for g in nb.grades if g.needs_manual_grade}
        assert pending == set(given) and auto == 13
        for nb in submission.notebooks:
            for grade in nb.grades:
                if grade.name in given:
                    set_manual_score(grade, given[grade.name])
        gradebook.db.commit()
    with Gradebook(db_url) as gradebook:
        submission = gradebook.find_submission("hw5", "reference")
        assert not submission.needs_manual_grade
        assert submission.score == auto + sum(given.values()) == 28 and submission.max_score == 31
    out = root / "exports"
    assert exports.main(["hw5", "--course", str(root), "--out", str(out), "--report", str(report)]) == 0
    row = pd.read_csv(out / "lms-grades.csv").set_index("Student ID").loc["reference"]
    assert row["Part A manual (7)"] == 5.5 and row["Part B 1 (5)"] == 4 and row["Total (31)"] == 28
    assert pd.read_csv(out / "nbgrader-grades.csv").set_index("student_id").loc["reference", "score"] == 28
