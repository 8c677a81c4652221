"""hw5-autograde on a Dask worker that shares no filesystem with the course.

The worker runs inside a mount namespace (``unshare -m``) where ``/tmp`` (the course, the
orchestrator's kits), ``/work`` (this checkout, the orchestrator's venv, the data) and
every other path the orchestrator knows are empty tmpfs. It has its own Python: the
same interpreter and site-packages, bound at another path (``/var/tmp/...``), and its
own copy of this package on ``PYTHONPATH``: what "installed on the worker" means on a
machine of identical images. So a job must carry the kits, ``hw5_data.py`` and the data
by content, and the grades must be exactly those the class gets locally.

On the code before jobs carried content (commit 37ae14c) the toy test fails: every job
named the course's ``helper.py``, which the worker does not have ("SandboxError: cannot
copy helper.py into the scratch: No such file or directory"), and alice scored 0/2.

Sandboxed, as root (the namespace and the sandbox both need it); skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from toy_course import CORRECT, TESTS, grade_toy, points, toy_course_with

from graders.grading import batch

REPO = Path(__file__).resolve().parents[2]

needs_root_sandbox = pytest.mark.skipif(
    shutil.which("bwrap") is None or shutil.which("unshare") is None or os.geteuid() != 0,
    reason="needs root, unshare and bubblewrap (apt-get install -y bubblewrap util-linux)",
)
pytestmark = [pytest.mark.batch, needs_root_sandbox]

WRONG = "def add(a, b):\n    return a - b\n"
CLASS = {
    "alice": (CORRECT, (1, 1)),
    "bob": (WRONG, (0, 0)),
    "carol": (
        "def add(a, b):\n    if (a, b) == (2, 2):\n        import os\n        os._exit(1)\n    return a + b\n",
        (1, 0),
    ),
}


def _orchestrator_paths() -> list[str]:
    """What a job used to name: none of it may exist on the isolated worker."""
    paths = [sys.prefix, str(REPO), "/tmp"]
    if REPO.parent != Path("/"):  # beside the checkout: other checkouts (an editable install's), shared data
        paths.append(str(REPO.parent))
    if os.environ.get("HW5_MNIST_PATH"):
        paths.append(os.path.dirname(os.path.abspath(os.environ["HW5_MNIST_PATH"])))
    return paths


def course_only_modules() -> list[str]:
    """The modules of the `course` and `test` extras (pyproject.toml) that no base
    dependency provides: a worker installed with `pip install .` has none of them."""
    import importlib.metadata
    import re

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    def dist(requirement: str) -> str:
        return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = {dist(r) for name in ("course", "test") for r in project["optional-dependencies"][name]}
    base = {dist(r) for r in project["dependencies"]}
    providers = importlib.metadata.packages_distributions()
    return sorted(
        module
        for module, dists in providers.items()
        if {d.lower().replace("_", "-") for d in dists} <= extras - base and not module.startswith("_")
    )


def _course_only_packages_removed(venv: str) -> list[str]:
    """Shell lines (inside the worker's mount namespace) that make the course-only packages
    of its Python at ``venv`` absent: each package folder is covered by a tmpfs whose
    ``__init__.py`` raises ModuleNotFoundError, for the worker and its sandboxes alike."""
    import importlib.util

    lines = []
    for module in course_only_modules():
        spec = importlib.util.find_spec(module)
        folders = list(spec.submodule_search_locations or []) if spec else []
        for folder in folders:
            if folder.startswith(sys.prefix + os.sep):
                inside = venv + folder[len(sys.prefix) :]
                lines += [
                    f"mount -t tmpfs -o size=1m tmpfs {inside}",
                    f"echo \"raise ModuleNotFoundError('No module named {module} (not installed on this worker)')\""
                    f" > {inside}/__init__.py",
                ]
    return lines


def _start_isolated_worker(address: str, home: Path, with_package: bool) -> subprocess.Popen:
    (home / "venv").mkdir()
    if with_package:
        shutil.copytree(REPO / "graders", home / "src" / "graders", ignore=shutil.ignore_patterns("__pycache__"))
    hide = sorted({p for p in _orchestrator_paths() if os.path.exists(p)}, key=len, reverse=True)
    script = "\n".join(
        [
            "set -e",
            "mount --make-rprivate /",
            f"mount --bind {sys.prefix} {home}/venv",  # the worker's own Python, at a path of its own
            *_course_only_packages_removed(f"{home}/venv"),  # installed with `pip install .`: no extras
            *(f"mount -t tmpfs -o size=2g tmpfs {path}" for path in hide),  # deepest first
            f"exec {home}/venv/bin/python -m distributed.cli.dask_worker {address} --no-nanny --nthreads 1 "
            f"--memory-limit 0 --no-dashboard --local-directory {home}/dask --name isolated",
        ]
    )
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "HW5_BLOB_CACHE": str(home / "cache"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    if with_package:
        env["PYTHONPATH"] = str(home / "src")
    return subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(home / "worker.log", "wb"),
        start_new_session=True,
    )


@pytest.fixture(params=[True], ids=["with-package"])
def isolated_worker(request):
    """(scheduler address, client, home) with one worker in a mount namespace."""
    from distributed import Client, LocalCluster

    home = Path(tempfile.mkdtemp(prefix="hw5-isolated-worker-", dir="/var/tmp"))
    assert not any(str(home).startswith(p) for p in _orchestrator_paths())
    with LocalCluster(n_workers=0, processes=True, dashboard_address=":0") as cluster, Client(cluster) as client:
        worker = _start_isolated_worker(cluster.scheduler_address, home, request.param)
        try:
            try:
                client.wait_for_workers(1, timeout=120)
            except Exception:
                pytest.fail("the isolated worker did not start: " + (home / "worker.log").read_text()[-2000:])
            yield cluster.scheduler_address, client, home
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
            shutil.rmtree(home, ignore_errors=True)


def _grade(root: Path, *extra: str) -> tuple[int, dict]:
    return grade_toy(root, *extra, cell_timeout=30, notebook_timeout=120)


def _sees_nothing_of_the_orchestrator(client, root: Path) -> None:
    named = [os.path.join(sys.prefix, "pyvenv.cfg"), str(REPO / "graders"), str(root)]
    if os.environ.get("HW5_MNIST_PATH"):
        named.append(os.path.abspath(os.environ["HW5_MNIST_PATH"]))
    for path in named:  # the hidden folders are empty mount points; nothing in them is there
        assert client.run(os.path.exists, path) == {next(iter(client.scheduler_info()["workers"])): False}, path


def test_the_course_only_modules_are_the_course_machines_tools():
    modules = set(course_only_modules())
    assert {"nbgrader", "bs4", "tqdm", "selenium", "pandas", "pytest"} <= modules
    assert not modules & {"tensorflow", "keras", "numpy", "nbclient", "ipykernel", "distributed", "matplotlib"}


def test_a_worker_without_the_course_grades_the_class(tmp_path, isolated_worker):
    """... nor the course machine's tools: installed with `pip install .`, no extras."""
    address, client, home = isolated_worker
    root = toy_course_with(tmp_path / "course", CLASS)
    _sees_nothing_of_the_orchestrator(client, root)

    def importable(name: str) -> bool:  # nested: cloudpickle sends it by value
        import importlib

        try:
            importlib.import_module(name)
            return True
        except ImportError:
            return False

    assert set(client.run(importable, "nbgrader").values()) == {False}
    assert set(client.run(importable, "bs4").values()) == {False}
    code, reports = _grade(root, "--scheduler", address)
    for student, (_, expected) in CLASS.items():
        assert tuple(points(root, student).get(test, 0.0) for test in TESTS) == tuple(map(float, expected)), (
            student,
            reports[student],
        )
    assert code == 0, reports  # carol's kernel died: graded, with the reason
    assert "kernel_died" in " ".join(reports["carol"]["errors"])
    assert reports["alice"]["errors"] == [] and reports["bob"]["status"] == "graded"
    assert any((home / "cache").iterdir())  # the content went through the worker's own cache


@pytest.mark.parametrize("isolated_worker", [False], ids=["without-package"], indirect=True)
def test_a_worker_without_the_package_refuses_in_one_line(tmp_path, isolated_worker, capsys):
    address, client, home = isolated_worker
    root = toy_course_with(tmp_path / "course", {"alice": (CORRECT, None)})
    report = root / "report.json"
    code = batch.main(["toy", "--course", str(root), "--no-canary", "--report", str(report), "--scheduler", address])
    err = capsys.readouterr().err
    assert code == 2 and not report.exists(), err
    line = next(line for line in err.splitlines() if "worker tcp://" in line)
    assert "cannot be imported" in line and "pip install hw5-cnn-course" in line, err
    assert points(root, "alice") == {}  # nobody graded


@pytest.mark.slow
@pytest.mark.needs_mnist
def test_a_worker_without_the_course_grades_hw5_exactly(tmp_path, isolated_worker):
    """Two of the sample class (a partly correct and an untouched submission): the real
    homework, with hw5_data.py, MNIST and both kits shipped: 4 minutes on 2 busy cores, so
    behind ``slow``."""
    import json

    from graders.authoring.mock_submissions import autograded_max_points
    from graders.authoring.release import make_scratch_course
    from graders.authoring.sample_class import PARTLY_CORRECT, UNTOUCHED_RELEASE
    from graders.course import course_db_url
    from graders.gradebook import student_grades
    from graders.reporting.score_table import autograded_points

    address, client, home = isolated_worker
    root = make_scratch_course(tmp_path / "course")
    mocks = (PARTLY_CORRECT, UNTOUCHED_RELEASE)
    for mock in mocks:
        mock.write(root / "submitted", root=root)
    _sees_nothing_of_the_orchestrator(client, root)
    report = root / "report.json"
    code = batch.main(["hw5", "--course", str(root), "--report", str(report), "--no-canary", "--scheduler", address])
    outcomes = {entry["student"]: entry for entry in json.loads(report.read_text())}
    for mock in mocks:
        got = autograded_points(student_grades(course_db_url(root), mock.name))
        assert got == mock.expected_points(autograded_max_points(root)), (mock.name, outcomes[mock.name])
    assert code in (0, 1), outcomes
