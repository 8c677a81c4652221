"""The verifier starts with the notebooks and waits for the word go; the notebooks run
side by side (graders/grading/verifier_step.py:EarlyVerifier, graders/grading/execution.py).

Toy exports and a one-line trusted cell: no TensorFlow in the checks, only the warm-up's
import (a few seconds per verifier)."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time

import nbformat
import pytest
from host_state import lasting_leftovers, orphaned_sandbox_leftovers
from nbformat.v4 import new_code_cell, new_notebook

from graders.checks.kernel_export import FORMAT
from graders.course import COURSE_ROOT
from graders.grading import execution
from graders.grading.kits import build_verifier_kit
from graders.grading.verifier_step import EarlyVerifier, ToVerify

SANDBOX = [
    pytest.param(False, id="plain"),
    pytest.param(
        True,
        id="sandboxed",
        marks=pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
    ),
]


def _trusted(grade_id: str = "check_x") -> str:
    cell = new_code_cell(
        "assert x == 1, 'x should be 1'",
        metadata={"nbgrader": {"grade": True, "grade_id": grade_id, "points": 1, "locked": True, "solution": False}},
    )
    return nbformat.writes(new_notebook(cells=[cell]))


def _export(folder, value, grade_id: str = "check_x") -> None:
    """What the kernel's export cell writes for ``x = value``, as copy_exports leaves it."""
    cell = folder / grade_id
    cell.mkdir(mode=0o755)
    manifest = {
        "format": FORMAT,
        "grade_id": grade_id,
        "items": {"x": {"kind": "value", "value": value, "tuple": False}},
        "calls": [],
    }
    (cell / "manifest.json").write_text(json.dumps(manifest))
    (cell / "manifest.json").chmod(0o644)


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    return str(build_verifier_kit(tmp_path_factory.mktemp("kit") / "kit", COURSE_ROOT / "graders"))


def _early(kit, exports, sandbox, notebooks=("a.ipynb",)):
    request = {"check_x": {"grade_id": "check_x", "names": ["x"], "calls": []}}
    return EarlyVerifier(
        {name: ToVerify(_trusted(), request, str(exports)) for name in notebooks},
        kit_dir=kit,
        support_files={},
        data_file=None,
        env={},
        sandbox=sandbox,
    )


def _empty_folder(tmp_path):
    os.chmod(tmp_path, 0o755)
    exports = tmp_path / "exports"
    exports.mkdir(mode=0o755)
    return exports


@pytest.mark.parametrize("sandbox", SANDBOX)
def test_the_verifier_reads_the_exports_written_after_it_started(kit, tmp_path, sandbox):
    """It starts before the kernel has exported anything, and judges what is there at go:
    a verifier that read its input early would find no export and could not verify."""
    exports = _empty_folder(tmp_path)
    before = set(orphaned_sandbox_leftovers())
    with _early(kit, exports, sandbox) as verifier:
        time.sleep(1)  # the kernel's run: the verifier is importing TensorFlow meanwhile
        _export(exports, 1)
        results, _ = verifier.finish(["a.ipynb"])
    assert results["a.ipynb"].failure is None, results["a.ipynb"].failure
    assert results["a.ipynb"].verdicts["check_x"]["passed"] is True, results["a.ipynb"].verdicts
    assert lasting_leftovers(before) == []


def test_the_verifier_waits_for_the_word_go_once_warm(kit, tmp_path):
    """Long past its warm-up (about 4 s), it has read nothing and is still waiting."""
    exports = _empty_folder(tmp_path)
    with _early(kit, exports, False) as verifier:
        deadline = time.monotonic() + 7
        while time.monotonic() < deadline:
            assert verifier._process.proc.poll() is None, "the verifier ended before the word go"
            time.sleep(0.5)
        _export(exports, 1)
        results, _ = verifier.finish(["a.ipynb"])
    assert results["a.ipynb"].verdicts["check_x"]["passed"] is True, results["a.ipynb"].verdicts


@pytest.mark.parametrize("sandbox", SANDBOX)
def test_a_wrong_export_written_late_fails_out_of_kernel(kit, tmp_path, sandbox):
    exports = _empty_folder(tmp_path)
    with _early(kit, exports, sandbox) as verifier:
        _export(exports, 2)
        results, _ = verifier.finish(["a.ipynb"])
    verdict = results["a.ipynb"].verdicts["check_x"]
    assert verdict["passed"] is False and "x should be 1" in verdict["message"], verdict


def test_only_the_notebooks_named_at_go_are_verified(kit, tmp_path):
    exports = _empty_folder(tmp_path)
    _export(exports, 1)
    with _early(kit, exports, False, notebooks=("a.ipynb", "b.ipynb")) as verifier:
        results, _ = verifier.finish(["b.ipynb", "not-given.ipynb"])
    assert list(results) == ["b.ipynb"]
    assert results["b.ipynb"].verdicts["check_x"]["passed"] is True


@pytest.mark.parametrize("sandbox", SANDBOX)
def test_a_verifier_never_told_to_go_is_killed_and_leaves_nothing(kit, tmp_path, sandbox):
    exports = _empty_folder(tmp_path)
    _export(exports, 1)
    before = set(orphaned_sandbox_leftovers())
    with _early(kit, exports, sandbox) as verifier:
        process = verifier._process
    proc = process.run.proc if sandbox else process.proc
    assert proc.poll() is not None
    assert lasting_leftovers(before) == []


@pytest.mark.parametrize("sandbox", SANDBOX)
def test_a_verifier_that_could_not_start_is_could_not_verify_for_each_notebook(kit, tmp_path, sandbox):
    exports = _empty_folder(tmp_path)
    verifier = _early(kit, exports, sandbox, notebooks=("a.ipynb", "b.ipynb"))
    verifier.support_files = {"hw5_data.py": str(tmp_path / "missing.py")}  # ours broke: nothing to copy
    with verifier:
        results, _ = verifier.finish(["a.ipynb", "b.ipynb"])
    for name in ("a.ipynb", "b.ipynb"):
        assert results[name].verdicts is None
        assert "missing.py" in results[name].failure, results[name].failure


def test_the_notebooks_of_a_job_run_side_by_side(monkeypatch):
    """Each stand-in run waits for the other: run one after the other, the first would
    wait alone until the barrier breaks."""
    barrier = threading.Barrier(2, timeout=30)

    def run_beside(job, name, text, exports):
        barrier.wait()
        return execution.NotebookRun("ok", "", 0.0, text)

    monkeypatch.setattr(execution, "_run_sandboxed", run_beside)
    job = execution.Job(
        student="s",
        notebooks={"a.ipynb": "A", "b.ipynb": "B"},
        support_files={},
        checks_dir="",
        data_file=None,
    )
    runs = execution._run_notebooks(job, {"a.ipynb": "", "b.ipynb": ""})
    assert {name: run.executed for name, run in runs.items()} == {"a.ipynb": "A", "b.ipynb": "B"}
    assert list(runs) == ["a.ipynb", "b.ipynb"]
