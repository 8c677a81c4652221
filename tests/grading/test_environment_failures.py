"""A failure of ours is never a student's zero: no data, a raising cell of ours, a broken
grader. Each ends in a refusal (exit 2) or a loud per-student "could not grade" (exit 1)
with nothing recorded, never in "graded" below full marks with exit 0.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
from toy_course import ASSIGNMENT, CORRECT, NOTEBOOK, make_toy_course, points, report_of, source_notebook, submit

from graders import gradebook
from graders.authoring.release import copy_course, generate_release
from graders.course import COURSE_ROOT, course_db_url
from graders.grading import batch, data, grader

pytestmark = [
    pytest.mark.batch,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]


@pytest.fixture(autouse=True)
def own_canary_cache(tmp_path, monkeypatch):
    """A canary pass cached by another test must not hide these tests' broken graders."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


# -- no data ----------------------------------------------------------------------------------


@pytest.fixture
def hw5_course_without_data(tmp_path, monkeypatch):
    """The real course (config and source), one correct submission, and no MNIST anywhere:
    no variable, an empty HOME, no recorded data file, and no network."""
    root = copy_course(tmp_path / "course")
    folder = root / "submitted" / "alice" / "hw5"
    folder.mkdir(parents=True)
    for name in ("hw5_part_a_written.ipynb", "hw5_part_b_cnn.ipynb"):
        shutil.copy2(COURSE_ROOT / "source" / "hw5" / name, folder / name)
    monkeypatch.delenv("HW5_MNIST_PATH", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "empty-home"))

    def no_network(*args, **kwargs):
        raise OSError("URLError: no network in this test")

    monkeypatch.setattr(data, "download_mnist", no_network)
    return root


def test_no_data_anywhere_is_a_refusal_that_says_where_it_looked(hw5_course_without_data, capsys):
    root = hw5_course_without_data
    assert batch.main(["hw5", "--course", str(root), "--no-canary"]) == 2
    message = capsys.readouterr().err
    assert "refusing to grade" in message and "HW5_MNIST_PATH" in message
    assert ".keras/datasets/mnist.npz" in message and ".hw5-data" in message
    assert not (root / "autograded" / "alice").exists()


def test_a_data_path_that_names_nothing_is_a_refusal_naming_it(hw5_course_without_data, monkeypatch, capsys):
    monkeypatch.setenv("HW5_MNIST_PATH", "/nowhere/mnist.npz")
    assert batch.main(["hw5", "--course", str(hw5_course_without_data), "--no-canary"]) == 2
    assert "/nowhere/mnist.npz" in capsys.readouterr().err


# -- a raising cell of ours -------------------------------------------------------------------


def _break_setup_for(monkeypatch, tmp_path, students):
    """The support file the setup cell imports raises, for these students only: a fault
    of the grading environment that no student code caused."""
    broken = tmp_path / "broken-helper.py"
    broken.write_text("raise OSError('the shared data disk is not mounted')\n")
    prepare = grader.Grader.prepare

    def prepare_broken(self, student, report):
        job = prepare(self, student, report)
        if student in students:
            job.support_files = {**job.support_files, "helper.py": str(broken)}
        return job

    monkeypatch.setattr(grader.Grader, "prepare", prepare_broken)


def test_a_raising_setup_cell_is_the_environments_failure_with_no_grade_recorded(tmp_path, monkeypatch):
    root = make_toy_course(tmp_path / "course")
    for student in ("unlucky", "lucky"):
        submit(root, student, CORRECT)
    _break_setup_for(monkeypatch, tmp_path, {"unlucky"})
    report_path = tmp_path / "report.json"
    code = batch.main(
        [ASSIGNMENT, "--course", str(root), "--workers", "1", "--no-canary", "--report", str(report_path)]
    )
    reports = report_of(report_path)
    assert code == 1
    assert reports["unlucky"]["status"] == grader.ENVIRONMENT_FAILURE
    assert any(
        "cell setup raised OSError: the shared data disk is not mounted" in error
        for error in reports["unlucky"]["errors"]
    )
    assert not gradebook.has_submission(course_db_url(root), ASSIGNMENT, "unlucky")  # nothing recorded
    assert reports["lucky"]["status"] == "graded" and points(root, "lucky") == {"test_add": 1.0, "test_add_more": 1.0}


def test_when_every_submission_fails_in_our_cells_the_batch_stops(tmp_path, monkeypatch, capsys):
    root = make_toy_course(tmp_path / "course")
    students = [f"student{i}" for i in range(5)]
    for student in students:
        submit(root, student, CORRECT)
    _break_setup_for(monkeypatch, tmp_path, set(students))
    report_path = tmp_path / "report.json"
    code = batch.main(
        [ASSIGNMENT, "--course", str(root), "--workers", "1", "--no-canary", "--report", str(report_path)]
    )
    statuses = [entry["status"] for entry in report_of(report_path).values()]
    assert code == 2
    assert "the grading environment is broken for every submission" in capsys.readouterr().err
    assert set(statuses) <= {grader.ENVIRONMENT_FAILURE, "not graded"} and "not graded" in statuses
    assert not any(gradebook.has_submission(course_db_url(root), ASSIGNMENT, s) for s in students)


# -- the canary -------------------------------------------------------------------------------


def _course_whose_tests_import_the_checks(root: Path) -> Path:
    """The toy course, with test cells that import graders.checks as HW5's hidden tests do."""
    notebook = source_notebook()
    for cell in notebook.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            cell.source = "from graders.checks import GradingFailure\n" + cell.source
    root.mkdir(parents=True)
    shutil.copy2(COURSE_ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    (root / "source" / ASSIGNMENT).mkdir(parents=True)
    nbformat.write(notebook, root / "source" / ASSIGNMENT / NOTEBOOK)
    (root / "source" / ASSIGNMENT / "helper.py").write_text("SUPPORT_FILE_OK = True\n")
    generate_release(root, assignment=ASSIGNMENT)
    return root


def _graders_copy(tmp_path: Path, edit) -> Path:
    copy = tmp_path / "graders-copy"
    shutil.copytree(COURSE_ROOT / "graders", copy, ignore=shutil.ignore_patterns("__pycache__"))
    edit(copy)
    return copy


def _grade_with_graders_from(monkeypatch, copy: Path) -> None:
    """Build the kernels' kit and the verifier's kit from a (broken) copy of graders/."""
    build_checks_kit, build_verifier_kit = grader.build_checks_kit, grader.build_verifier_kit
    monkeypatch.setattr(grader, "build_checks_kit", lambda target, _: build_checks_kit(target, copy))
    monkeypatch.setattr(grader, "build_verifier_kit", lambda target, _: build_verifier_kit(target, copy))


def test_the_canary_refuses_when_the_checks_do_not_import(tmp_path, monkeypatch, capsys):
    root = _course_whose_tests_import_the_checks(tmp_path / "course")
    submit(root, "alice", CORRECT)
    copy = _graders_copy(
        tmp_path,
        lambda g: (g / "checks" / "__init__.py").write_text("raise ImportError('graders.checks broken on purpose')\n"),
    )
    _grade_with_graders_from(monkeypatch, copy)
    assert batch.main([ASSIGNMENT, "--course", str(root), "--workers", "1"]) == 2
    message = capsys.readouterr().err
    assert "refusing to grade: the reference solution does not get every point" in message
    assert "test_add" in message and "graders/checks" in message  # the failing cell, and the cause
    assert not (root / "autograded" / "alice").exists()  # nobody was graded


@pytest.mark.slow  # a whole grading of the reference; the canary's refusal path itself is
# covered on every run by test_the_canary_refuses_when_the_checks_do_not_import (a toy course)
@pytest.mark.e2e
@pytest.mark.needs_mnist
def test_the_canary_refuses_when_the_thresholds_fail_the_reference(tmp_path, monkeypatch, capsys):
    """A thresholds file edited so that the reference's training falls under its floor."""

    def raise_the_floors(copy: Path):
        path = copy / "checks" / "thresholds.json"
        thresholds = json.loads(path.read_text())
        for run in thresholds["budgets"]["fast"].values():
            if isinstance(run, dict) and run.get("min_test_accuracy") is not None:
                run["min_test_accuracy"] = 0.999
        path.write_text(json.dumps(thresholds))

    root = copy_course(tmp_path / "course")
    generate_release(root)
    folder = root / "submitted" / "alice" / "hw5"
    folder.mkdir(parents=True)
    shutil.copy2(root / "release" / "hw5" / "hw5_part_a_written.ipynb", folder)
    _grade_with_graders_from(monkeypatch, _graders_copy(tmp_path, raise_the_floors))
    assert batch.main(["hw5", "--course", str(root), "--workers", "1"]) == 2
    message = capsys.readouterr().err
    assert "test_todo4_training" in message and "thresholds.json" in message
    assert not (root / "autograded" / "alice").exists()


def test_without_bubblewrap_the_refusal_names_the_fix(tmp_path, monkeypatch, capsys):
    """bubblewrap missing (hidden from the tool search): refuse, naming the package,
    `make setup`, and --no-sandbox."""
    import shutil as shutil_module

    from graders.sandbox import bwrap, selftest

    real_which = shutil_module.which
    monkeypatch.setattr(
        bwrap.shutil,
        "which",
        lambda name, *args, **kwargs: None if name == "bwrap" else real_which(name, *args, **kwargs),
    )
    monkeypatch.setattr(selftest, "_CACHE", {})  # no pass remembered from another test
    root = make_toy_course(tmp_path / "course")
    submit(root, "alice", CORRECT)
    assert batch.main([ASSIGNMENT, "--course", str(root)]) == 2
    message = capsys.readouterr().err
    assert "bwrap not found (apt-get install -y bubblewrap)" in message
    assert "make setup" in message and "--no-sandbox" in message


def test_a_shipping_failure_of_ours_is_a_refusal_naming_the_exception_and_its_module(tmp_path, monkeypatch, capsys):
    """Shipping broken on purpose: the workers' blob cache lies under a plain file, so
    unpacking the kit raises in graders/grading/blobs.py (as TarFile.extractall's filter=
    did on Python 3.11.2). The refusal names that, not "cause unknown"."""
    root = make_toy_course(tmp_path / "course")
    submit(root, "alice", CORRECT)
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("HW5_BLOB_CACHE", str(tmp_path / "a-file" / "blobs"))  # the workers inherit it
    assert batch.main([ASSIGNMENT, "--course", str(root), "--workers", "1"]) == 2
    message = capsys.readouterr().err
    assert "refusing to grade" in message
    cause = next(line for line in message.splitlines() if "likely cause" in line)
    assert "graders/grading/blobs.py:" in cause and ("NotADirectoryError" in cause or "FileExistsError" in cause)
    assert "cause unknown" not in message and "nbgrader validate" not in message
    assert not (root / "autograded" / "alice").exists()
