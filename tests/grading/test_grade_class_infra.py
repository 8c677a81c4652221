"""hw5-autograde's infrastructure on the toy course: an external Dask scheduler, a worker
killed mid-batch, Ctrl-C, a PostgreSQL gradebook, and the gradebook's integrity.

Sandboxed unless a test says otherwise; skipped where the sandbox cannot run. The
PostgreSQL test starts a throw-away server of its own (Debian's ``postgresql`` package and
``psycopg2-binary``) and is skipped, with the reason, when either is missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from host_state import sandbox_processes
from toy_course import CORRECT, TESTS, grade_toy, points, submit, toy_course_with

from graders.grading import batch

needs_sandbox = pytest.mark.skipif(
    shutil.which("bwrap") is None or os.geteuid() != 0,
    reason="the sandbox needs root and bubblewrap (apt-get install -y bubblewrap)",
)

WRONG = "def add(a, b):\n    return a - b\n"
pytestmark = pytest.mark.batch

SLOW = "import time\ntime.sleep(20)\n" + CORRECT  # about 20 s in the sandbox
#: student -> (solution, expected points per test cell)
CLASS = {
    "alice": (CORRECT, (1, 1)),
    "bob": (WRONG, (0, 0)),
    "carol": (
        "def add(a, b):\n    if (a, b) == (2, 2):\n        import os\n        os._exit(1)\n    return a + b\n",
        (1, 0),
    ),
}


def _points(root, student):
    return tuple(points(root, student).get(test, 0.0) for test in TESTS)


def _grade(root: Path, *extra: str) -> tuple[int, dict]:
    """No canary: these tests patch Grader.record to kill workers or interrupt the batch,
    and the canary's own grading would trip them first."""
    return grade_toy(root, *extra)


@pytest.fixture
def cluster():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, memory_limit=0, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        yield cluster, client


def _executed_keys(client) -> list[str]:
    def keys(dask_scheduler):
        return [str(key) for key in dask_scheduler.task_prefixes]

    return client.run_on_scheduler(keys)


# -- Dask ---------------------------------------------------------------------------------
@needs_sandbox
def test_an_external_scheduler_grades_like_local_workers(tmp_path, cluster):
    dask_cluster, client = cluster
    remote = toy_course_with(tmp_path / "remote", CLASS)
    local = toy_course_with(tmp_path / "local", CLASS)
    code, reports = _grade(remote, "--scheduler", dask_cluster.scheduler_address)
    assert code == 0, reports
    assert any(key.startswith("hw5-execute") for key in _executed_keys(client))  # it ran there
    _grade(local, "--workers", "2")
    for student, (_, expected) in CLASS.items():
        assert _points(remote, student) == _points(local, student) == tuple(map(float, expected)), student
    assert "kernel_died" in " ".join(reports["carol"]["errors"])


@needs_sandbox
def test_a_worker_killed_mid_batch_loses_no_grade(tmp_path, cluster, monkeypatch):
    """The worker running a slow submission is SIGKILLed once another grade is saved: the
    saved grade stays, Dask re-runs the lost job on a live worker, the batch completes."""
    dask_cluster, client = cluster
    students = {"a-slow": (SLOW, (1, 1)), **CLASS}
    root = toy_course_with(tmp_path / "course", students)
    killed = {}
    record = batch.Grader.record

    def record_then_kill(self, result, report, failure=None):
        record(self, result, report, failure)
        if killed:
            return
        killed["after"] = report.student
        killed["points"] = _points(self.root, report.student)
        pids = client.run(os.getpid)
        for address, keys in client.processing().items():
            if any("a-slow" in str(key) for key in keys):
                killed["pid"] = pids[address]
                os.kill(pids[address], signal.SIGKILL)

    monkeypatch.setattr(batch.Grader, "record", record_then_kill)
    code, reports = _grade(root, "--scheduler", dask_cluster.scheduler_address, "--cell-timeout", "60")
    assert killed.get("pid"), f"a-slow was not running when {killed.get('after')} was saved"
    assert killed["after"] != "a-slow"
    assert _points(root, killed["after"]) == killed["points"]  # the saved grade is kept
    for student, (_, expected) in students.items():
        assert _points(root, student) == tuple(map(float, expected)), (student, reports[student])
    assert reports["a-slow"]["status"] == "graded" and reports["a-slow"]["errors"] == []
    assert code == 0
    _no_leftovers_of(killed["pid"])


def _no_leftovers_of(pid: int) -> None:
    """What a SIGKILLed worker's sandbox left (mounts, cgroups; its processes died with it)
    is removed by the next run's start-up cleanup (selftest.require_sandbox)."""
    from graders.sandbox.cgroups import leftover_cgroups
    from graders.sandbox.stale import cleanup_stale, leftover_mounts

    deadline = time.monotonic() + 10
    while _sandbox_processes_of(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _sandbox_processes_of(pid) == []
    cleanup_stale()
    assert leftover_mounts(owner_pid=pid) == [] and leftover_cgroups(owner_pid=pid) == []


def _sandbox_processes_of(owner: int) -> list[int]:
    """uid-65534 processes (zombies included) of the sandbox runs of orchestrator ``owner``."""
    return [pid for pid, run_owner, _, _ in sandbox_processes() if run_owner == owner]


@needs_sandbox
def test_ctrl_c_keeps_the_finished_grades(tmp_path, monkeypatch, capsys):
    root = toy_course_with(tmp_path / "course", CLASS)
    record = batch.Grader.record
    saved = []

    def record_then_interrupt(self, result, report, failure=None):
        if saved:
            raise KeyboardInterrupt
        record(self, result, report, failure)
        saved.append(report.student)

    monkeypatch.setattr(batch.Grader, "record", record_then_interrupt)
    code, reports = _grade(root, "--workers", "2")
    assert code == 1 and "interrupted: finished grades are saved" in capsys.readouterr().err
    first = saved[0]
    assert reports[first]["status"] == "graded"
    assert _points(root, first) == tuple(map(float, CLASS[first][1]))
    assert sorted(s for s, entry in reports.items() if entry["status"] != "graded") == sorted(set(CLASS) - {first})
    # run again: the saved grade is skipped, the rest are graded
    monkeypatch.setattr(batch.Grader, "record", record)
    code, reports = _grade(root, "--workers", "2")
    assert code == 0 and set(reports) == set(CLASS) - {first}
    assert "1 skipped" in capsys.readouterr().out
    for student, (_, expected) in CLASS.items():
        assert _points(root, student) == tuple(map(float, expected)), student


# -- PostgreSQL -----------------------------------------------------------------------------
def _pg_bin() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").is_file() and (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres():
    """A throw-away PostgreSQL server (unix socket only) with an empty database ``hw5``."""
    try:
        import psycopg2
    except ImportError:
        pytest.skip("psycopg2 is not installed: pip install psycopg2-binary")
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("the PostgreSQL server is not installed: apt-get install -y postgresql")
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("starting a PostgreSQL server here needs root and runuser (to run as postgres)")
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no 'postgres' user (apt-get install -y postgresql creates it)")
    base = Path(tempfile.mkdtemp(prefix="hw5-pg-"))
    shutil.chown(base, "postgres", "postgres")
    data, port = base / "data", _free_port()
    as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        as_postgres
        + [str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {base} -c listen_addresses='' -c fsync=off"
    subprocess.run(
        as_postgres
        + [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "-t", "60", "start"],
        check=True,
        capture_output=True,
    )
    try:
        connection = psycopg2.connect(host=str(base), port=port, user="postgres", dbname="postgres")
        connection.autocommit = True
        connection.cursor().execute("CREATE DATABASE hw5")
        connection.close()
        # the driver is named: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3
        yield f"postgresql+psycopg2://postgres@/hw5?host={base}&port={port}", dict(host=str(base), port=port)
    finally:
        subprocess.run(
            as_postgres + [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(base, ignore_errors=True)


@needs_sandbox
def test_a_postgresql_gradebook(tmp_path, postgres, monkeypatch):
    import psycopg2

    url, address = postgres
    monkeypatch.setenv("HW5_DB_URL", url)  # read by nbgrader_config.py: release and grading
    root = toy_course_with(tmp_path / "course", CLASS)
    code, reports = _grade(root, "--workers", "2")
    assert code == 0, reports
    assert not (root / "gradebook.db").exists()  # nothing went to SQLite
    for student, (_, expected) in CLASS.items():
        assert _points(root, student) == tuple(map(float, expected)), student
    with psycopg2.connect(dbname="hw5", user="postgres", **address) as connection:
        cursor = connection.cursor()
        cursor.execute(
            "SELECT student.id, base_cell.name, grade.auto_score FROM grade"
            " JOIN submitted_notebook ON grade.notebook_id = submitted_notebook.id"
            " JOIN submitted_assignment ON submitted_notebook.assignment_id = submitted_assignment.id"
            " JOIN student ON submitted_assignment.student_id = student.id"
            " JOIN base_cell ON grade.cell_id = base_cell.id"
        )
        rows = {(student, cell): score for student, cell, score in cursor.fetchall()}
    assert rows == {
        (student, test): float(expected[i]) for student, (_, expected) in CLASS.items() for i, test in enumerate(TESTS)
    }


# -- gradebook integrity ------------------------------------------------------------------
def _forger(gradebook: Path) -> str:
    """A wrong add that also tries to give every autograded cell 1000 manual points."""
    return (
        "import sqlite3\n"
        "try:\n"
        f"    db = sqlite3.connect('file:{gradebook}?mode=rw', uri=True, timeout=30)\n"
        "    db.execute('UPDATE grade SET manual_score = 1000')\n"
        "    db.commit()\n"
        "    print('FORGED')\n"
        "except Exception as error:\n"
        "    print('gradebook unreachable:', type(error).__name__, error)\n" + WRONG
    )


def _outputs(root: Path, student: str) -> str:
    """The stdout the student's code printed, as in the autograded notebook."""
    import nbformat

    notebook = nbformat.read(root / "autograded" / student / "toy" / "toy.ipynb", as_version=4)
    return "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))


def _manual_scores(root: Path) -> dict:
    from nbgrader.api import Gradebook

    from graders.course import course_db_url

    with Gradebook(course_db_url(root)) as gradebook:
        return {
            (sub.student.id, g.name): g.manual_score
            for sub in gradebook.find_assignment("toy").submissions
            for nb in sub.notebooks
            for g in nb.grades
        }


def test_unsandboxed_forged_manual_scores_are_reset_and_flagged(tmp_path, capsys):
    """--no-sandbox: the kernel can write the gradebook. Graded twice (a regrade is when the
    forger's own rows exist while it runs): every forged manual score is reset and flagged."""
    root = toy_course_with(tmp_path / "course", {"alice": (CORRECT, None)})
    submit(root, "mallory", _forger(root / "gradebook.db"))
    code, reports = _grade(root, "--no-sandbox", "--workers", "1")
    assert code == 0
    code, reports = _grade(root, "--no-sandbox", "--workers", "1", "--force", "--student", "mallory")
    assert code == 0
    assert "FORGED" in _outputs(root, "mallory")
    assert set(_manual_scores(root).values()) == {None}
    assert any("manual score 1000" in flag for flag in reports["mallory"]["flags"])
    assert "alice (not in this batch)" in capsys.readouterr().err  # her rows were forged too, and reset
    assert _points(root, "mallory") == (0.0, 0.0) and _points(root, "alice") == (1.0, 1.0)


@needs_sandbox
def test_sandboxed_submission_cannot_open_the_gradebook(tmp_path):
    root = toy_course_with(tmp_path / "course", {"alice": (CORRECT, None)})
    submit(root, "mallory", _forger(root / "gradebook.db"))
    _grade(root, "--workers", "2")
    code, reports = _grade(root, "--workers", "1", "--force", "--student", "mallory")
    assert code == 0 and reports["mallory"]["flags"] == []
    executed = _outputs(root, "mallory")
    assert "gradebook unreachable: OperationalError" in executed and "FORGED" not in executed
    assert set(_manual_scores(root).values()) == {None}
    assert _points(root, "mallory") == (0.0, 0.0)
