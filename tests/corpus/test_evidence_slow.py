"""Issue 17's corpus graded end to end (sandboxed, fast budget): each case gets exactly the
grade its work deserves (tests/corpus/evidence.py says why for each)."""

from __future__ import annotations

import shutil

import pytest

from corpus.evidence import EVIDENCE
from corpus.grading import grade_mocks
from graders.authoring.mock_submissions import autograded_max_points
from graders.course import course_db_url
from graders.gradebook import student_grades
from graders.reporting.score_table import autograded_points

pytestmark = [
    pytest.mark.slow,
    pytest.mark.needs_mnist,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    return grade_mocks(tmp_path_factory.mktemp("evidence") / "course", EVIDENCE, workers=2)


@pytest.mark.parametrize("mock", EVIDENCE, ids=lambda mock: mock.name)
def test_each_case_gets_exactly_the_grade_its_work_deserves(graded, mock):
    root, reports = graded
    assert reports[mock.name]["status"] == "graded", reports[mock.name]
    got = autograded_points(student_grades(course_db_url(root), mock.name))
    assert got == mock.expected_points(autograded_max_points(root))
