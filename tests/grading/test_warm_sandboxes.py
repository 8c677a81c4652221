"""A worker readies its next student's sandbox while it grades one (graders/grading/execution.py:
Spares, graders/sandbox/notebook.py:WarmRun): the kernel starts and imports the locked setup
cell's modules ahead, yet each student still gets a fresh sandbox that nobody else's code
touched."""

from __future__ import annotations

import json
import shutil

import nbformat
import pytest
from host_state import lasting_leftovers, orphaned_sandbox_leftovers
from nbformat.v4 import new_code_cell, new_notebook
from toy_course import ASSIGNMENT, grade_toy, points, toy_course_with

from graders.grading.execution import PRELOAD, Spares, warm_up_modules
from graders.sandbox import SandboxLimits
from graders.sandbox.notebook import WarmRun

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


def _locked(source: str, locked: bool = True):
    return new_code_cell(source, metadata={"nbgrader": {"grade": False, "locked": locked, "solution": not locked}})


def test_the_warm_up_imports_what_the_locked_first_cell_imports_and_preloads_for_a_support_module():
    notebook = new_notebook(
        cells=[
            _locked("import os\nimport numpy as np, keras\nfrom keras import layers\nfrom . import x\nimport hw5_data"),
            _locked("import pandas"),
        ]
    )
    modules = warm_up_modules(nbformat.writes(notebook), {"hw5_data.py": "/somewhere/hw5_data.py"})
    assert modules == [PRELOAD, "keras", "numpy", "os"]  # hw5_data itself is left to the cell
    without_support = new_notebook(cells=[_locked("import numpy")])
    assert warm_up_modules(nbformat.writes(without_support), {"hw5_data.py": "/somewhere/hw5_data.py"}) == ["numpy"]


@pytest.mark.parametrize(
    "cells",
    [
        [_locked("import numpy", locked=False)],  # the student's cell: never run ahead
        [_locked("import numpy\ndef (:")],
        [],
    ],
    ids=["student-cell-first", "unparsable", "no-code-cell"],
)
def test_nothing_is_imported_ahead_unless_the_first_cell_is_the_instructors(cells):
    assert warm_up_modules(nbformat.writes(new_notebook(cells=cells)), {}) == []


@needs_bwrap
def test_a_warm_run_has_its_modules_imported_and_runs_the_notebook_as_a_fresh_one(tmp_path):
    probe = new_notebook(
        cells=[
            new_code_cell(
                "import os, sys, tracemalloc\n"
                "print(sorted(name for name in ('colorsys', 'wave') if name in sys.modules), os.path.exists('probe.ipynb'), "
                "tracemalloc.is_tracing())"
            ),
            new_code_cell("print('second')"),
        ]
    )
    before = set(orphaned_sandbox_leftovers())
    with WarmRun(limits=SandboxLimits(), warm_up=["colorsys", "not_a_module_at_all", "tracemalloc:start"]) as run:
        assert run.alive()
        result = run.execute(probe, "probe.ipynb")
    assert result.ok, result.detail
    first, second = (cell.outputs[0]["text"].strip() for cell in result.notebook.cells)
    # imported ahead (a missing one is skipped); module:function was called
    assert (first, second) == ("['colorsys'] True True", "second")
    assert [cell.execution_count for cell in result.notebook.cells] == [1, 2]  # the warm-up is not counted
    assert not run.alive()
    assert lasting_leftovers(before) == []


class _ReadiedRun:
    """Stands for a WarmRun in Spares' bookkeeping."""

    def __init__(self, failed: str = "", alive: bool = True) -> None:
        self.failed, self._alive, self.ended = failed, alive, False

    def alive(self) -> bool:
        return self._alive

    def __exit__(self, *exc_info) -> None:
        self.ended = True


@pytest.mark.parametrize(
    ("made_with", "run", "why"),
    [
        (None, None, "no sandbox readied"),
        ({"env": {"A": "2"}}, _ReadiedRun(), "made for other settings"),
        ({"env": {"A": "1"}}, _ReadiedRun(failed="bwrap: no"), "could not start: bwrap: no"),
        ({"env": {"A": "1"}}, _ReadiedRun(alive=False), "had ended"),
        ({"env": {"A": "1"}}, _ReadiedRun(), ""),
    ],
    ids=["none", "other-settings", "failed", "ended", "used"],
)
def test_a_job_that_starts_cold_says_why(made_with, run, why):
    import threading

    spares, started = Spares(), threading.Event()
    started.set()
    if run is not None:
        spares._runs["nb.ipynb"] = (Spares._key(made_with), run, started)
    taken, reason = spares.take("nb.ipynb", {"env": {"A": "1"}})
    assert (why in reason) and bool(reason) == bool(why)
    assert taken is (None if why else run)
    assert run is None or run.ended == bool(why)  # a spare not used is ended at once


def _cpu_weight(run: WarmRun) -> tuple[str, str, str]:
    """(the run's CPU weight now, the background weight, the usual one), read back."""
    from graders.sandbox.cgroups import BACKGROUND_WEIGHT

    cgroup = run.run.cgroup
    folder = cgroup and cgroup.dirs.get("cpu" if cgroup.version == "v1" else "")
    knob, low, usual = BACKGROUND_WEIGHT[cgroup.version] if cgroup else ("", "", "")
    if not folder or not (folder / knob).exists():
        pytest.skip("no cgroup cpu controller here (rootless, or not mounted)")
    return (folder / knob).read_text().strip(), low, usual


@needs_bwrap
def test_a_spare_warms_up_in_the_background_and_runs_its_notebook_in_front(tmp_path):
    with WarmRun(limits=SandboxLimits(), warm_up=["json"], background=True) as run:
        now, low, _ = _cpu_weight(run)
        assert now == low
        result = run.execute(new_notebook(cells=[new_code_cell("print(1)")]), "probe.ipynb")
        now, _, usual = _cpu_weight(run)  # the run has ended; its cgroup is removed on leaving
        assert now == usual
    assert result.ok, result.detail


@needs_bwrap
def test_a_warm_run_that_is_never_used_leaves_nothing(tmp_path):
    before = set(orphaned_sandbox_leftovers())
    with WarmRun(limits=SandboxLimits(), warm_up=["json"]) as run:
        assert run.alive()
    assert lasting_leftovers(before) == []


#: Each student first looks for what anyone graded before left behind (and fails every
#: test when it finds any of it), then leaves a file in each writable place, a process
#: and a module behind for whoever comes next.
FINDS_NONE_THEN_LEAVES_TRACES = """import os, subprocess, sys, types
places = ("left-behind.txt", "/tmp/left-behind.txt", "/dev/shm/left-behind")
found = [path for path in places if os.path.exists(path)]
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            if b"123.25" in handle.read():
                found.append(f"process {pid}")
    except OSError:
        pass
found += [name for name in sys.modules if name == "left_behind"]
if found:
    raise RuntimeError(f"an earlier student's traces: {found}")
for path in places:
    with open(path, "w") as handle:
        handle.write("from an earlier student")
subprocess.Popen(["sleep", "123.25"], start_new_session=True)
sys.modules["left_behind"] = types.ModuleType("left_behind")
def add(a, b):
    return a + b
"""
STUDENTS = ("first", "second", "third")


@pytest.mark.batch
@needs_bwrap
def test_students_graded_in_a_row_on_one_worker_see_nothing_of_each_other(tmp_path):
    """One worker, whatever the order: every student after the first ran in a sandbox the
    worker readied while the one before it ran, and found none of its traces."""
    before = set(orphaned_sandbox_leftovers())
    root = toy_course_with(tmp_path / "course", {name: (FINDS_NONE_THEN_LEAVES_TRACES,) for name in STUDENTS})
    code, reports = grade_toy(root, "--workers", "1")
    assert code == 0, reports
    for student in STUDENTS:
        assert points(root, student) == {"test_add": 1.0, "test_add_more": 1.0}, json.dumps(reports[student], indent=1)
    warm = sorted(student for student in STUDENTS if reports[student]["warm_notebooks"] == [f"{ASSIGNMENT}.ipynb"])
    assert len(warm) == len(STUDENTS) - 1, reports  # all but the worker's first
    (first,) = set(STUDENTS) - set(warm)
    assert list(reports[first]["cold_notebooks"]) == [f"{ASSIGNMENT}.ipynb"]
    assert "no sandbox readied" in reports[first]["cold_notebooks"][f"{ASSIGNMENT}.ipynb"]
    assert lasting_leftovers(before) == [], "a spare outlived its batch"
