"""hw5-export: nbgrader's CSV, the LMS gradebook CSV and Gradescope results.json files.

The CSVs must load cleanly with pandas (one row per student, totals that add up and agree
with nbgrader's), and every results.json must follow Gradescope's documented autograder
format (https://gradescope-autograders.readthedocs.io/en/latest/specs/), checked by
:func:`gradescope_problems` below, which is itself tested on broken documents.
"""

from __future__ import annotations

import csv
import json
import math

import pandas as pd
import pytest

from graders.reporting import exports
from reporting.test_feedback import HW5_MUTANTS, HW5_STUDENTS, graded_hw5_course, graded_toy_course, needs_bwrap

# Gradescope's results.json, as documented: key -> allowed types (all keys optional, but a
# score is required on the top level or on every test).
_TOP = {
    "score": (int, float),
    "execution_time": (int, float),
    "output": (str,),
    "visibility": (str,),
    "stdout_visibility": (str,),
    "extra_data": (dict,),
    "tests": (list,),
    "output_format": (str,),
    "test_output_format": (str,),
    "test_name_format": (str,),
    "leaderboard": (list,),
}
_TEST = {
    "score": (int, float),
    "max_score": (int, float),
    "status": (str,),
    "name": (str,),
    "name_format": (str,),
    "number": (str,),
    "output": (str,),
    "output_format": (str,),
    "tags": (list,),
    "visibility": (str,),
    "extra_data": (dict,),
}
_VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}


def gradescope_problems(results: dict) -> list[str]:
    """What is wrong with a results.json document (empty when it follows the format)."""
    problems = []

    def check(where: str, document: dict, allowed: dict):
        for key, value in document.items():
            if key not in allowed:
                problems.append(f"{where}: unknown key {key!r}")
            elif isinstance(value, bool) or not isinstance(value, allowed[key]):
                problems.append(
                    f"{where}: {key} should be {'/'.join(t.__name__ for t in allowed[key])}, not {type(value).__name__}"
                )
        for key in ("visibility", "stdout_visibility"):
            if key in document and document[key] not in _VISIBILITY:
                problems.append(f"{where}: {key} {document[key]!r} is not one of {sorted(_VISIBILITY)}")
        if isinstance(document.get("score"), float) and not math.isfinite(document["score"]):
            problems.append(f"{where}: score is not finite")

    if not isinstance(results, dict):
        return ["not a JSON object"]
    check("top level", results, _TOP)
    tests = results.get("tests", [])
    for index, test in enumerate(tests if isinstance(tests, list) else []):
        if not isinstance(test, dict):
            problems.append(f"tests[{index}]: not an object")
            continue
        check(f"tests[{index}]", test, _TEST)
        if "status" in test and test["status"] not in ("passed", "failed"):
            problems.append(f"tests[{index}]: status {test['status']!r}")
        if "tags" in test and not all(isinstance(tag, str) for tag in test["tags"]):
            problems.append(f"tests[{index}]: tags must be strings")
        if "score" not in results and "score" not in test:
            problems.append(f"tests[{index}]: no score (and none on the top level)")
    if "score" not in results and not tests:
        problems.append("no score and no tests")
    return problems


def test_the_results_json_check_rejects_broken_documents():
    good = {
        "score": 1.0,
        "execution_time": 3,
        "output": "",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [
            {
                "score": 1.0,
                "max_score": 1.0,
                "name": "t",
                "number": "1.1",
                "output": "",
                "visibility": "visible",
                "tags": ["a"],
                "status": "passed",
            }
        ],
    }
    assert gradescope_problems(good) == []
    broken = [
        {**good, "score": "1"},
        {**good, "visibility": "students"},
        {**good, "execution_time": True},
        {**good, "grade": 1},
        {**good, "tests": [{**good["tests"][0], "number": 1.1}]},
        {**good, "tests": [{**good["tests"][0], "tags": [1]}]},
        {**good, "tests": [{**good["tests"][0], "status": "ok"}]},
        {"tests": [{"name": "no score anywhere"}]},
    ]
    for document in broken:
        assert gradescope_problems(document), document


def test_every_hw5_graded_cell_has_an_lms_column():
    import nbformat

    from graders.course import NOTEBOOKS, source_dir

    columns = {}
    for name in NOTEBOOKS:
        for cell in nbformat.read(source_dir() / name, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade") or meta.get("task"):
                column = exports.column_of(name.removesuffix(".ipynb"), meta["grade_id"], cell.cell_type == "code")
                columns[column] = columns.get(column, 0) + float(meta["points"])
    assert columns == {"Part A auto": 4, "Part A manual": 7, "Part B 1": 5, "Part B 2": 5, "Part B 3": 5, "Part B 4": 5}
    with pytest.raises(KeyError):
        exports.column_of("hw5_part_b_cnn", "test_todo7_model", True)


def _load_exports(root, report, tmp_path):
    out = tmp_path / "exports"
    assignment = "toy" if (root / "source" / "toy").is_dir() else "hw5"
    code = exports.main([assignment, "--course", str(root), "--out", str(out), "--report", str(report)])
    assert code == 0
    return out, pd.read_csv(out / "lms-grades.csv"), pd.read_csv(out / "nbgrader-grades.csv")


def _score_columns(lms: pd.DataFrame) -> tuple[list[str], str]:
    total = next(column for column in lms.columns if column.startswith("Total ("))
    parts = [column for column in lms.columns[4:] if column.endswith(")") and column != total]
    return parts, total


@needs_bwrap
@pytest.mark.batch
def test_toy_exports_load_and_add_up(toy_graded_course, tmp_path):
    root, report = toy_graded_course
    out, lms, nbgrader = _load_exports(root, report, tmp_path)
    assert list(lms["Student ID"]) == ["alice", "bob", "carol"]
    parts, total = _score_columns(lms)
    assert parts == ["toy auto (2)", "toy manual (2)"] and total == "Total (4)"
    assert (lms[parts].sum(axis=1) == lms[total]).all()
    assert dict(zip(lms["Student ID"], lms[total])) == dict(zip(nbgrader["student_id"], nbgrader["score"]))
    assert dict(zip(lms["Student ID"], lms["Pending manual"])) == {"alice": 1, "bob": 1, "carol": 0}
    for student in ("alice", "bob", "carol"):
        results = json.loads((out / "gradescope" / student / "results.json").read_text())
        assert gradescope_problems(results) == []
        assert isinstance(results["execution_time"], int)
    bob = json.loads((out / "gradescope" / "bob" / "results.json").read_text())
    assert [t["output"] for t in bob["tests"] if t["name"] == "test_add"] == ["add(1, 2) should be 3"]


@needs_bwrap
@pytest.mark.batch
def test_nbgrader_export_plugins_write_the_lms_csv_and_a_canvas_import(toy_graded_course, tmp_path):
    """``nbgrader export --exporter ...``, as nbgrader users export; the Canvas file has
    exactly the identity columns of Canvas's gradebook import, then one assignment column."""
    from graders.course import run_nbgrader

    root, report = toy_graded_course
    out, lms, _ = _load_exports(root, report, tmp_path)
    for plugin, target in (("LmsExportPlugin", tmp_path / "lms.csv"), ("CanvasExportPlugin", tmp_path / "canvas.csv")):
        result = run_nbgrader(
            ["export", "--exporter", f"graders.reporting.exports.{plugin}", "--to", str(target), "--assignment", "toy"],
            root=root,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "lms.csv").read_text() == (out / "lms-grades.csv").read_text()
    with (tmp_path / "canvas.csv").open(newline="") as handle:
        header, points, *rows = list(csv.reader(handle))
    assert header == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "TOY"]
    assert points[0].strip() == "Points Possible" and float(points[-1]) == 4
    _, total = _score_columns(lms)
    assert {row[3]: float(row[5]) for row in rows} == dict(zip(lms["Student ID"], lms[total]))
    assert (tmp_path / "canvas.csv").read_text() == (out / "canvas-grades.csv").read_text()


@pytest.fixture(scope="module")
def toy_graded_course(tmp_path_factory):
    return graded_toy_course(tmp_path_factory)


@pytest.fixture(scope="module")
def hw5_exports(tmp_path_factory):
    root, report = graded_hw5_course(tmp_path_factory)
    return (root, *_load_exports(root, report, tmp_path_factory.mktemp("hw5-exports")))


@pytest.mark.e2e
@pytest.mark.needs_mnist
@needs_bwrap
def test_hw5_lms_csv_has_one_row_per_student_and_totals_that_add_up(hw5_exports):
    root, out, lms, nbgrader = hw5_exports
    assert lms["Student ID"].is_unique and set(HW5_STUDENTS) <= set(lms["Student ID"])
    parts, total = _score_columns(lms)
    assert (
        parts
        == ["Part A auto (4)", "Part A manual (7)", "Part B 1 (5)", "Part B 2 (5)", "Part B 3 (5)", "Part B 4 (5)"]
        and total == "Total (31)"
    )
    assert all(pd.api.types.is_numeric_dtype(lms[column]) for column in [*parts, total])
    assert ((lms[parts].sum(axis=1) - lms[total]).abs() < 1e-6).all()
    nbgrader_totals = dict(zip(nbgrader["student_id"], nbgrader["score"]))
    for student, value in zip(lms["Student ID"], lms[total]):
        assert abs(value - nbgrader_totals[student]) < 1e-6, student
    rows = lms.set_index("Student ID")
    reference = rows.loc["reference"]
    assert reference["Part A auto (4)"] == 4 and reference["Part B 2 (5)"] == 3  # TODO 1+2 tests; Q2 by hand
    assert reference["Pending manual"] == 8 and reference["Status"] == "awaiting manual grading"
    assert rows.loc["untouched-release", total] == 0
    assert rows.loc["dense100-softmax-output", "Part B 3 (5)"] == 1  # only TODO 3's optimizer test passes
    assert rows.loc["batch-size-1024", "Part B 3 (5)"] == 2  # TODO 4 training lost (1 point)


@pytest.mark.e2e
@pytest.mark.needs_mnist
@needs_bwrap
def test_hw5_results_json_follow_gradescope_format_with_failure_messages(hw5_exports):
    root, out, lms, _ = hw5_exports
    graded_cells = len(exports.collect(root)[0].cells)
    assert graded_cells == 23  # 3 + 4 in Part A, 12 + 4 in Part B
    for student in HW5_STUDENTS:
        results = json.loads((out / "gradescope" / student / "results.json").read_text())
        assert gradescope_problems(results) == [], student
        assert {"score", "execution_time", "output", "visibility", "stdout_visibility", "tests"} <= set(results)
        assert abs(results["score"] - sum(t["score"] for t in results["tests"])) < 1e-6
        total = next(c for c in lms.columns if c.startswith("Total ("))
        assert abs(results["score"] - float(lms.set_index("Student ID").loc[student, total])) < 1e-6
        assert "HW5 data budget: fast" in results["output"]
        assert len(results["tests"]) == graded_cells and len({t["number"] for t in results["tests"]}) == graded_cells
    batch = json.loads((out / "gradescope" / "batch-size-1024" / "results.json").read_text())
    failed = {t["name"].split(":")[0]: t for t in batch["tests"] if t.get("status") == "failed"}
    assert list(failed) == ["test_todo4_training"]
    assert "SGD updates" in failed["test_todo4_training"]["output"]
    assert failed["test_todo4_training"]["score"] == 0 and failed["test_todo4_training"]["max_score"] == 1
    untouched = json.loads((out / "gradescope" / "untouched-release" / "results.json").read_text())
    messages = {t["name"].split(":")[0]: t["output"] for t in untouched["tests"]}
    assert messages["test_todo1_model"] in (
        "Define model_eta_large in the TODO 1 cell.",
        "NameError: name 'model_eta_large' is not defined",
    )
    for mutant in HW5_MUTANTS:
        assert any(
            t.get("status") == "failed"
            for t in json.loads((out / "gradescope" / mutant / "results.json").read_text())["tests"]
        )
