"""hw5-autograde on a tiny course: broken and failing submissions never stop the class.

Each case is a submission named by intent, with the points it must get and the reason
that must be recorded. Sandboxed (the default); skipped where the sandbox cannot run.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import nbformat
import pytest
from host_state import lasting_leftovers, orphaned_sandbox_leftovers, tree_hash
from toy_course import CORRECT, TESTS, make_toy_course, points, released, report_of, submit

from graders.grading import batch

pytestmark = [
    pytest.mark.batch,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]


def _duplicate_test_cell():
    notebook = released_notebook()
    cells = notebook.cells
    copy = nbformat.from_dict(cells[3])  # test_add, copy-pasted below itself
    copy["id"] = "pasted-copy"
    cells.insert(4, copy)
    return notebook


def _empty_metadata():
    notebook = released_notebook()
    notebook.cells.insert(2, nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": {}}))
    return notebook


def _list_grade_id():
    notebook = released_notebook()
    notebook.cells[3].metadata["nbgrader"]["grade_id"] = ["test_add"]  # unhashable
    return notebook


_ROOT = {}
_BEFORE: set[str] = set()


def released_notebook():
    return released(_ROOT["root"])


#: student -> (how to submit, expected points per test cell, phrase in the recorded reason)
CASES = {
    "correct": (dict(solution=CORRECT), (1, 1), None),
    "wrong": (dict(solution="def add(a, b):\n    return a - b\n"), (0, 0), None),
    "correct-with-stderr": (
        dict(solution="import sys\ndef add(a, b):\n    print('adding', file=sys.stderr)\n    return a + b\n"),
        (1, 1),
        None,
    ),
    "invalid-json": (dict(raw=b'{"cells": [ this is not json'), (0, 0), "is not valid JSON"),
    "json-not-a-notebook": (dict(raw=b'{"hello": "world"}'), (0, 0), "not an nbformat 4 notebook"),
    "duplicate-grade-id": (dict(solution=CORRECT, notebook=_duplicate_test_cell), (1, 1), "repeats grade_id"),
    "empty-nbgrader-metadata": (dict(solution=CORRECT, notebook=_empty_metadata), (1, 1), "empty nbgrader metadata"),
    "renamed-notebook": (dict(solution=CORRECT, name="toy (1).ipynb"), (1, 1), "submitted as toy (1).ipynb"),
    "json-nested-too-deeply": (dict(raw=b"[" * 100_000 + b"]" * 100_000), (0, 0), "nested too deeply"),
    "grade-id-not-a-string": (dict(solution=CORRECT, notebook=_list_grade_id), (1, 1), "not a string"),
    "kernel-death": (dict(solution="import os\nos._exit(1)\n"), (0, 0), "kernel_died"),
    "infinite-loop": (dict(solution="def add(a, b):\n    while True:\n        pass\n"), (0, 0), "timeout"),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = make_toy_course(tmp_path_factory.mktemp("toy"))
    _ROOT["root"] = root
    for student, (how, _, _) in CASES.items():
        how = dict(how)
        if callable(how.get("notebook")):
            how["notebook"] = how["notebook"]()
        submit(root, student, **how)
    source_hash = tree_hash(root / "source")
    _BEFORE.update(orphaned_sandbox_leftovers())  # another run's debris is not this batch's
    report = root / "report.json"
    code = batch.main(["toy", "--course", str(root), "--workers", "2", "--report", str(report)] + _short_timeouts())
    return root, code, report_of(report), source_hash


def _short_timeouts():
    return ["--cell-timeout", "10"]


@pytest.mark.parametrize("student", CASES)
def test_each_submission_gets_its_points_and_reason(graded, student):
    root, _, reports, _ = graded
    _, expected, reason = CASES[student]
    assert tuple(points(root, student).get(test, 0.0) for test in TESTS) == tuple(map(float, expected))
    recorded = " ".join(reports[student]["errors"] + reports[student]["flags"])
    if reason:
        assert reason in recorded
    else:
        assert reports[student]["errors"] == []


def test_the_exit_status_and_report_count_the_failures(graded):
    _, code, reports, _ = graded
    failed = sorted(student for student, entry in reports.items() if entry["status"] != "graded")
    # the only notebook could not be read
    assert failed == ["invalid-json", "json-nested-too-deeply", "json-not-a-notebook"]
    assert code == 1


def test_a_submission_that_breaks_the_intake_fails_alone(tmp_path, monkeypatch, capsys):
    """Whatever goes wrong while reading one submission, the others are still graded."""
    root = make_toy_course(tmp_path / "course")
    for student in ("breaks-the-intake", "correct"):
        submit(root, student, CORRECT)
    prepare = batch.Grader.prepare

    def prepare_or_break(self, student, report):
        if student == "breaks-the-intake":
            raise RuntimeError("an intake bug")
        return prepare(self, student, report)

    monkeypatch.setattr(batch.Grader, "prepare", prepare_or_break)
    report = tmp_path / "report.json"
    code = batch.main(["toy", "--course", str(root), "--workers", "1", "--no-canary", "--report", str(report)])
    reports = report_of(report)
    assert code == 1
    assert reports["correct"]["status"] == "graded" and reports["correct"]["score"] == 2.0
    assert reports["breaks-the-intake"]["status"] == "failed"
    assert "could not read the submission: RuntimeError: an intake bug" in reports["breaks-the-intake"]["errors"]


def test_the_leftover_search_finds_a_lasting_ownerless_process():
    """The check above can fail: a uid-65534 process outside any live run is reported."""
    before = set(orphaned_sandbox_leftovers())
    stray = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sleep", "30.5"])
    try:
        time.sleep(0.3)
        found = lasting_leftovers(before, grace_s=1.0)
        assert any(f"process {stray.pid} " in item and "sleep 30.5" in item for item in found), found
    finally:
        stray.kill()
        stray.wait()
    assert lasting_leftovers(before, grace_s=5.0) == []  # a process that exits is not a leak


def test_the_host_is_unchanged(graded):
    root, _, _, source_hash = graded
    assert tree_hash(root / "source") == source_hash
    assert lasting_leftovers(_BEFORE) == [], "a sandboxed run outlived its orchestrator"


def test_students_already_graded_are_skipped_unless_forced(graded, capsys):
    root = graded[0]
    code = batch.main(["toy", "--course", str(root), "--student", "correct"])
    assert code == 0
    assert "1 skipped" in capsys.readouterr().out


def test_grading_is_refused_without_a_working_sandbox(graded, monkeypatch, capsys):
    from graders.sandbox import SandboxUnavailable, selftest

    def broken(*args, **kwargs):
        raise SandboxUnavailable("bwrap: setting up uid map: Permission denied")

    monkeypatch.setattr(selftest, "require_sandbox", broken)
    code = batch.main(["toy", "--course", str(graded[0]), "--student", "correct", "--force"])
    assert code == 2
    assert "refusing to grade" in capsys.readouterr().err


def test_no_sandbox_runs_only_when_asked_and_says_so(graded, capsys):
    root = graded[0]
    code = batch.main(["toy", "--course", str(root), "--student", "correct", "--force", "--no-sandbox", "--no-canary"])
    assert code == 0
    assert "WITHOUT isolation" in capsys.readouterr().err
    assert points(root, "correct") == {"test_add": 1.0, "test_add_more": 1.0}


@pytest.fixture(scope="module")
def empty_toy_course(tmp_path_factory):
    return make_toy_course(tmp_path_factory.mktemp("limits") / "course")


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], {}),  # the fast budget keeps the sandbox's defaults
        (["--budget", "full"], batch.FULL_BUDGET_TIMEOUTS),
        (["--budget", "full", "--cell-timeout", "99"], {**batch.FULL_BUDGET_TIMEOUTS, "cell_timeout_s": 99}),
        (["--notebook-timeout", "77", "--memory-mb", "512"], {"notebook_timeout_s": 77, "memory_mb": 512}),
    ],
)
def test_the_full_budget_gets_longer_time_limits_unless_given(empty_toy_course, monkeypatch, argv, expected):
    """Full-budget trainings run for minutes: the sandbox's fast-budget limits would kill them."""
    seen = {}

    class Recorder:
        def __init__(self, *args, limits, **kwargs):
            seen.update(limits)

        def close(self):
            pass

    root = empty_toy_course
    monkeypatch.setattr(batch, "Grader", Recorder)
    monkeypatch.setattr(batch, "run_batch", lambda *args: {})
    assert batch.main(["toy", "--course", str(root), "--no-sandbox", *argv]) == 0
    assert seen == expected
    assert batch.FULL_BUDGET_TIMEOUTS["notebook_timeout_s"] >= 5 * 600  # five trainings on 60,000 images
