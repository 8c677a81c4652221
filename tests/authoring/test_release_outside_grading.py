"""Does a student running the release notebook at home see exactly what they saw before the
grading kit moved out of hw5_data.py? The release's setup and data cells, run in-process
without NBGRADER_EXECUTION: the full data, Keras's own fit, the same printed lines; and, with
it set, the same arrays (the budget applies inside fit, never to the student's arrays)."""

from __future__ import annotations

import contextlib
import io
import json
import sys

import pytest

from graders.course import COURSE_ROOT

pytestmark = pytest.mark.needs_mnist

RELEASE = COURSE_ROOT / "release" / "hw5"


def _cells(*grade_ids: str) -> list[str]:
    notebook = json.loads((RELEASE / "hw5_part_b_cnn.ipynb").read_text())
    by_id = {
        cell["metadata"].get("nbgrader", {}).get("grade_id"): "".join(cell["source"])
        for cell in notebook["cells"]
        if cell["cell_type"] == "code"
    }
    return [by_id[grade_id] for grade_id in grade_ids]


def _run_setup_and_data(monkeypatch) -> tuple[dict, str]:
    monkeypatch.syspath_prepend(str(RELEASE))
    monkeypatch.delitem(sys.modules, "hw5_data", raising=False)
    namespace: dict = {"__name__": "__main__"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for source in _cells("setup", "prepare_data"):
            exec(compile(source, "<release cell>", "exec"), namespace)
    return namespace, printed.getvalue()


def test_at_home_the_release_notebook_gets_full_arrays_kerass_fit_and_the_same_output(monkeypatch):
    import keras

    from graders.checks import recorder

    recorder.uninstall()
    own_fit = keras.Model.fit
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    namespace, printed = _run_setup_and_data(monkeypatch)
    assert namespace["x_train"].shape == (60_000, 28, 28, 1) and namespace["x_test"].shape == (10_000, 28, 28, 1)
    assert namespace["y_train"].shape == (60_000, 10)
    assert keras.Model.fit is own_fit and not recorder.installed()
    assert "hw5_data" not in (getattr(own_fit, "__module__", "") or "")
    assert printed.splitlines() == [
        "HW5 data budget: full (60,000 training / 10,000 test images)",
        "training images: (60000, 28, 28, 1)  labels: (60000, 10)",
        "test images:     (10000, 28, 28, 1)  labels: (10000, 10)",
    ]
    source = (RELEASE / "hw5_data.py").read_text()
    assert "keras.Model.fit" not in source and "row_hashes" not in source  # a short loader again


def test_while_grading_the_arrays_are_the_same_and_only_fit_changes(monkeypatch):
    import warnings

    import keras
    import numpy as np

    from graders.checks import recorder

    recorder.uninstall()
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # prepare_session redirects it
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    home, _ = _run_setup_and_data(monkeypatch)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    monkeypatch.delenv("HW5_GRADING_BUDGET", raising=False)
    try:
        graded, printed = _run_setup_and_data(monkeypatch)
        assert recorder.installed() and keras.Model.fit is not recorder._original_fit
        for name in ("x_train", "y_train", "x_test", "y_test"):
            np.testing.assert_array_equal(graded[name], home[name])
        assert "training images: (60000, 28, 28, 1)" in printed
    finally:
        recorder.uninstall()
