"""The rootless sandbox, run by an unprivileged uid: self-test, hostile notebooks, and
the sample class graded by ``hw5-autograde`` with the right grades.

As root the tests run their commands as a throw-away uid (tests/rootless_user.py);
as another user, as that user. Skipped, with the reason, where bubblewrap is missing or
the kernel gives unprivileged users no user namespaces.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from rootless_user import Runner

if shutil.which("bwrap") is None:
    pytest.skip("bubblewrap (bwrap) is not installed: apt-get install -y bubblewrap", allow_module_level=True)
if os.geteuid() == 0 and not (shutil.which("setpriv") and shutil.which("unshare")):
    pytest.skip("setpriv and unshare (util-linux) are needed to act as an unprivileged uid", allow_module_level=True)

#: a sleep argument unique to this pytest process
SLEEP_ARG = f"1000.{os.getpid()}7"


@pytest.fixture(scope="module")
def user():
    runner = Runner()
    try:
        probe = runner(
            [
                "python",
                "-c",
                "import shutil\nfrom graders.sandbox.rootless import userns_problem\n"
                "print(userns_problem(shutil.which('bwrap')) or 'ok')",
            ],
            timeout=120,
        )
        if probe.returncode != 0:
            pytest.fail(f"the unprivileged uid cannot run the grader's Python: {probe.stderr[-1500:]}")
        if probe.stdout.strip() != "ok":
            pytest.skip(f"no rootless sandbox here: {probe.stdout.strip()}")
        yield runner
    finally:
        runner.close()


def sleepers() -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                argv = (d / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if [os.path.basename(argv[0]), *argv[1:]] == [b"sleep", SLEEP_ARG.encode(), b""]:
                found.append(int(d.name))
    return found


def test_self_test_passes_rootless(user):
    proc = user(["python", "-m", "graders.sandbox", "selftest"], timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sandbox self-test passed" in proc.stdout
    assert "mode: rootless" in proc.stdout and "RLIMIT_NPROC=" in proc.stdout, proc.stdout


@pytest.mark.batch
def test_hostile_notebooks_rootless(user):
    """Everything the run started is dead when it ends (or is killed), before its files
    are read; the rlimits and the scratch watch stand in for the cgroup."""
    proc = user(["python", "tests/rootless_checks.py", SLEEP_ARG], timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("ROOTLESS-CHECKS ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-3000:]
    got = json.loads(lines[-1][len("ROOTLESS-CHECKS ") :])
    assert sleepers() == []  # the background sleepers died with their pid namespaces
    assert "mode: rootless" in got["selftest"]
    assert (got["ok"]["status"], got["ok"]["texts"]) == ("ok", ["42\n"])
    assert got["background"]["status"] == "ok", got["background"]
    assert got["timeout"]["status"] == "timeout" and got["timeout"]["seconds"] < 8 + 15, got["timeout"]
    assert got["memory"]["texts"][0].startswith("MemoryError"), got["memory"]  # RLIMIT_AS
    refused = got["forks"]["texts"][0].split()
    assert refused[:2] == ["refused", "after"] and int(refused[2]) < 96, got["forks"]  # RLIMIT_NPROC
    assert got["disk"]["status"] != "ok" and "scratch folder went over" in got["disk"]["detail"], got["disk"]
    assert got["stale"], "a dead orchestrator's rootless tree was not cleaned up"


def grade_rootless(user, students, *options: str) -> float:
    """Grade ``students`` with ``hw5-autograde`` run by the unprivileged uid in a scratch
    course it owns; assert each gets exactly its expected points. Returns the seconds."""
    from graders.authoring.mock_submissions import autograded_max_points
    from graders.authoring.release import make_scratch_course
    from graders.course import course_db_url
    from graders.gradebook import student_grades
    from graders.reporting.score_table import autograded_points

    parent = Path(tempfile.mkdtemp(prefix="course-", dir=user.base))
    parent.chmod(0o755)
    course = make_scratch_course(parent / "course")
    for mock in students:
        mock.write(course / "submitted", root=course)
    user.own(course)
    report = course / "report.json"
    started = time.monotonic()
    proc = user(
        [
            "python",
            "-m",
            "graders.grading.batch",
            "hw5",
            "--course",
            str(course),
            "--report",
            str(report),
            "--workers",
            "2",
            *options,
        ],
        timeout=1800,
    )
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "mode: rootless" in proc.stderr, proc.stderr[-3000:]  # the limits in force are said
    outcomes = {entry["student"]: entry for entry in json.loads(report.read_text())}
    maxima = autograded_max_points(course)
    for mock in students:
        assert outcomes[mock.name]["status"] == "graded", outcomes[mock.name]
        got = autograded_points(student_grades(course_db_url(course), mock.name))
        assert got == mock.expected_points(maxima), mock.name
    print(f"graded {len(students)} submissions rootless in {seconds:.0f} s")
    return seconds


@pytest.mark.slow  # CI grades the sample class rootless anyway: make demo in .ci/system-python
@pytest.mark.e2e
@pytest.mark.needs_mnist
def test_grades_a_correct_and_a_wrong_submission_rootless(user):
    """``hw5-autograde`` as the unprivileged uid: the reference gets every autograded
    point, the partly correct submission exactly its expected 9.5 of 13 (TensorFlow
    training, verifier and all: about 2 minutes on 2 cores; the canary is left out, as it
    would grade the reference a second time)."""
    from graders.authoring.mock_submissions import autograded_max_points
    from graders.authoring.sample_class import PARTLY_CORRECT, REFERENCE

    maxima = autograded_max_points()
    assert sum(REFERENCE.expected_points(maxima).values()) == sum(maxima.values())
    assert sum(PARTLY_CORRECT.expected_points(maxima).values()) < sum(maxima.values())
    grade_rootless(user, (REFERENCE, PARTLY_CORRECT), "--no-canary")


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.needs_mnist
def test_grades_the_whole_sample_class_rootless_with_the_canary(user):
    """The demo's whole sample class, canary first, as the unprivileged uid (minutes)."""
    from graders.authoring.sample_class import SAMPLE_CLASS

    grade_rootless(user, SAMPLE_CLASS)
