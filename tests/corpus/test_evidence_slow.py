"""Issue 17's corpus graded end to end (sandboxed, fast budget): each case gets exactly the
grade its work deserves (tests/corpus/evidence.py says why for each)."""

from __future__ import annotations

import pytest

from corpus.evidence import EVIDENCE
from corpus.grading import SANDBOXED_CORPUS, grade_mocks, points_of

pytestmark = SANDBOXED_CORPUS


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    return grade_mocks(tmp_path_factory.mktemp("evidence") / "course", EVIDENCE, workers=2)


@pytest.mark.parametrize("mock", EVIDENCE, ids=lambda mock: mock.name)
def test_each_case_gets_exactly_the_grade_its_work_deserves(graded, mock):
    root, reports = graded
    assert reports[mock.name]["status"] == "graded", reports[mock.name]
    got, expected = points_of(root, mock)
    assert got == expected
