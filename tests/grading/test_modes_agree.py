"""``--no-sandbox`` grades by the sandbox's rules: only the isolation differs.

The same submissions, graded once sandboxed and once with ``--no-sandbox``, get the same
points per test cell, including the executor's own rules: a hidden exception, a cell
that times out, and an output over the cap.
"""

from __future__ import annotations

import shutil

import pytest
from toy_course import CORRECT, TESTS, make_toy_course, points, report_of, submit

from graders.grading import batch

pytestmark = [
    pytest.mark.batch,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]

#: student -> (solution cell, points per test cell under both modes)
CASES = {
    "correct": (CORRECT, (1, 1)),
    "wrong": ("def add(a, b):\n    return a - b\n", (0, 0)),
    "hidden-exception": (
        "def add(a, b):\n    return a - b\n\nget_ipython().showtraceback = lambda *args, **kwargs: None\n",
        (0, 0),
    ),
    "cell-timeout": ("import time\ndef add(a, b):\n    time.sleep(3600)\n", (0, 0)),
    "output-over-the-cap": (
        "def add(a, b):\n    print('x' * 3_000_000)  # over the 2 MiB a cell may keep\n    return a + b\n",
        (0, 0),
    ),
}


def _grade(root, *flags):
    for student, (solution, _) in CASES.items():
        submit(root, student, solution)
    report = root / "report.json"
    batch.main(
        [
            "toy",
            "--course",
            str(root),
            "--workers",
            "2",
            "--cell-timeout",
            "8",
            "--no-canary",
            "--report",
            str(report),
            *flags,
        ]
    )
    return {student: tuple(points(root, student).get(test, 0.0) for test in TESTS) for student in CASES}, report_of(
        report
    )


@pytest.fixture(scope="module")
def both_modes(tmp_path_factory):
    sandboxed = _grade(make_toy_course(tmp_path_factory.mktemp("sandboxed") / "course"))
    plain = _grade(make_toy_course(tmp_path_factory.mktemp("plain") / "course"), "--no-sandbox")
    return sandboxed, plain


@pytest.mark.parametrize("student", CASES)
def test_both_modes_give_the_same_points(both_modes, student):
    (sandboxed, _), (plain, _) = both_modes
    expected = tuple(map(float, CASES[student][1]))
    assert sandboxed[student] == expected
    assert plain[student] == expected


def test_both_modes_record_the_same_reasons(both_modes):
    (_, sandboxed), (_, plain) = both_modes
    for student in CASES:
        assert sandboxed[student]["status"] == plain[student]["status"] == "graded"
    assert "timeout" in " ".join(sandboxed["cell-timeout"]["errors"])
    assert "timeout" in " ".join(plain["cell-timeout"]["errors"])
    assert "truncated" in " ".join(sandboxed["output-over-the-cap"]["errors"])
    assert "truncated" in " ".join(plain["output-over-the-cap"]["errors"])
