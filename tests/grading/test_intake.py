"""Intake reads submissions as hostile input (fast: no kernel runs)."""

from __future__ import annotations

import json
import os

import nbformat
import pytest

from graders.grading.intake import parse_notebook, read_submission, repair, suspicious_code


def _notebook(*sources, grade_ids=None):
    cells = [nbformat.v4.new_code_cell(source) for source in sources]
    for cell, grade_id in zip(cells, grade_ids or []):
        if grade_id:
            cell.metadata["nbgrader"] = {
                "grade_id": grade_id,
                "grade": False,
                "solution": True,
                "locked": False,
                "schema_version": 3,
            }
    return nbformat.v4.new_notebook(cells=cells)


def test_a_symlinked_notebook_is_not_followed(tmp_path):
    secret = tmp_path / "secret.ipynb"
    nbformat.write(_notebook("x = 1"), secret)
    link = tmp_path / "link.ipynb"
    os.symlink(secret, link)
    with pytest.raises(ValueError, match="cannot be read"):
        parse_notebook(link)


def test_an_oversized_notebook_is_refused(tmp_path, monkeypatch):
    import graders.grading.intake as intake

    monkeypatch.setattr(intake, "MAX_NOTEBOOK_BYTES", 100)
    path = tmp_path / "big.ipynb"
    nbformat.write(_notebook("x = 1" * 100), path)
    with pytest.raises(ValueError, match="larger than"):
        parse_notebook(path)


def test_json_nested_deeper_than_the_parser_goes_is_refused(tmp_path):
    path = tmp_path / "deep.ipynb"
    path.write_bytes(b'{"cells": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_notebook(path)


@pytest.mark.parametrize("grade_id", [["answer"], {"id": "answer"}, 7])
def test_a_grade_id_that_is_not_a_string_is_dropped_and_reported(grade_id):
    notebook = _notebook("a = 1", "b = 2", grade_ids=["answer", "other"])
    notebook.cells[1].metadata["nbgrader"]["grade_id"] = grade_id
    repairs = repair(notebook, "nb.ipynb", {"answer", "other"})
    assert "nbgrader" not in notebook.cells[1].metadata
    assert notebook.cells[0].metadata["nbgrader"]["grade_id"] == "answer"
    assert repairs == [
        f"nb.ipynb: cell 1 has a grade_id that is not a string ({json.dumps(grade_id)}); "
        "treated as a plain cell, the original cell is put back"
    ]


def test_duplicates_and_empty_metadata_are_repaired_and_reported():
    notebook = _notebook("a = 1", "a = 1", "b = 2", grade_ids=["answer", "answer", None])
    notebook.cells[2].metadata["nbgrader"] = {}
    repairs = repair(notebook, "nb.ipynb")
    assert [c.metadata.get("nbgrader", {}).get("grade_id") for c in notebook.cells] == ["answer", None, None]
    assert any("repeats grade_id 'answer'" in r for r in repairs)
    assert any("empty nbgrader metadata" in r for r in repairs)


def test_a_renamed_notebook_is_adopted_only_when_its_grade_ids_match(tmp_path):
    nbformat.write(_notebook("a = 1", grade_ids=["answer"]), tmp_path / "mine.ipynb")
    intake = read_submission(tmp_path, {"hw.ipynb": {"answer"}})
    assert list(intake.notebooks) == ["hw.ipynb"] and "submitted as mine.ipynb" in intake.repairs[0]
    intake = read_submission(tmp_path, {"hw.ipynb": {"other"}})
    assert intake.notebooks == {} and "hw.ipynb is missing" in intake.errors[0]


@pytest.mark.parametrize(
    "source, flagged",
    [
        ("get_ipython().input_transformers_cleanup.append(lambda lines: [])", "rewrites later cells"),
        ("import sys\nsys.modules['graders.checks'] = fake", "replaces modules or builtins"),
        ("history_2_layer.history['val_accuracy'] = [0.99] * 10", "patches the grading"),
        ("model.evaluate = lambda *a, **k: [0, 1.0]", "patches the grading"),
        ("import subprocess\nsubprocess.run(['cat', '/etc/passwd'])", "reaches outside"),
        ("print(history.history['accuracy'][-1])", None),
        ("model_eta_large = define_model(1)\nhistory = model_eta_large.fit(x_train, y_train)", None),
    ],
)
def test_suspicious_code_is_flagged_and_honest_code_is_not(source, flagged):
    flags = suspicious_code(_notebook(source), "nb.ipynb")
    if flagged:
        assert flags and flagged in flags[0]
    else:
        assert flags == []
