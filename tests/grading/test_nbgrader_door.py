"""``nbgrader autograde`` (the command behind Formgrader's Autograde button) grades exactly
as ``hw5-autograde`` does: sandboxed, with nothing of ``graders`` but the checks in the
kernel, or not at all (graders/grading/nbgrader_door.py).

A toy course (no TensorFlow) with three submissions, each graded both ways:
- ``correct``: the right ``add``;
- ``wrong``: a wrong ``add``;
- ``tampering``: right only where it can read the course's source notebook (the
  hidden tests) from its kernel, which an unsandboxed kernel can. It looks where the
  course lies; a recursive glob of ``/`` outside a sandbox walks /proc and never ends.
Each solution also records which parts of ``graders`` its kernel can import; ``add`` is
right only when that is exactly the checks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from toy_course import ASSIGNMENT, make_toy_course, points, submit

from graders.course import COURSE_ROOT
from graders.grading.pipeline import AUTOGRADE

pytestmark = [
    pytest.mark.batch,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]

KIT_ONLY = """
import importlib

def _imports(name):
    try:
        importlib.import_module(name)
        return True
    except Exception:
        return False

REACHED = {name: _imports(name) for name in ("graders.checks", "graders.authoring.reference",
                                             "graders.grading", "graders.verify")}
ONLY_THE_CHECKS = REACHED == {"graders.checks": True, "graders.authoring.reference": False,
                              "graders.grading": False, "graders.verify": False}
"""
SOLUTIONS = {
    "correct": KIT_ONLY + "def add(a, b):\n    return a + b if ONLY_THE_CHECKS else a - b\n",
    "wrong": KIT_ONLY + "def add(a, b):\n    return a - b\n",
    "tampering": (
        "import glob\n"
        "SEEN = glob.glob('{root}/source/toy/toy.ipynb')\n"
        "def add(a, b):\n    return a + b if SEEN else a - b\n"
    ),
}
EXPECTED = {"correct": 2.0, "wrong": 0.0, "tampering": 0.0}  # out of 2


def _course(target: Path) -> Path:
    root = make_toy_course(target)
    for student, solution in SOLUTIONS.items():
        submit(root, student, solution.replace("{root}", str(root)))
    return root


def _nbgrader_autograde(root: Path, student: str) -> subprocess.CompletedProcess:
    """``nbgrader autograde toy --student S`` in the course root, as an instructor types it."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("nbgrader")), "autograde", ASSIGNMENT, "--student", student, "--force"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _total(root: Path, student: str) -> float:
    return sum(points(root, student).values())


def test_the_course_config_replaces_only_nbgraders_execute():
    from traitlets.config.loader import PyFileConfigLoader

    configured = PyFileConfigLoader("nbgrader_config.py", path=str(COURSE_ROOT)).load_config()
    names = list(configured.Autograde.autograde_preprocessors)
    assert names[0] == "graders.grading.nbgrader_door.SandboxedExecute"
    assert [name.rsplit(".", 1)[1] for name in names[1:]] == [cls.__name__ for cls in AUTOGRADE[1:]]


def test_nbgrader_autograde_grades_like_hw5_autograde(tmp_path):
    from toy_course import grade_toy

    door = _course(tmp_path / "door")
    for student in SOLUTIONS:
        result = _nbgrader_autograde(door, student)
        assert result.returncode == 0, result.stderr[-3000:]
    got = {student: _total(door, student) for student in SOLUTIONS}

    ours = _course(tmp_path / "ours")
    code, _ = grade_toy(ours)
    assert code in (0, 1)
    want = {student: _total(ours, student) for student in SOLUTIONS}
    assert got == want == EXPECTED


def test_without_a_working_sandbox_nbgrader_autograde_refuses_and_records_nothing(tmp_path):
    root = _course(tmp_path / "course")
    hidden = tmp_path / "no-bwrap"  # nbgrader's process finds no bubblewrap, wherever it looks
    hidden.mkdir()
    (hidden / "sitecustomize.py").write_text(
        "import shutil\n_which = shutil.which\n"
        "shutil.which = lambda name, *a, **k: None if name == 'bwrap' else _which(name, *a, **k)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(hidden), "HOME": str(tmp_path / "home")}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("nbgrader")), "autograde", ASSIGNMENT, "--student", "tampering", "--force"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "hw5: not graded: the sandbox does not work here" in log and "hw5-autograde" in log
    assert not list((root / "autograded").glob("tampering/toy/*.ipynb"))


def test_the_tampering_submission_does_see_the_source_outside_a_sandbox(tmp_path):
    root = _course(tmp_path / "course")
    scope: dict = {}
    exec(SOLUTIONS["tampering"].replace("{root}", str(root)), scope)  # noqa: S102 - our own test code
    assert scope["SEEN"] and scope["add"](1, 2) == 3
