"""Export in-process -> strict read -> rebuild: the checks see the same models (no MNIST)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from graders.checks import GradingFailure
from graders.checks.describe import describe_model
from graders.checks.kernel_export import export_cell
from graders.verify import crosscheck
from graders.verify.export_reader import read_cell_exports
from graders.verify.rebuild import rebuild_history, rebuild_model
from tests import verify_helpers as vh
from tests.corpus.correct_styles import FUNCTIONAL_STYLE, KERAS2_STYLE


def _student_builders(submission) -> dict:
    """The builders a correct-style submission defines (reference ones where it uses SOLUTION)."""
    import keras
    from keras import layers
    from keras.optimizers import SGD

    from graders.authoring import reference

    namespace = {
        "keras": keras,
        "layers": layers,
        "SGD": SGD,
        "define_model_with_momentum": reference.define_model_with_momentum,
        "define_model_2_conv": reference.define_model_2_conv,
    }
    for todo in ("todo3", "todo5"):
        source = submission.cells.get(todo)
        if isinstance(source, str):
            exec(source, namespace)
    return {name: namespace[name] for name in ("define_model_with_momentum", "define_model_2_conv")}


def _export_and_read(monkeypatch, tmp_path, values: dict, calls=()) -> dict:
    vh.kernel_namespace(monkeypatch, values)
    export_cell({"grade_id": "cell", "names": sorted(values), "calls": list(calls)}, str(tmp_path))
    return read_cell_exports(tmp_path / "cell")


@pytest.fixture(scope="module")
def data():
    return vh.tiny_data(64)


@pytest.mark.parametrize("style", ["reference", KERAS2_STYLE.name, FUNCTIONAL_STYLE.name])
def test_rebuilt_models_describe_and_predict_as_the_originals(style, data, monkeypatch, tmp_path):
    from graders.authoring import reference

    builders = (
        dict(reference.BUILDERS)
        if style == "reference"
        else _student_builders({KERAS2_STYLE.name: KERAS2_STYLE, FUNCTIONAL_STYLE.name: FUNCTIONAL_STYLE}[style])
    )
    trained = builders["define_model_with_momentum"](0.01, 0.9)
    history = vh.train_tiny(trained, *data)
    values = {
        "trained": trained,
        "history": history,
        "two_conv": builders["define_model_2_conv"](0.05),
        "define_model_with_momentum": builders["define_model_with_momentum"],
    }
    exports = _export_and_read(
        monkeypatch, tmp_path, values, [{"builder": "define_model_with_momentum", "args": [0.2, 0.0]}]
    )
    items, arrays = exports["manifest"]["items"], exports["arrays"]
    assert items["define_model_with_momentum"] == {"kind": "callable"}
    models = {name: rebuild_model(items[name], arrays, name) for name in ("trained", "two_conv")}
    for name, model in models.items():
        assert describe_model(model) == describe_model(values[name]), name
    x = data[0][:16]
    np.testing.assert_allclose(
        models["trained"].predict(x, verbose=0), trained.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    assert int(models["trained"].optimizer.iterations.numpy()) == 2 == int(trained.optimizer.iterations.numpy())
    rebuilt_history = rebuild_history(items["history"], models)
    assert rebuilt_history.model is models["trained"]
    assert rebuilt_history.history == {key: [float(v) for v in values] for key, values in history.history.items()}
    call = exports["manifest"]["calls"][0]["result"]
    assert "weights" not in call["layers"][0] and call["optimizer_state"] is None
    assert describe_model(rebuild_model(call, arrays)) == describe_model(
        builders["define_model_with_momentum"](0.2, 0.0)
    )
    crosscheck.crosscheck_items(items)  # an honest export agrees with itself


def test_values_arrays_missing_unsupported_and_errors_are_recorded(monkeypatch, tmp_path):
    import keras

    class BadHistory(keras.callbacks.History):
        """A student's object that raises while it is exported."""

        @property
        def history(self):
            raise RuntimeError("boom")

        @history.setter
        def history(self, value):
            pass

    values = {
        "letter": "B",
        "pair": (1, [2.5, -4.0]),
        "grid": np.arange(6).reshape(2, 3),
        "flag": np.bool_(True),
        "odd": {1: 2},
        "bad": BadHistory(),
        "function": len,
    }
    exports = _export_and_read(monkeypatch, tmp_path, values)
    items = exports["manifest"]["items"]
    assert items["letter"] == {"kind": "value", "value": "B", "tuple": False}
    assert items["pair"] == {"kind": "value", "value": [1, [2.5, -4.0]], "tuple": True}
    assert items["grid"]["kind"] == "array" and exports["arrays"]["grid"].dtype == np.int64
    assert items["flag"]["value"] is True
    assert items["odd"] == {"kind": "unsupported", "unsupported": "dict"}
    # a History the exporter could not carry is a limit of ours, not the student's error
    assert items["bad"] == {"kind": "unrepresentable", "type": "BadHistory", "reason": "RuntimeError: boom"}
    assert items["function"] == {"kind": "callable"}
    export_cell(
        {"grade_id": "other", "names": ["absent"], "calls": [{"builder": "absent", "args": [1]}]}, str(tmp_path)
    )
    other = read_cell_exports(tmp_path / "other")["manifest"]
    assert other["items"]["absent"] == {"kind": "missing"}
    assert other["calls"][0]["result"] == {"kind": "missing"}
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == ["manifest.json"]


def _trained_item(monkeypatch, tmp_path, data, momentum=0.9):
    from graders.authoring import reference

    model = reference.define_model_with_momentum(0.01, momentum)
    history = vh.train_tiny(model, *data)
    exports = _export_and_read(monkeypatch, tmp_path, {"model": model, "history": history})
    return exports["manifest"]["items"]


def test_cross_checks_catch_rigged_numbers(data, monkeypatch, tmp_path):
    items = _trained_item(monkeypatch, tmp_path, data)
    crosscheck.crosscheck_items(items)
    rigged = copy.deepcopy(items)
    rigged["model"]["optimizer_state"]["iterations"] = 3200
    with pytest.raises(GradingFailure, match="optimizer updates"):
        crosscheck.crosscheck_items(rigged)
    rigged = copy.deepcopy(items)
    rigged["history"]["params"]["epochs"] = 10
    with pytest.raises(GradingFailure, match="do not agree"):
        crosscheck.crosscheck_items(rigged)
    rigged = copy.deepcopy(items)
    rigged["model"]["compile"]["optimizer"]["learning_rate"] = 1.0
    with pytest.raises(GradingFailure, match="learning rate"):
        crosscheck.crosscheck_items(rigged)
    rigged = copy.deepcopy(items)
    rigged["model"]["optimizer_state"]["momentums"] = []
    with pytest.raises(GradingFailure, match="momentum buffers"):
        crosscheck.crosscheck_items(rigged)
    rigged = copy.deepcopy(items)
    rigged["model"]["compile"]["optimizer"]["momentum"] = 0.0
    with pytest.raises(GradingFailure, match="without momentum"):
        crosscheck.crosscheck_items(rigged)


def test_honest_variations_rebuild_so_the_checks_can_speak(data, monkeypatch, tmp_path):
    """Layers beyond the homework's (BatchNorm with its moving statistics, LeakyReLU, padding,
    global pooling, reshaping, rescaling) rebuild exactly: a student who used them is judged
    by the checks, not refused by the allowlist."""
    import keras
    from keras import layers

    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.ZeroPadding2D(1),
            layers.Conv2D(8, 3),
            layers.BatchNormalization(),
            layers.LeakyReLU(),
            layers.MaxPooling2D(2),
            layers.GlobalAveragePooling2D(),
            layers.Reshape((8,)),
            layers.Rescaling(0.5),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01, 0.9), loss="categorical_crossentropy", metrics=["accuracy"])
    x, y = data
    model.fit(x[:64], y[:64], epochs=1, verbose=0)
    exports = _export_and_read(monkeypatch, tmp_path, {"model": model})
    rebuilt = rebuild_model(exports["manifest"]["items"]["model"], exports["arrays"], "model")
    assert describe_model(rebuilt) == describe_model(model)
    np.testing.assert_allclose(rebuilt.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0), atol=1e-5)


def test_an_answer_written_as_rows_of_arrays_is_exported_as_its_numbers(monkeypatch, tmp_path):
    rows = [np.array([11, 5, 7, 2]), np.array([3, 14, -7, 5])]
    exports = _export_and_read(
        monkeypatch, tmp_path, {"rows": rows, "as_tuple": tuple(rows), "objects": np.array(rows, dtype=object)}
    )
    for name in ("rows", "as_tuple", "objects"):
        item = exports["manifest"]["items"][name]
        assert item["kind"] == "array", item
        np.testing.assert_array_equal(exports["arrays"][item["key"]], np.array(rows, dtype=float))


def test_a_model_two_cells_export_alike_is_rebuilt_once(data, monkeypatch, tmp_path):
    """The rebuild cache is keyed by the whole content: the same model twice is one object,
    the same model with one weight changed is another."""
    from graders.authoring import reference
    from graders.verify.verifier import cell_namespace

    model = reference.define_model_with_momentum(0.01, 0.9)
    vh.train_tiny(model, *data)
    first = _export_and_read(monkeypatch, tmp_path / "first", {"model": model})
    again = _export_and_read(monkeypatch, tmp_path / "again", {"model": model})
    model.layers[-1].kernel.assign(model.layers[-1].kernel + 1.0)
    changed = _export_and_read(monkeypatch, tmp_path / "changed", {"model": model})
    setup = compile("", "<setup>", "exec")
    rebuilt: dict = {}
    one = cell_namespace(setup, first, rebuilt)["model"]
    assert cell_namespace(setup, again, rebuilt)["model"] is one
    other = cell_namespace(setup, changed, rebuilt)["model"]
    assert other is not one and len(rebuilt) == 2
    np.testing.assert_allclose(other.layers[-1].kernel.numpy(), one.layers[-1].kernel.numpy() + 1.0, rtol=1e-6)
