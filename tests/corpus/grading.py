"""Grade a set of mock submissions end to end in a throw-away course."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from graders.authoring.mock_submissions import autograded_max_points
from graders.authoring.release import make_scratch_course
from graders.course import course_db_url
from graders.gradebook import student_grades
from graders.grading import batch
from graders.reporting.score_table import autograded_points

#: The marks of a corpus graded end to end in the sandbox on the real homework.
SANDBOXED_CORPUS = [
    pytest.mark.slow,
    pytest.mark.needs_mnist,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]


def grade_mocks(base: Path, mocks, workers: int | None = None) -> tuple[Path, dict[str, dict]]:
    """A scratch course in ``base`` with ``mocks`` submitted and graded by hw5-autograde
    (sandboxed). Returns the course root and the per-student reports."""
    root = make_scratch_course(base)
    for mock in mocks:
        mock.write(root / "submitted", root=root)
    report = root / "report.json"
    options = ["--workers", str(workers)] if workers else []
    batch.main(["hw5", "--course", str(root), "--report", str(report), *options])
    return root, {entry["student"]: entry for entry in json.loads(report.read_text())}


def points_of(root: Path, mock) -> tuple[dict[str, float], dict[str, float]]:
    """(got, expected): the points per test cell that ``mock`` got in the graded course at
    ``root``, and those its corpus states."""
    got = autograded_points(student_grades(course_db_url(root), mock.name))
    return got, mock.expected_points(autograded_max_points(root))


_SHARED: dict[str, tuple[Path, dict[str, dict]]] = {}


def shared_class(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    """One graded HW5 class for the whole test session (grading costs minutes, so the
    end-to-end and the feedback tests share it): the sample class, a correct solution in
    another style, the reference again (determinism) and three failing mutants."""
    if "class" not in _SHARED:
        from dataclasses import replace

        from corpus.correct_styles import KERAS2_STYLE
        from corpus.mutants import MUTANTS
        from graders.authoring.sample_class import REFERENCE, SAMPLE_CLASS

        by_name = {mock.name: mock for mock in MUTANTS}
        students = (
            *SAMPLE_CLASS,
            KERAS2_STYLE,
            replace(REFERENCE, name="reference-again", intent="The reference, graded a second time."),
            *(by_name[name] for name in SHARED_MUTANTS),
        )
        _SHARED["class"] = grade_mocks(tmp_path_factory.mktemp("shared-class") / "course", students, workers=2)
    return _SHARED["class"]


#: Failing mutants in the shared class (their feedback is checked for leaks).
SHARED_MUTANTS = ("dense100-softmax-output", "batch-size-1024", "part-a-wrong-choice-and-flipped-kernel")
