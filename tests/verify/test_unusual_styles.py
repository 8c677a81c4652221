"""Issue 16: honest but unusual Keras styles pass the kernel's checks AND the verifier.

For each style of ``corpus.correct_styles.UNUSUAL_STYLES`` (a subclassed model, activation
functions, layer subclasses, nested models, ``build()``, ``Sequential.add``, shared helper
layers...), built in-process with no notebook and no MNIST:

1. the trusted model test cells of the source notebook (hidden tests included) pass on the
   student's own objects, as in the kernel;
2. the kernel's exports of those cells are read strictly, the models rebuilt (a mapped
   reading confirmed on the probe images) and the same cells pass out of kernel.

The end-to-end grading of the same styles is in ``tests/corpus/test_corpus_slow.py`` (slow).
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from corpus.correct_styles import UNUSUAL_STYLES
from graders.authoring.mock_submissions import SOLUTION
from graders.checks.kernel_export import export_cell
from graders.verify import verifier
from graders.verify.export_reader import read_cell_exports
from graders.verify.rebuild import rebuild_model
from graders.verify.requests import export_requests, fresh_calls
from tests import verify_helpers as vh

MODEL_CELLS = (
    "test_todo3_architecture",
    "test_todo3_optimizer",
    "test_todo4_model",
    "test_todo5_architecture",
    "test_todo5_optimizer",
    "test_todo6_model",
)


def student_kernel(submission) -> dict:
    """The globals of a kernel that ran the submission's TODO 3 and 5 (the reference's where
    it uses the solution) and trained TODO 4 and 6's models tiny (64 random images)."""
    import keras
    import matplotlib.pyplot as plt
    from keras import layers
    from keras.optimizers import SGD

    import hw5_data
    from graders.authoring import reference

    namespace = {
        "keras": keras,
        "layers": layers,
        "SGD": SGD,
        "np": np,
        "plt": plt,
        "hw5_data": hw5_data,
        "define_model_with_momentum": reference.define_model_with_momentum,
        "define_model_2_conv": reference.define_model_2_conv,
    }
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


_TRAINED: dict[str, dict] = {}


def trained_kernel(submission) -> dict:
    """:func:`student_kernel`, once per style for this module: the tests only read it, and
    training costs seconds a style."""
    if submission.name not in _TRAINED:
        _TRAINED[submission.name] = student_kernel(submission)
    return _TRAINED[submission.name]


@pytest.fixture(scope="module")
def notebook():
    return vh.read(vh.PART_B)


@pytest.fixture(scope="module")
def setup_code(notebook):
    return verifier._setup_code(notebook, frozenset({"hw5_data"}))


def cell_source(notebook, grade_id: str) -> str:
    return next(cell.source for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


@pytest.mark.parametrize("style", UNUSUAL_STYLES, ids=lambda style: style.name)
def test_unusual_style_passes_in_kernel_and_out_of_kernel(style, notebook, setup_code, monkeypatch, tmp_path):
    namespace = vh.kernel_namespace(monkeypatch, trained_kernel(style))
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
    namespace = vh.kernel_namespace(monkeypatch, trained_kernel(style))
    export_cell({"grade_id": "cell", "names": ["model_momentum", "model_2_layer"], "calls": []}, str(tmp_path))
    exports = read_cell_exports(tmp_path / "cell")
    x = vh.tiny_data(16, seed=5)[0]
    for name in ("model_momentum", "model_2_layer"):
        rebuilt = rebuild_model(exports["manifest"]["items"][name], exports["arrays"], name)
        np.testing.assert_allclose(np.asarray(rebuilt(x)), np.asarray(namespace[name](x)), rtol=1e-4, atol=1e-5)


# -- the three verdicts, at the unit level ---------------------------------------------------------


def test_an_exception_of_ours_in_a_check_is_could_not_check_with_a_sentence():
    """A check that breaks on an object it cannot read says so in a plain sentence; the
    exception's class and text go to the instructor only."""
    from graders.checks import CouldNotCheck, GradingFailure, check_architecture
    from graders.checks.failures import instructor_part, student_part

    class Unreadable:
        """Passes ``require_model`` (a keras.Model subclass), breaks when its layers are read."""

    import keras

    class Broken(keras.Model):
        @property
        def layers(self):
            raise KeyError("layers")

    with pytest.raises(CouldNotCheck) as raised:
        check_architecture(Broken(), "define_model_2_conv")
    assert not isinstance(raised.value, GradingFailure)
    text = str(raised.value)
    assert "KeyError" not in student_part(text) and "limit of the grader" in student_part(text)
    assert "KeyError" in instructor_part(text)


def test_the_verifier_judges_our_exceptions_as_unverifiable_and_check_failures_as_failed():
    from graders.checks import CouldNotCheck, GradingFailure
    from graders.verify.export_reader import ArtifactError

    assert verifier.judge(GradingFailure("lr is 0.5"), [])["verdict"] == "failed"
    assert verifier.judge(AssertionError("Train for epochs=10."), [])["verdict"] == "failed"
    assert verifier.judge(KeyError("layers"), [])["verdict"] == "unverifiable"
    assert verifier.judge(TypeError("boom"), [])["verdict"] == "unverifiable"
    assert verifier.judge(ArtifactError("layer class 'Lambda' is not allowed"), [])["verdict"] == "unverifiable"
    assert verifier.judge(CouldNotCheck.about("x", "detail"), [])["limit"] == "detail"
    # a failure on a placeholder the exporter stood in for is ours, not the student's
    limited = verifier.judge(GradingFailure("not a Keras model"), ["model: the exporter does not carry a Foo"])
    assert limited["verdict"] == "unverifiable" and "Foo" in limited["limit"]


def test_a_subclassed_model_whose_call_is_not_its_layer_chain_needs_a_person(monkeypatch, tmp_path):
    """The kernel's checks read the layers; the rebuilt chain of those layers does not compute
    what ``call`` computes (a skip of the hidden layer): the probe images show it, and the
    verdict is "could not verify" (a person looks), never a failure of the student's."""
    import keras
    from keras import layers
    from keras.optimizers import SGD

    from graders.checks import check_architecture

    class Skips(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = layers.Conv2D(32, 3, activation="relu")
            self.pool = layers.MaxPooling2D(2)
            self.flat = layers.Flatten()
            self.hidden = layers.Dense(100, activation="relu")
            self.out = layers.Dense(10, activation="softmax")

        def call(self, x):
            hidden = self.hidden(self.flat(self.pool(self.conv(x))))
            return self.out(hidden * 2.0)  # not the chain the layers describe

    def define_model_with_momentum(learning_rate, momentum):
        model = Skips()
        model.build((None, 28, 28, 1))
        model.compile(
            optimizer=SGD(learning_rate=learning_rate, momentum=momentum),
            loss="categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    check_architecture(define_model_with_momentum(0.01, 0.9), "define_model_with_momentum")  # the kernel: passes
    vh.kernel_namespace(monkeypatch, {"define_model_with_momentum": define_model_with_momentum})
    source = 'check_architecture(define_model_with_momentum(0.01, 0.9), "define_model_with_momentum")\n'
    request = {
        "grade_id": "cell",
        "names": ["define_model_with_momentum"],
        "calls": [{"builder": "define_model_with_momentum", "args": [0.01, 0.9]}],
    }
    export_cell(request, str(tmp_path))
    setup = compile("from graders.checks import check_architecture\n", "<setup>", "exec")
    verdict = verifier.verify_cell("cell", source, tmp_path / "cell", setup, request)
    assert verdict["verdict"] == "unverifiable", verdict
    assert "probe images" in verdict["limit"] and "subclassed keras.Model (Skips)" in verdict["limit"]


def test_a_mapped_model_without_probe_predictions_is_not_trusted(monkeypatch, tmp_path):
    """Forging the mapping notes away from the probe cannot make a mapped reading trusted."""
    import json

    from graders.verify.export_reader import ArtifactError

    values = student_kernel(SUBCLASSED_MODEL_STYLE())
    vh.kernel_namespace(monkeypatch, {"model_2_layer": values["model_2_layer"]})
    export_cell({"grade_id": "cell", "names": ["model_2_layer"], "calls": []}, str(tmp_path))
    exports = read_cell_exports(tmp_path / "cell")
    item = exports["manifest"]["items"]["model_2_layer"]
    assert item["mapped"] and item["probe"]
    rebuild_model(item, exports["arrays"])  # confirmed
    item = json.loads(json.dumps(item))
    item["probe"] = None
    with pytest.raises(ArtifactError, match="probe images"):
        rebuild_model(item, exports["arrays"])


def SUBCLASSED_MODEL_STYLE():
    from corpus.correct_styles import SUBCLASSED_MODEL

    return SUBCLASSED_MODEL


def test_a_graders_import_hook_does_not_change_what_honest_work_exports(monkeypatch, tmp_path):
    """The executor loads the exporter from its file, and the exporter loads every module of
    ``graders`` it uses from its file too, so that a student's ``sys.modules`` swap or
    ``builtins.__import__`` hook for ``graders`` cannot change their honest cells' exports
    (found by the tampering corpus: an imported ``class_path`` became a no-op, and the
    builders' optimizers could not be verified)."""
    import builtins
    import json
    import sys
    import types

    from graders.sandbox.execute_inside import export_code

    exporter = vh.ROOT / "graders" / "checks" / "kernel_export.py"
    request = {
        "grade_id": "cell",
        "names": ["define_model_2_conv", "model_momentum"],
        "calls": [{"builder": "define_model_2_conv", "args": [0.01]}],
    }
    vh.kernel_namespace(monkeypatch, student_kernel(SUBCLASSED_MODEL_STYLE()))

    def export(folder) -> dict:
        exec(export_code(request, str(folder), str(exporter)), {})
        return json.loads((folder / "cell" / "manifest.json").read_text())

    honest = export(tmp_path / "honest")
    fake = types.ModuleType("graders.checks")
    fake.__getattr__ = lambda name: lambda *args, **kwargs: None
    real_import = builtins.__import__

    def hook(name, globals=None, locals=None, fromlist=(), level=0):
        if name.startswith("graders"):
            return fake
        return real_import(name, globals, locals, fromlist, level)

    for module in [name for name in sys.modules if name.startswith("graders.checks")]:
        monkeypatch.setitem(sys.modules, module, fake)
    monkeypatch.setattr(builtins, "__import__", hook)
    hooked = export(tmp_path / "hooked")
    monkeypatch.undo()
    assert honest["calls"][0]["result"]["compile"]["optimizer"]["class_path"] == "keras.src.optimizers.sgd.SGD"
    assert _without_layer_names(hooked) == _without_layer_names(honest)


def _without_layer_names(value):
    """``value`` without its ``name`` entries: each builder call numbers its layers anew."""
    if isinstance(value, dict):
        return {key: _without_layer_names(item) for key, item in value.items() if key != "name"}
    if isinstance(value, list):
        return [_without_layer_names(item) for item in value]
    return value


def test_the_exporter_imports_no_module_of_graders():
    """What :func:`test_a_graders_import_hook_does_not_change_what_honest_work_exports` relies
    on, for every line of the exporter (a new ``from graders...`` would pass that test only
    while the module it brings happens to be unused there)."""
    import ast

    tree = ast.parse((vh.ROOT / "graders" / "checks" / "kernel_export.py").read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [name for name in imported if name.split(".")[0] == "graders"], imported
