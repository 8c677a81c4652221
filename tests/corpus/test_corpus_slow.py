"""The whole mutant corpus and the correct-style corpus, graded end to end by nbgrader.

Slow (about a minute per submission on two cores). Run it, and see the mutation
score, with:  make mutation-score   (= pytest -m slow -s tests/corpus/test_corpus_slow.py)
"""

from __future__ import annotations

import pytest

from corpus.correct_styles import ALL as CORRECT_STYLES
from corpus.correct_styles import UNUSUAL_STYLES
from corpus.grading import grade_mocks
from corpus.mutants import MUTANTS
from graders.authoring.mock_submissions import autograded_max_points
from graders.authoring.sample_class import REFERENCE
from graders.course import course_db_url
from graders.gradebook import student_grades
from graders.reporting.score_table import autograded_points

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.needs_mnist]

CORPUS = (REFERENCE, *CORRECT_STYLES, *UNUSUAL_STYLES, *MUTANTS)
#: Two submissions at a time, one TensorFlow thread each, on these two-core machines.
WORKERS = 2


def selected_mocks(session) -> tuple:
    """The corpus, or only the submissions whose tests were selected (``-k NAME``): the
    mutation score needs them all, one submission's own test only itself."""
    chosen = {
        item.callspec.params["mock"].name
        for item in session.items
        if hasattr(item, "callspec") and "mock" in item.callspec.params
    }
    if any(item.name == "test_mutation_score_is_100_percent" for item in session.items):
        return CORPUS
    return tuple(mock for mock in CORPUS if mock.name in chosen) or CORPUS


_ROOTS: dict[str, object] = {}


def graded_root(request):
    """The course the module's ``graded`` fixture graded."""
    return _ROOTS[request.module.__name__]


@pytest.fixture(scope="module")
def graded(tmp_path_factory, request):
    mocks = selected_mocks(request.session)
    root, outcomes = grade_mocks(tmp_path_factory.mktemp("corpus"), mocks, workers=WORKERS)
    _ROOTS[request.module.__name__] = root
    db_url = course_db_url(root)
    points = {mock.name: autograded_points(student_grades(db_url, mock.name)) for mock in mocks}
    return autograded_max_points(root), outcomes, points


@pytest.mark.parametrize("mock", CORPUS, ids=lambda mock: mock.name)
def test_submission_gets_exactly_its_expected_points(graded, mock):
    maxima, outcomes, points = graded
    assert outcomes[mock.name]["status"] == "graded", outcomes[mock.name]
    assert points[mock.name] == mock.expected_points(maxima), mock.intent


def mutation_score(maxima, points) -> dict[str, tuple[int, int]]:
    """Per test cell: (mutants that lost points there, mutants meant to lose points there)."""
    score = {}
    for grade_id, maximum in maxima.items():
        targeting = [m for m in MUTANTS if m.expected_points(maxima)[grade_id] < maximum]
        caught = [m for m in targeting if points[m.name].get(grade_id, 0.0) < maximum]
        if targeting:
            score[grade_id] = (len(caught), len(targeting))
    return score


def test_mutation_score_is_100_percent(graded):
    maxima, _, points = graded
    score = mutation_score(maxima, points)
    width = max(map(len, score))
    print(f"\nmutation score ({len(MUTANTS)} mutants), per test cell:")
    for grade_id, (caught, targeting) in score.items():
        print(f"  {grade_id.ljust(width)}  {caught}/{targeting} caught")
    exact = sum(points[m.name] == m.expected_points(maxima) for m in MUTANTS)
    print(f"  mutants graded exactly as expected: {exact}/{len(MUTANTS)}")
    assert all(caught == targeting for caught, targeting in score.values())
    assert len(score) >= 12, "every Part B test cell is targeted by some mutant"


@pytest.mark.parametrize("mock", UNUSUAL_STYLES, ids=lambda mock: mock.name)
def test_unusual_style_is_never_suspected_of_tampering(graded, mock):
    """Issue 16: an honest unusual style gets full marks, or "needs a person" on the cells it
    lost, and never a tampering flag."""
    maxima, outcomes, points = graded
    flags = outcomes[mock.name]["flags"]
    assert not [flag for flag in flags if "suspected tampering" in flag], flags
    lost = {cell for cell, maximum in maxima.items() if points[mock.name].get(cell, 0.0) < maximum}
    for_a_person = {cell for cell in lost if any(f": {cell}: needs a person" in flag for flag in flags)}
    assert lost == for_a_person, (sorted(lost), flags)


def test_unusual_and_every_other_student_page_names_no_class_of_ours_and_shows_no_traceback(graded, request):
    """Issue 16: the feedback of the whole graded corpus, rendered; every failure message on
    every page is a sentence about the student's work."""
    from graders.reporting import feedback
    from reporting.test_feedback import student_page_problems

    root = graded_root(request)
    written, problems = feedback.generate(root, "hw5")
    assert written and not problems, problems
    found = {}
    for path in written:
        hits = student_page_problems(feedback.html_text(path.read_text(encoding="utf-8")))
        if hits:
            found[str(path.relative_to(root))] = hits
    assert found == {}
