"""nbgrader's own autograde (``nbgrader autograde``, Formgrader's Autograde button) grades
exactly as ``hw5-autograde`` does.

``nbgrader_config.py`` puts :class:`SandboxedExecute` where nbgrader's ``Execute`` was.
On the first notebook of a submission it runs ``hw5-autograde``'s job for that student
(the sandbox self-test and the canary first, once per process; then intake, the
sandboxed kernel with its export cells, and the out-of-kernel verifier), and stages the
executed notebooks. Each notebook is then scored from those outputs by
:class:`~graders.grading.pipeline.PrecomputedExecute`, the same scoring as
``hw5-autograde``'s. Student code never runs in nbgrader's process. When grading cannot be
done safely (no working sandbox, a failing canary, a cell of ours that raised) the
notebook is refused with one line naming ``hw5-autograde``: nbgrader then records
nothing for it.
"""

from __future__ import annotations

import os
from pathlib import Path

from graders.grading.pipeline import PrecomputedExecute

#: (course root, assignment, student) -> notebook ids of the last job not scored yet.
_PENDING: dict[tuple[str, str, str], set[str]] = {}
#: Course roots (with assignment and budget) whose self-test and canary passed in this process.
_READY: dict[tuple[str, str, str], dict] = {}


class GradingRefused(RuntimeError):
    """This submission cannot be graded safely here; nothing is recorded for it."""

    def __init__(self, reason: str):
        super().__init__(f"hw5: not graded: {reason} (run hw5-autograde in the course root for the details)")


class SandboxedExecute(PrecomputedExecute):
    """nbgrader's ``Execute`` replaced: run the student's job sandboxed and verified, once
    per submission, then score the outputs it produced."""

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        root = Path(self.config.CourseDirectory.root or os.getcwd()).resolve()
        key = (str(root), info["assignment"], info["student"])
        if info["notebook"] not in _PENDING.get(key, set()):  # a new submission's first notebook
            saved = dict(os.environ)  # nbgrader restores its own variables on the way out: keep them
            try:
                _PENDING[key] = grade_student(root, info["assignment"], info["student"], self.log)
            finally:
                os.environ.clear()
                os.environ.update(saved)
        _PENDING[key].discard(info["notebook"])
        self.results_directory = str(root / ".grading" / "executed")
        return super().preprocess(nb, resources)


def grade_student(root: Path, assignment: str, student: str, log) -> set[str]:
    """Run ``student``'s job as ``hw5-autograde`` would and stage its executed notebooks;
    returns the ids of the notebooks staged. Raises GradingRefused."""
    from graders.grading.execution import execute_job
    from graders.grading.grader import Grader, StudentReport

    options = ready_options(root, assignment)
    grader = Grader(root, assignment, **options)
    try:
        report = StudentReport(student)
        job = grader.prepare(student, report)
        result = execute_job(job)
        if not grader.stage(result, report):
            raise GradingRefused(
                "a cell of the grader's own raised before any student code ran: " + "; ".join(report.errors)[:300]
            )
    finally:
        grader.close()
    for line in report.errors:
        log.warning("hw5: %s: %s", student, line)
    for line in report.flags:
        log.warning("hw5: %s: review: %s", student, line)
    return {Path(name).stem for name, run in result.runs.items() if run.executed is not None}


def ready_options(root: Path, assignment: str) -> dict:
    """hw5-autograde's settings for this course, after the set-up every door shares
    (batch.ready_to_grade), once per process and course. Raises GradingRefused."""
    from graders.grading import batch

    budget = os.environ.get("HW5_GRADING_BUDGET", "fast")
    key = (str(root), assignment, budget)
    if key not in _READY:
        try:
            _READY[key] = batch.ready_to_grade(
                root,
                assignment,
                sandbox=True,
                budget=budget,
                threads=os.cpu_count() or 1,
                limits=batch.budget_timeouts(budget),
            )
        except batch.NotReady as refusal:
            raise GradingRefused(refusal.reason) from refusal
    return _READY[key]
