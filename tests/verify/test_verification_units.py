"""The host's side of out-of-kernel verification, without a kernel: copying exports out
of a finished run, and combining the two verdicts per test cell."""

from __future__ import annotations

import os

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from graders.grading.verifier_step import FAILED_ENAME, NOT_VERIFIED_ENAME, Verification, apply_verdicts
from graders.sandbox.copy_exports import FILE_CAPS, collect_artifacts
from graders.sandbox.outputs import error_output


def _graded(grade_id, failed=False):
    cell = new_code_cell("check()", metadata={"nbgrader": {"grade": True, "grade_id": grade_id, "points": 1}})
    cell.outputs = [error_output("GradingFailure", "wrong")] if failed else []
    return cell


def _notebook():
    return new_notebook(cells=[new_code_cell("x = 1"), _graded("passes"), _graded("fails", failed=True)])


def _errors(cell):
    return [output["ename"] for output in cell.outputs if output["output_type"] == "error"]


# -- combining verdicts ------------------------------------------------------------------------


def test_a_cell_keeps_its_points_only_when_both_verdicts_pass():
    notebook = _notebook()
    flags = apply_verdicts(
        notebook, Verification({"passes": {"passed": True, "message": ""}, "fails": {"passed": True, "message": ""}})
    )
    assert flags == []
    assert _errors(notebook.cells[1]) == []
    assert _errors(notebook.cells[2]) == ["GradingFailure"]  # the kernel's failure stands


def test_passing_in_the_kernel_and_failing_outside_is_a_failed_cell_and_a_tampering_flag():
    notebook = _notebook()
    flags = apply_verdicts(
        notebook,
        Verification({"passes": {"passed": False, "message": "lr is 0.5"}, "fails": {"passed": False, "message": "x"}}),
    )
    assert _errors(notebook.cells[1]) == [FAILED_ENAME]
    assert "lr is 0.5" in notebook.cells[1].outputs[-1]["evalue"]
    assert len(flags) == 1 and "suspected tampering" in flags[0] and flags[0].startswith("passes:")
    assert _errors(notebook.cells[2]) == ["GradingFailure"]  # no second error, no flag


def test_a_cell_without_a_verdict_fails():
    notebook = _notebook()
    flags = apply_verdicts(notebook, Verification({}))
    assert _errors(notebook.cells[1]) == [NOT_VERIFIED_ENAME]  # our failure: a person looks
    assert flags and "no verdict" in flags[0] and "needs a person" in flags[0]


def test_a_verifier_that_could_not_run_fails_every_passing_cell_and_says_so():
    notebook = _notebook()
    flags = apply_verdicts(notebook, Verification(None, failure="TimeoutError: over 300 s"))
    assert _errors(notebook.cells[1]) == [NOT_VERIFIED_ENAME]
    assert flags == [
        "passes: needs a person: could not verify out of kernel (the verifier failed: TimeoutError: over 300 s)"
    ]
    nbformat.validate(notebook)


# -- copying the exports out -------------------------------------------------------------------


def _export(root, grade_id, manifest=b"{}", arrays=None):
    folder = root / grade_id
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_bytes(manifest)
    if arrays is not None:
        (folder / "arrays.npz").write_bytes(arrays)
    return folder


def test_only_plain_folders_and_the_two_fixed_files_are_copied(tmp_path):
    source, target = tmp_path / "exports", tmp_path / "copied"
    _export(source, "test_a", b'{"a": 1}', b"PK")
    (source / "test_a" / "extra.py").write_text("print('not copied')")
    _export(source, "bad name!")
    os.symlink("/etc", source / "test_link")
    secret = tmp_path / "secret.json"
    secret.write_text("{}")
    linked = source / "test_b"
    linked.mkdir()
    os.symlink(secret, linked / "manifest.json")
    problems = collect_artifacts(str(source), str(target))
    assert sorted(p.name for p in target.iterdir()) == ["test_a", "test_b"]
    assert sorted(p.name for p in (target / "test_a").iterdir()) == ["arrays.npz", "manifest.json"]
    assert (target / "test_a" / "manifest.json").read_bytes() == b'{"a": 1}'
    assert list((target / "test_b").iterdir()) == []  # the symlinked manifest was refused
    text = " ".join(problems)
    assert "bad name" in text and "test_link" in text and "test_b/manifest.json: refused" in text


def test_an_oversized_export_is_refused(tmp_path):
    source, target = tmp_path / "exports", tmp_path / "copied"
    _export(source, "test_a", b" " * (FILE_CAPS["manifest.json"] + 1))
    problems = collect_artifacts(str(source), str(target))
    assert not (target / "test_a" / "manifest.json").exists()
    assert problems and "test_a/manifest.json: refused" in problems[0]


def test_an_export_folder_that_is_a_symlink_is_refused(tmp_path):
    real = tmp_path / "elsewhere"
    _export(real, "test_a")
    os.symlink(real, tmp_path / "exports")
    assert collect_artifacts(str(tmp_path / "exports"), str(tmp_path / "copied")) == [
        ".hw5-exports is not a plain folder"
    ]
    assert list((tmp_path / "copied").iterdir()) == []


def test_no_exports_is_no_problem_here(tmp_path):
    """A missing export fails its cell in the verifier, which says why; nothing to copy."""
    assert collect_artifacts(str(tmp_path / "absent"), str(tmp_path / "copied")) == []


# -- the export cells the executor inserts -----------------------------------------------------


def test_an_export_cell_follows_each_requested_test_cell_and_maps_back():
    from graders.sandbox.execute_inside import insert_export_cells

    notebook = new_notebook(
        cells=[
            new_code_cell("x = 1"),
            _graded("passes"),
            _graded("not_requested"),
            nbformat.v4.new_markdown_cell("text"),
        ]
    )
    origin = insert_export_cells(
        notebook,
        {"passes": {"names": ["x"], "calls": []}},
        "/work/.hw5-exports",
        "/opt/hw5-kit/graders/checks/kernel_export.py",
    )
    assert origin == [0, 1, None, 2, 3]
    export = notebook.cells[2].source
    assert "spec_from_file_location" in export and "'/opt/hw5-kit/graders/checks/kernel_export.py'" in export
    assert "'/work/.hw5-exports'" in export
    assert '"grade_id": "passes"' in export and '"names": ["x"]' in export


def test_no_export_cells_without_an_export_folder():
    from graders.sandbox.execute_inside import insert_export_cells

    notebook = new_notebook(cells=[_graded("passes")])
    assert insert_export_cells(notebook, {"passes": {"names": []}}, "") == [0]
    assert len(notebook.cells) == 1


def test_an_export_cell_runs_without_the_students_trace_and_profile_hooks(tmp_path, monkeypatch):
    """A student's ``sys.settrace`` hook that slows every call (or skips lines) is off while
    our export cell runs, and back on after it (found by the tampering corpus: whether the
    export ended within the cell's time limit depended on the machine's load)."""
    import json
    import sys

    from graders.sandbox.execute_inside import export_code

    exporter = os.path.join(os.path.dirname(__file__), "..", "..", "graders", "checks", "kernel_export.py")
    monkeypatch.setitem(sys.modules["__main__"].__dict__, "x", 3)
    seen = []

    def tracer(frame, event, arg):
        seen.append((event, frame.f_code.co_filename))
        return None

    def profiler(frame, event, arg):
        seen.append((event, frame.f_code.co_filename))

    sys.setprofile(profiler)
    sys.settrace(tracer)
    try:
        exec(export_code({"grade_id": "cell", "names": ["x"], "calls": []}, str(tmp_path), exporter), {})
        hooks = sys.gettrace(), sys.getprofile()
    finally:
        sys.settrace(None)
        sys.setprofile(None)
    assert hooks == (tracer, profiler)
    assert not [filename for _, filename in seen if filename.endswith("kernel_export.py")], seen[:5]
    manifest = json.loads((tmp_path / "cell" / "manifest.json").read_text())
    assert manifest["items"]["x"] == {"kind": "value", "value": 3, "tuple": False}


def test_the_summary_counts_cells_that_could_not_run_from_the_notebook():
    from graders.grading.grader import cells_that_could_not_run

    notebook = _notebook()  # one passing cell, one failing test: nothing that could not run
    assert cells_that_could_not_run(nbformat.writes(notebook)) == 0
    apply_verdicts(notebook, Verification(None, failure="crashed"))
    notebook.cells[0].outputs = [error_output("CellNotExecuted", "did not run")]
    assert cells_that_could_not_run(nbformat.writes(notebook)) == 2


def test_a_model_that_changes_between_test_cells_fails_the_later_cell():
    """A model's settings changed between its model cell and its training cell (the accuracy
    floor applies only to a model with the run's settings): the later cell fails."""
    import pytest

    from graders.checks.failures import GradingFailure
    from graders.verify.verifier import check_unchanged

    def model(rate):
        return {
            "kind": "model",
            "input_shape": [28, 28, 1],
            "layers": [{"class_name": "Dense", "config": {"units": 10}}],
            "compile": {"optimizer": {"class_name": "SGD", "learning_rate": rate, "momentum": 0.9}},
        }

    seen = {}
    check_unchanged({"model_momentum": model(0.01), "history": {"kind": "history"}}, seen)
    check_unchanged({"model_momentum": model(0.01)}, seen)  # the same model again: fine
    with pytest.raises(GradingFailure, match="model_momentum changed between the test cells"):
        check_unchanged({"model_momentum": model(0.02)}, seen)


def test_an_export_that_cannot_be_read_is_ours_to_review_not_tampering():
    notebook = _notebook()
    flags = apply_verdicts(
        notebook,
        Verification(
            {
                "passes": {"passed": False, "message": "could not verify: layer class 'Lambda' is not allowed"},
                "fails": {"passed": False, "message": "x"},
            }
        ),
    )
    assert _errors(notebook.cells[1]) == [NOT_VERIFIED_ENAME]
    assert flags == [
        "passes: needs a person: could not verify out of kernel: layer class 'Lambda' is "
        "not allowed (no points until an instructor reviews it)"
    ]
    assert "suspected tampering" not in " ".join(flags)
