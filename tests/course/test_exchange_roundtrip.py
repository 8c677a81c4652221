"""The nbgrader round trip through the course's exchange, as README's instructor workflow writes it.

In a scratch copy of the course, with the exchange and two students' homes in tmp folders:

    instructor   nbgrader generate_assignment hw5 --force; nbgrader release_assignment hw5
    alice, bob   nbgrader fetch_assignment hw5                 (each from their own folder)
    alice        fills every solution cell with the source notebook's solution
    bob          changes nothing (a wrong submission)
    alice, bob   nbgrader submit hw5 --student NAME
    instructor   nbgrader collect hw5; hw5-autograde hw5; hw5-feedback hw5;
                 nbgrader release_feedback hw5
    alice, bob   nbgrader fetch_feedback hw5

and alice has every autograded point, bob none, and each fetched their own feedback page for
each notebook. One full TensorFlow autograde (alice's Part B); bob's untouched release is fast.

Every command runs as a subprocess, the way an instructor or a student types it. The
course's ``hw5-*`` commands are run from the entry points that this checkout's
pyproject.toml declares (:func:`course_command`), so the test follows the modules if they move.
Students are told the exchange and the course id on the command line, as a JupyterHub
deployment would tell them in a system-wide nbgrader_config.py; ``--student`` names them
(nbgrader 0.9: ``CourseDirectory.student_id``; the default is the OS user).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import time

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path

import nbformat
import pytest
from traitlets.config.loader import PyFileConfigLoader

ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENT = "hw5"
NOTEBOOKS = ("hw5_part_a_written", "hw5_part_b_cnn")

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (the sandbox)")

_SOLUTION_MARKERS = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.M)


# -- running the commands ---------------------------------------------------------------------------


def course_command(name: str) -> list[str]:
    """The argv of one of the course's console scripts (``hw5-autograde`` ...), from this
    checkout's pyproject.toml, run with this interpreter (the installed script may belong
    to another checkout)."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts[name].split(":")
    return [sys.executable, "-c", f"# {name}\nimport sys; from {module} import {function}; sys.exit({function}())"]


def nbgrader_command() -> list[str]:
    return [str(Path(sys.executable).with_name("nbgrader"))]


def base_environment(**extra: str) -> dict:
    """This venv first on PATH, this checkout importable, and no course state from the caller."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("HW5_DB_URL", "HW5_EXCHANGE", "NBGRADER_EXECUTION", "HW5_GRADING_BUDGET")
    }
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.update(extra)
    return env


def run(argv: list[str], cwd: Path, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a command; fail the test, with its output, when it exits non-zero."""
    started = time.monotonic()
    result = subprocess.run(argv, cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout)
    shown = " ".join([argv[2].splitlines()[0][2:], *argv[3:]] if argv[1:2] == ["-c"] else argv[1:])
    print(f"[{time.monotonic() - started:5.1f} s] exit {result.returncode}: {shown}  (in {cwd.name})")
    if result.returncode != 0:
        pytest.fail(
            f"{shown} (in {cwd}) exited {result.returncode}:\n"
            f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-4000:]}"
        )
    return result


def course_config(root: Path):
    return PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()


# -- the course -----------------------------------------------------------------------------------


def scratch_course(target: Path, env: dict) -> Path:
    """A throw-away course: the configuration and source/ of this checkout, released with
    ``nbgrader generate_assignment`` (README, instructor's step 2), which also records the
    assignment in the scratch gradebook."""
    target.mkdir(parents=True)
    shutil.copy2(ROOT / "nbgrader_config.py", target / "nbgrader_config.py")
    shutil.copytree(
        ROOT / "source",
        target / "source",
        ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "*.pyc", "mnist.npz"),
    )
    run([*nbgrader_command(), "generate_assignment", ASSIGNMENT, "--force"], target, env)
    return target


def fill_in_solutions(folder: Path, source: Path) -> int:
    """What a student who knows every answer does: each solution cell of the fetched
    notebooks gets the source notebook's solution (without the BEGIN/END SOLUTION lines).
    Returns the number of cells filled."""
    filled = 0
    for name in NOTEBOOKS:
        solutions = {
            cell.metadata["nbgrader"]["grade_id"]: _SOLUTION_MARKERS.sub("", cell.source)
            for cell in nbformat.read(source / f"{name}.ipynb", as_version=4).cells
            if cell.metadata.get("nbgrader", {}).get("solution")
        }
        notebook = nbformat.read(folder / f"{name}.ipynb", as_version=4)
        for cell in notebook.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if cell.metadata.get("nbgrader", {}).get("solution") and grade_id in solutions:
                cell.source = solutions[grade_id]
                filled += 1
        nbformat.write(notebook, folder / f"{name}.ipynb")
    return filled


def autograded_points(db_url: str, student: str) -> tuple[float, float]:
    """(score, max) over the autograded cells (code cells) of a student's hw5, from the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gradebook:
        submission = gradebook.find_submission(ASSIGNMENT, student)
        grades = [grade for notebook in submission.notebooks for grade in notebook.grades if grade.cell_type == "code"]
        return sum(grade.score for grade in grades), sum(grade.max_score for grade in grades)


def check_outcome(points: dict[str, tuple[float, float]], fetched: dict[str, list[str]]) -> None:
    """What the round trip must end with (separate, so that its failures can be shown)."""
    alice, alice_max = points["alice"]
    bob, _ = points["bob"]
    assert alice_max == 13, f"HW5 has 13 autograded points, the gradebook says {alice_max}"
    assert alice == alice_max, f"alice (the reference solution) got {alice}/{alice_max} autograded points"
    assert bob == 0, f"bob (the untouched release) got {bob} autograded points"
    for student, files in fetched.items():
        assert sorted(files) == sorted(f"{name}.html" for name in NOTEBOOKS), (
            f"{student} fetched {files}, not one feedback page per notebook"
        )


# -- the exchange's configuration (fast) ------------------------------------------------------------


def test_exchange_is_course_local_and_created_world_writable_with_the_sticky_bit(tmp_path, monkeypatch):
    course = tmp_path / "course"
    course.mkdir()
    shutil.copy2(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    monkeypatch.delenv("HW5_EXCHANGE", raising=False)
    assert course_config(course).Exchange.root == str(course / "exchange")
    mode = (course / "exchange").stat().st_mode
    assert stat.S_IMODE(mode) == 0o1777, oct(mode)

    elsewhere = tmp_path / "srv" / "nbgrader" / "exchange"
    monkeypatch.setenv("HW5_EXCHANGE", str(elsewhere))
    assert course_config(course).Exchange.root == str(elsewhere)
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o1777


def test_exchange_folder_is_ignored_by_git():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    result = subprocess.run(["git", "check-ignore", "-q", "exchange/hw5-cnn/inbound/x"], cwd=ROOT)
    assert result.returncode == 0, "git does not ignore exchange/"


def test_the_outcome_check_can_fail():
    full = {"alice": (13.0, 13.0), "bob": (0.0, 13.0)}
    pages = {
        "alice": ["hw5_part_a_written.html", "hw5_part_b_cnn.html"],
        "bob": ["hw5_part_a_written.html", "hw5_part_b_cnn.html"],
    }
    check_outcome(full, pages)
    for points, fetched in (
        ({**full, "bob": (1.0, 13.0)}, pages),
        ({**full, "alice": (12.5, 13.0)}, pages),
        (full, {**pages, "bob": ["hw5_part_a_written.html"]}),
    ):
        with pytest.raises(AssertionError):
            check_outcome(points, fetched)


# -- the round trip (one full TensorFlow autograde) -------------------------------------------------


@pytest.mark.e2e
@pytest.mark.needs_mnist
@needs_bwrap
def test_release_fetch_submit_collect_grade_and_return_feedback_through_the_exchange(tmp_path):
    started = time.monotonic()
    exchange = tmp_path / "exchange"  # does not exist yet: the course configuration creates it
    instructor = base_environment(
        HW5_EXCHANGE=str(exchange), JUPYTER_DATA_DIR=str(tmp_path / "instructor-jupyter-data")
    )
    root = scratch_course(tmp_path / "course", instructor)
    config = course_config(root)
    course_id = config.CourseDirectory.course_id
    db_url = config.CourseDirectory.db_url
    assert db_url.startswith("sqlite:///" + str(root)), db_url  # the scratch gradebook, never the real one

    # 1. Release into the exchange.
    run([*nbgrader_command(), "release_assignment", ASSIGNMENT], root, instructor)
    assert stat.S_IMODE(exchange.stat().st_mode) == 0o1777
    assert (exchange / course_id / "outbound" / ASSIGNMENT / "hw5_part_b_cnn.ipynb").is_file()

    # 2. Each student fetches, works (or not) and submits, from their own folder.
    students = {}
    for student in ("alice", "bob"):
        home = tmp_path / "home" / student
        home.mkdir(parents=True)
        env = base_environment(
            HOME=str(home),
            JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
            JUPYTER_DATA_DIR=str(home / ".local" / "share" / "jupyter"),
        )
        options = [f"--Exchange.root={exchange}", f"--CourseDirectory.course_id={course_id}"]
        students[student] = (home, env, options)
        run([*nbgrader_command(), "fetch_assignment", ASSIGNMENT, *options], home, env)
        assert sorted(p.name for p in (home / ASSIGNMENT).glob("*.ipynb")) == [f"{n}.ipynb" for n in NOTEBOOKS]
    assert fill_in_solutions(tmp_path / "home" / "alice" / ASSIGNMENT, root / "source" / ASSIGNMENT) >= 10
    for student, (home, env, options) in students.items():
        run([*nbgrader_command(), "submit", ASSIGNMENT, "--student", student, *options], home, env)

    # 3. The instructor collects, grades and returns feedback (README, instructor's workflow).
    run([*nbgrader_command(), "collect", ASSIGNMENT], root, instructor)
    for student in students:
        assert (root / "submitted" / student / ASSIGNMENT / "hw5_part_b_cnn.ipynb").is_file(), student
    report = root / "report.json"
    run([*course_command("hw5-autograde"), ASSIGNMENT, "--report", str(report)], root, instructor, timeout=1200)
    run([*course_command("hw5-feedback"), ASSIGNMENT], root, instructor)
    for student in students:
        assert sorted(p.name for p in (root / "feedback" / student / ASSIGNMENT).glob("*.html")) == [
            f"{n}.html" for n in NOTEBOOKS
        ], student
    run([*nbgrader_command(), "release_feedback", ASSIGNMENT], root, instructor)

    # 4. Each student fetches their feedback.
    fetched = {}
    for student, (home, env, options) in students.items():
        run([*nbgrader_command(), "fetch_feedback", ASSIGNMENT, "--student", student, *options], home, env)
        pages = sorted((home / ASSIGNMENT / "feedback").glob("*/*.html"))
        fetched[student] = [page.name for page in pages]
        for page in pages:  # their own page, the one hw5-feedback wrote for them
            written = root / "feedback" / student / ASSIGNMENT / page.name
            assert page.read_bytes() == written.read_bytes(), f"{student} fetched someone else's {page.name}"

    points = {student: autograded_points(db_url, student) for student in students}
    print(f"autograded points: {points}; round trip {time.monotonic() - started:.0f} s")
    check_outcome(points, fetched)
