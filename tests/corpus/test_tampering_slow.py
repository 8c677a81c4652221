"""In-kernel tampering on the real homework: every trick earns exactly the honest grade.

The corpus (tests/corpus/tampering.py) is lazy work plus one trick each: patched checks,
a swapped module, import hooks, input and AST transformers, trace and profile hooks,
lying Keras methods and subclasses, rigged values, a replaced test set, a canned builder,
and exports truncated, padded or swapped for symlinks. With the judge inside the kernel
most of them got every point. Graded as one class (sandboxed, fast budget), each must get
exactly the grade the corpus states: the honest grade of its work, less the honest cells
a trick itself broke (tampering.LOSSES: fail closed). A trick that fooled the kernel is
flagged.
"""

from __future__ import annotations

import pytest

from corpus.grading import SANDBOXED_CORPUS, grade_mocks, points_of
from corpus.tampering import LAZY_HONEST, TAMPERING, TIME_LIMITED

pytestmark = SANDBOXED_CORPUS


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    return grade_mocks(tmp_path_factory.mktemp("tampering") / "course", TAMPERING, workers=2)


@pytest.mark.parametrize("mock", TAMPERING, ids=lambda mock: mock.name)
def test_each_trick_earns_exactly_the_honest_grade(graded, mock):
    root, reports = graded
    assert reports[mock.name]["status"] == "graded", reports[mock.name]
    got, expected = points_of(root, mock)
    for grade_id in TIME_LIMITED.get(mock.name, ()):
        assert got[grade_id] in (0, expected[grade_id]), (grade_id, got[grade_id])
        got[grade_id] = expected[grade_id]
    assert got == expected


def test_tricks_that_fooled_the_kernel_are_flagged(graded):
    """Most tricks made the kernel's own tests pass: the disagreement is flagged for review."""
    _, reports = graded
    flagged = {
        name
        for name, report in reports.items()
        if any("suspected tampering" in flag or "could not verify" in flag for flag in report["flags"])
    }
    print("\nflagged:", sorted(flagged), "\nnot flagged:", sorted(set(reports) - flagged))
    assert LAZY_HONEST.name not in flagged  # honest work is never suspected
    assert len(flagged) >= 12, sorted(set(reports) - flagged)
