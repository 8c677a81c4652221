"""What each fit call trained on: the fingerprints (hw5_data), the checks (data_checks), and
their way through the export to the verifier. In-process, on a tiny budget (seconds)."""

from __future__ import annotations

import numpy as np
import pytest

import hw5_data
from graders.checks import GradingFailure, check_training
from graders.checks import data_checks, training_checks

pytestmark = pytest.mark.needs_mnist

TINY = hw5_data.Budget("fast", n_train=200, n_test=100)
FULL = hw5_data.BUDGETS["full"]


@pytest.fixture(autouse=True)
def tiny_grading_budget(monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    monkeypatch.delenv("HW5_GRADING_BUDGET", raising=False)
    monkeypatch.setitem(hw5_data.BUDGETS, "fast", TINY)
    training_checks.forget_test_data()
    yield
    training_checks.forget_test_data()
    hw5_data.uninstall_fit_recorder()


@pytest.fixture(scope="module")
def kernel():
    """What the notebook's setup and data cells hold under TINY: tracked images, one-hot labels."""
    import keras

    budgets = dict(hw5_data.BUDGETS)
    hw5_data.BUDGETS["fast"] = TINY
    try:
        environ = {"NBGRADER_EXECUTION": "autograde"}
        import os

        saved = {key: os.environ.get(key) for key in environ}
        os.environ.update(environ)
        (x_train_raw, y_train_raw), (x_test_raw, y_test_raw) = hw5_data.load_mnist()
    finally:
        hw5_data.BUDGETS.clear()
        hw5_data.BUDGETS.update(budgets)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    prepare = lambda images: images.reshape((images.shape[0], 28, 28, 1)).astype("float32") / 255.0
    return {"x_train": prepare(x_train_raw), "y_train": keras.utils.to_categorical(y_train_raw, 10),
            "x_test": prepare(x_test_raw), "y_test": keras.utils.to_categorical(y_test_raw, 10),
            "y_train_raw": y_train_raw}


def record(x, y, validation=None, **arguments) -> dict:
    return hw5_data.fit_record({"x": x, "y": y, "validation_data": validation, **arguments})


def problem(rec) -> str | None:
    return data_checks.describe_record(rec, TINY)


# ----- hw5_data: the fingerprints -------------------------------------------------------------

def test_row_hashes_ignore_dtype_and_trailing_shape_but_not_values(kernel):
    x = kernel["x_train"]
    hashes = hw5_data.row_hashes(x)
    assert hashes.dtype == np.int64 and hashes.shape == (len(x),)
    assert len(np.unique(hashes)) == len(x)
    np.testing.assert_array_equal(hashes, hw5_data.row_hashes(np.asarray(x, dtype="float64").reshape(len(x), 784)))
    assert not np.array_equal(hashes, hw5_data.row_hashes(x * 255.0))


def test_the_notebooks_images_remember_what_a_slice_holds_on_the_full_data(kernel):
    x = kernel["x_train"]
    assert isinstance(x, hw5_data.RowsOfFullData) and x.full_rows == FULL.n_train
    assert x[:10_000].full_rows == 10_000 and len(x[:10_000]) == len(x)
    assert x[-150:].full_rows == 150
    assert x.copy().full_rows == x[:].full_rows == x[np.random.permutation(len(x))].full_rows == FULL.n_train
    assert x[0].full_rows is None and x[x[:, 0, 0, 0] > 2].full_rows is None
    assert type(hw5_data.load_mnist(TINY)[0][0]) is np.ndarray  # an explicit budget: plain arrays


def test_a_students_own_run_gets_plain_arrays(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setattr(hw5_data, "load_full_mnist", lambda: (
        (np.zeros((20, 28, 28), "uint8"), np.arange(20) % 10), (np.zeros((10, 28, 28), "uint8"), np.arange(10))))
    (x_train, _), (x_test, _) = hw5_data.load_mnist()
    assert type(x_train) is np.ndarray and type(x_test) is np.ndarray


def test_the_recorder_reads_positional_keyword_split_dataset_and_generator_calls(kernel):
    import keras
    import tensorflow as tf

    x, y, x_test, y_test = kernel["x_train"], kernel["y_train"], kernel["x_test"], kernel["y_test"]
    hw5_data.install_fit_recorder()
    hw5_data.install_fit_recorder()  # idempotent
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, 32, 1, verbose=0, validation_data=(x_test, y_test))
    model.fit(x=x, y=y, batch_size=32, epochs=1, verbose=0, validation_split=0.25)
    model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(32), epochs=1, verbose=0,
              validation_data=tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(32))

    def batches():
        while True:
            yield x[:32], y[:32]

    model.fit(batches(), steps_per_epoch=1, epochs=1, verbose=0)
    positional, split, dataset, generator = hw5_data.fit_records(model)
    assert problem(positional) is None and problem(dataset) is None
    assert positional["train"]["full_rows"] == FULL.n_train
    assert len(split["train"]["images"]) == 150 and split["validation"] == {"kind": "split", "fraction": 0.25}
    assert "validation_split=0.25" in problem(split)
    assert generator["train"] == {"kind": "unknown", "reason": "a generator"}
    assert int(model.optimizer.iterations.numpy()) == 7 + 5 + 7 + 1  # every fit still trained


def test_a_failure_to_fingerprint_is_recorded_and_fit_still_runs(kernel, monkeypatch):
    import keras

    def broken(images):
        raise RuntimeError("hash exploded")

    monkeypatch.setattr(hw5_data, "row_hashes", broken)
    hw5_data.install_fit_recorder()
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.compile("sgd", "mse")
    model.fit(kernel["x_train"], kernel["y_train"], batch_size=100, epochs=1, verbose=0)
    (rec,) = hw5_data.fit_records(model)
    assert rec["train"]["kind"] == "unknown" and "hash exploded" in rec["train"]["reason"]
    assert int(model.optimizer.iterations.numpy()) == 2
    assert problem(rec) == f"fit was given no validation data. {data_checks._VALIDATION_ADVICE}"


# ----- data_checks: the comparisons -----------------------------------------------------------

def test_correct_styles_match(kernel):
    import tensorflow as tf

    x, y, x_test, y_test = kernel["x_train"], kernel["y_train"], kernel["x_test"], kernel["y_test"]
    order = np.random.default_rng(0).permutation(len(x))
    assert problem(record(x, y, (x_test, y_test))) is None
    assert problem(record(x[order], y[order], (x_test, y_test))) is None
    assert problem(record(x.copy(), y.copy(), (x_test.copy(), y_test))) is None
    assert problem(record(tf.data.Dataset.from_tensor_slices((x, y)).batch(32), None, (x_test, y_test))) is None
    assert problem(record(x, kernel["y_train_raw"], (x_test, y_test))) is None  # integer labels


def _no_budget_size(message: str) -> str:
    assert str(TINY.n_train) not in message and str(TINY.n_test) not in message, message
    return message


def test_a_subset_is_named_with_its_size_not_the_budgets(kernel):
    x, y = kernel["x_train"], kernel["y_train"]
    message = _no_budget_size(problem(record(x[:150], y[:150], (kernel["x_test"], kernel["y_test"]))))
    assert message.startswith("The training data holds 150 images, only part of x_train.")


def test_a_slice_hidden_by_the_grading_subset_is_caught(kernel):
    x, y = kernel["x_train"], kernel["y_train"]
    message = _no_budget_size(problem(record(x[:10_000], y[:10_000], (kernel["x_test"], kernel["y_test"]))))
    assert "a slice of x_train that, on the full data set, holds 10,000 of its 60,000 images" in message
    message = _no_budget_size(problem(record(x, y, (kernel["x_test"][:5_000], kernel["y_test"][:5_000]))))
    assert message.startswith("The validation data is not the test set.") and "5,000 of its 10,000" in message


def test_a_missing_class_is_named(kernel):
    x, y, labels = kernel["x_train"], kernel["y_train"], kernel["y_train_raw"]
    keep = labels != 3
    message = problem(record(x[keep], y[keep], (kernel["x_test"], kernel["y_test"])))
    assert "only part of x_train, and it has no images of the digit 3." in _no_budget_size(message)


def test_shifted_labels_do_not_match_their_images(kernel):
    x, y = kernel["x_train"], kernel["y_train"]
    message = problem(record(x, np.roll(y, 1, axis=0), (kernel["x_test"], kernel["y_test"])))
    assert message.startswith("The labels of the training data do not match its images:")
    assert "carry another label than in y_train" in message


def test_foreign_images_are_named_with_where_they_come_from(kernel):
    x_test, y_test = kernel["x_test"], kernel["y_test"]
    message = problem(record(x_test, y_test, (x_test, y_test)))
    assert message.startswith("100 of the 100 images of the training data are not images of x_train "
                              "(they are images of x_test).")
    message = problem(record(kernel["x_train"], kernel["y_train"], (kernel["x_train"][:100], kernel["y_train"][:100])))
    assert "not images of x_test (they are images of x_train)" in message
    message = problem(record(kernel["x_train"] * 255.0, kernel["y_train"], (x_test, y_test)))
    assert message.startswith("200 of the 200 images of the training data are not images of x_train.")


def test_validation_on_another_slice_of_the_test_set_fails(kernel):
    x_test, y_test = kernel["x_test"], kernel["y_test"]
    message = problem(record(kernel["x_train"], kernel["y_train"], (x_test[50:], y_test[50:])))
    assert message.startswith("The validation data is not the test set. The validation data holds 50 images, "
                              "only part of x_test.")


# ----- check_training and the verifier --------------------------------------------------------

def _trained(kernel, x, y):
    from graders.authoring import reference

    hw5_data.install_fit_recorder()
    model = reference.build_run("eta_large")
    history = model.fit(x, y, batch_size=32, epochs=10, verbose=0,
                        validation_data=(kernel["x_test"], kernel["y_test"]))
    return model, history


def test_check_training_fails_shifted_labels_and_passes_a_shuffled_copy(kernel):
    x, y = kernel["x_train"], kernel["y_train"]
    model, history = _trained(kernel, x, np.roll(y, 1, axis=0))
    with pytest.raises(GradingFailure, match="do not match its images"):
        check_training(history, model, "eta_large")
    order = np.random.default_rng(1).permutation(len(x))
    model, history = _trained(kernel, x[order], y[order])
    check_training(history, model, "eta_large")


def test_fingerprints_travel_through_the_export_to_the_verifier(kernel, monkeypatch, tmp_path):
    import sys

    from graders.checks.export import export_cell
    from graders.verify import rebuild
    from graders.verify.artifacts import read_cell_exports

    x, y = kernel["x_train"], kernel["y_train"]
    model, history = _trained(kernel, x[:10_000], y[:10_000])
    monkeypatch.setitem(sys.modules["__main__"].__dict__, "model_eta_large", model)
    export_cell({"grade_id": "test_todo1_training", "names": ["model_eta_large"]}, str(tmp_path))
    exports = read_cell_exports(tmp_path / "test_todo1_training")
    item = exports["manifest"]["items"]["model_eta_large"]
    assert item["fits"][0]["train"]["full_rows"] == 10_000
    rebuilt = rebuild.rebuild_model(item, exports["arrays"], "model_eta_large")
    (rec,) = hw5_data.fit_records(rebuilt)
    np.testing.assert_array_equal(rec["train"]["images"], hw5_data.fit_records(model)[0]["train"]["images"])
    assert "holds 10,000 of its 60,000 images" in problem(rec)
    with pytest.raises(GradingFailure, match="10,000 of its 60,000"):
        data_checks.check_fit_data(rebuilt, TINY)
