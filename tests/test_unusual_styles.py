"""Issue 16: honest but unusual Keras styles pass the kernel's checks AND the verifier.

For each style of ``corpus.correct_styles.UNUSUAL_STYLES`` (a subclassed model, activation
functions, layer subclasses, nested models, ``build()``, ``Sequential.add``, shared helper
layers...), built in-process with no notebook and no MNIST:

1. the trusted model test cells of the source notebook (hidden tests included) pass on the
   student's own objects, as in the kernel;
2. the kernel's exports of those cells are read strictly, the models rebuilt (a mapped
   reading confirmed on the probe images) and the same cells pass out of kernel.

The end-to-end grading of the same styles is in ``tests/test_corpus_slow.py`` (slow).
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from corpus.correct_styles import UNUSUAL_STYLES
from graders.authoring.mock_submissions import SOLUTION
from graders.checks.export import export_cell
from graders.verify import verifier
from graders.verify.artifacts import read_cell_exports
from graders.verify.rebuild import rebuild_model
from graders.verify.requests import export_requests, fresh_calls
from tests import verify_helpers as vh

MODEL_CELLS = ("test_todo3_architecture", "test_todo3_optimizer", "test_todo4_model",
               "test_todo5_architecture", "test_todo5_optimizer", "test_todo6_model")


def student_kernel(submission) -> dict:
    """The globals of a kernel that ran the submission's TODO 3 and 5 (the reference's where
    it uses the solution) and trained TODO 4 and 6's models tiny (64 random images)."""
    import keras
    import matplotlib.pyplot as plt
    from keras import layers
    from keras.optimizers import SGD

    import hw5_data
    from graders.authoring import reference

    namespace = {"keras": keras, "layers": layers, "SGD": SGD, "np": np, "plt": plt, "hw5_data": hw5_data,
                 "define_model_with_momentum": reference.define_model_with_momentum,
                 "define_model_2_conv": reference.define_model_2_conv}
    for todo in ("todo3", "todo5"):
        source = submission.cells.get(todo)
        if source is not SOLUTION:
            exec(source, namespace)
    x, y = vh.tiny_data(64)
    namespace["model_momentum"] = namespace["define_model_with_momentum"](0.01, 0.9)
    namespace["history_momentum"] = vh.train_tiny(namespace["model_momentum"], x, y)
    namespace["model_2_layer"] = namespace["define_model_2_conv"](0.01)
    namespace["history_2_layer"] = vh.train_tiny(namespace["model_2_layer"], x, y)
    return namespace


@pytest.fixture(scope="module")
def notebook():
    return vh.read(vh.PART_B)


@pytest.fixture(scope="module")
def setup_code(notebook):
    return verifier._setup_code(notebook, frozenset({"hw5_data"}))


def cell_source(notebook, grade_id: str) -> str:
    return next(cell.source for cell in notebook.cells
                if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


@pytest.mark.parametrize("style", UNUSUAL_STYLES, ids=lambda style: style.name)
def test_unusual_style_passes_in_kernel_and_out_of_kernel(style, notebook, setup_code, monkeypatch, tmp_path):
    namespace = vh.kernel_namespace(monkeypatch, student_kernel(style))
    requests = fresh_calls(export_requests(notebook, frozenset({"hw5_data"})), random.Random(16))
    for grade_id in MODEL_CELLS:
        source = cell_source(notebook, grade_id)
        exec(source, dict(namespace))  # in the kernel: must pass on the student's own objects
        export_cell(requests[grade_id], str(tmp_path))
        verdict = verifier.verify_cell(grade_id, source, tmp_path / grade_id, setup_code, requests[grade_id])
        assert verdict == {"passed": True, "verdict": "passed", "message": ""}, (grade_id, verdict)


@pytest.mark.parametrize("style", UNUSUAL_STYLES, ids=lambda style: style.name)
def test_rebuilt_model_predicts_as_the_students(style, monkeypatch, tmp_path):
    """The grade rests on the rebuilt model: it computes what the student's trained model does."""
    namespace = vh.kernel_namespace(monkeypatch, student_kernel(style))
    export_cell({"grade_id": "cell", "names": ["model_momentum", "model_2_layer"], "calls": []}, str(tmp_path))
    exports = read_cell_exports(tmp_path / "cell")
    x = vh.tiny_data(16, seed=5)[0]
    for name in ("model_momentum", "model_2_layer"):
        rebuilt = rebuild_model(exports["manifest"]["items"][name], exports["arrays"], name)
        np.testing.assert_allclose(np.asarray(rebuilt(x)), np.asarray(namespace[name](x)), rtol=1e-4, atol=1e-5)
