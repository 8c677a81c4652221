"""What each fit call was given and trained on: the recorder (graders.checks.recorder), the
checks (data_checks), and their way through the export to the verifier. In-process, on the
full data with a tiny budget (seconds)."""

from __future__ import annotations

import numpy as np
import pytest

import hw5_data
from checks.tiny_budget import TINY
from graders.checks import GradingFailure, check_training, data_checks, recorder

pytestmark = [pytest.mark.needs_mnist, pytest.mark.usefixtures("tiny_grading_budget")]

FULL = hw5_data.BUDGETS["full"]
STEPS = -(-TINY.n_train // 32)  # updates per epoch on the budget's rows


@pytest.fixture(scope="module")
def kernel():
    """What the notebook's setup and data cells hold while grading: the full data, one-hot labels."""
    import keras

    (x_train_raw, y_train_raw), (x_test_raw, y_test_raw) = hw5_data.load_mnist()
    prepare = lambda images: images.reshape((images.shape[0], 28, 28, 1)).astype("float32") / 255.0
    return {
        "x_train": prepare(x_train_raw),
        "y_train": keras.utils.to_categorical(y_train_raw, 10),
        "x_test": prepare(x_test_raw),
        "y_test": keras.utils.to_categorical(y_test_raw, 10),
        "y_train_raw": y_train_raw,
    }


def record(x, y, validation=None, **arguments) -> dict:
    return recorder.plan_fit({"x": x, "y": y, "validation_data": validation, **arguments}, TINY).record


def problem(rec) -> str | None:
    return data_checks.describe_record(rec, TINY)


def _small_model():
    import keras

    model = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]
    )
    model.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
    return model


# ----- the recorder: what fit is given, and what it trains on ---------------------------------


def test_row_hashes_ignore_dtype_and_trailing_shape_but_not_values(kernel):
    x = kernel["x_train"][:500]
    hashes = recorder.row_hashes(x)
    assert hashes.dtype == np.int64 and hashes.shape == (len(x),)
    assert len(np.unique(hashes)) == len(x)
    np.testing.assert_array_equal(hashes, recorder.row_hashes(np.asarray(x, dtype="float64").reshape(len(x), 784)))
    assert not np.array_equal(hashes, recorder.row_hashes(x * 255.0))


def test_the_notebook_gets_the_full_data_while_grading_as_at_home(kernel):
    assert kernel["x_train"].shape == (FULL.n_train, 28, 28, 1) and kernel["x_test"].shape[0] == FULL.n_test
    assert type(hw5_data.load_mnist()[0][0]) is np.ndarray
    assert len(hw5_data.load_mnist(TINY)[0][0]) == TINY.n_train  # an explicit budget: the subset


def test_without_the_grading_kit_fit_is_kerass_own(monkeypatch):
    """At home, or validating where graders is absent: no wrapper, no change."""
    import sys

    import keras

    own = keras.Model.fit
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    hw5_data.prepare_session(5)
    assert keras.Model.fit is own
    monkeypatch.setenv("NBGRADER_EXECUTION", "validate")
    with monkeypatch.context() as absent:
        absent.setitem(sys.modules, "graders", None)  # the import fails, as where graders is not installed
        absent.setitem(sys.modules, "graders.checks", None)
        hw5_data.prepare_session(5)
    assert keras.Model.fit is own and not recorder.installed()


def _fit_once(x, y, validation, **options):
    model = _small_model()
    history = model.fit(x, y, **{"batch_size": 32, "epochs": 1, "verbose": 0, **options}, validation_data=validation)
    (rec,) = recorder.fit_records(model)
    return int(model.optimizer.iterations.numpy()), rec, history


def test_honest_calls_train_on_the_budgets_rows_whatever_their_form(kernel):
    import tensorflow as tf

    recorder.install(TINY)
    recorder.install(TINY)  # idempotent
    x, y, x_test, y_test = kernel["x_train"], kernel["y_train"], kernel["x_test"], kernel["y_test"]
    order = np.random.default_rng(0).permutation(len(x))
    honest = {
        "arrays": ((x, y, (x_test, y_test)), {}),
        "shuffle=False": ((x, y, (x_test, y_test)), {"shuffle": False}),
        "a shuffled copy": ((x[order], y[order], (x_test, y_test)), {}),
        "float64": ((x.astype("float64"), y, (x_test.astype("float64"), y_test)), {}),
        "tensors": ((tf.convert_to_tensor(x), tf.convert_to_tensor(y), (tf.convert_to_tensor(x_test), y_test)), {}),
        "integer labels": ((x, kernel["y_train_raw"], (x_test, np.argmax(y_test, axis=1))), {}),
    }
    for name, ((images, labels, validation), options) in honest.items():
        model = _small_model()
        if name == "integer labels":
            model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(images, labels, batch_size=32, epochs=1, verbose=0, validation_data=validation, **options)
        (rec,) = recorder.fit_records(model)
        assert problem(rec) is None, name
        assert int(model.optimizer.iterations.numpy()) == STEPS, name
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
    model = _small_model()
    model.fit(
        dataset, epochs=1, verbose=0, validation_data=tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(32)
    )
    (rec,) = recorder.fit_records(model)
    assert problem(rec) is None and int(model.optimizer.iterations.numpy()) == -(-TINY.n_train // 64)


def test_subsets_mean_in_grading_what_they_mean_at_home(kernel):
    """A slice, a conversion, an index, a split or a concatenation trains on the budget's rows it
    selected (a sixth, here), and its record says what it was given."""
    import tensorflow as tf

    recorder.install(TINY)
    x, y, x_test, y_test = kernel["x_train"], kernel["y_train"], kernel["x_test"], kernel["y_test"]
    pick = np.random.default_rng(3).choice(len(x), 10_000, replace=False)
    subsets = {
        "tensor slice": (tf.convert_to_tensor(x)[:10_000], tf.convert_to_tensor(y)[:10_000]),
        "np.asarray slice": (np.asarray(x)[:12_000], np.asarray(y)[:12_000]),
        "random index": (x[pick], y[pick]),
        "np.split": (np.split(x, 6)[0], np.split(y, 6)[0]),
    }
    for name, (images, labels) in subsets.items():
        updates, rec, _ = _fit_once(images, labels, (x_test, y_test))
        assert updates < STEPS, name
        assert problem(rec).startswith(f"The training data holds {len(images):,} images, only part of x_train"), name
    updates, rec, _ = _fit_once(np.concatenate([x, x_test]), np.concatenate([y, y_test]), (x_test, y_test))
    assert problem(rec).startswith(
        "10,000 of the 70,000 images of the training data are not images of x_train (they are images of x_test)."
    )


def test_a_split_a_generator_and_another_preprocessing(kernel):
    recorder.install(TINY)
    x, y, x_test, y_test = kernel["x_train"], kernel["y_train"], kernel["x_test"], kernel["y_test"]
    model = _small_model()
    model.fit(x=x[:400], y=y[:400], batch_size=32, epochs=1, verbose=0, validation_split=0.25)

    def batches():
        while True:
            yield x[:32], y[:32]

    model.fit(batches(), steps_per_epoch=1, epochs=1, verbose=0)
    split, generator = recorder.fit_records(model)
    assert split["validation"] == {"kind": "split", "fraction": 0.25} and "validation_split=0.25" in problem(split)
    assert generator["train"] == {"kind": "unknown", "reason": "a generator"}
    updates, rec, _ = _fit_once(x * 255.0, y, (x_test, y_test))  # unscaled: cut by position
    assert updates == STEPS and "not images of x_train" in problem(rec)


def test_a_failure_to_fingerprint_is_recorded_and_fit_still_runs(kernel, monkeypatch):
    def broken(images):
        raise RuntimeError("hash exploded")

    monkeypatch.setattr(recorder, "row_hashes", broken)
    recorder.install(TINY)
    model = _small_model()
    model.fit(kernel["x_train"][:200], kernel["y_train"][:200], batch_size=100, epochs=1, verbose=0)
    (rec,) = recorder.fit_records(model)
    assert rec["train"]["kind"] == "unknown" and "hash exploded" in rec["train"]["reason"]
    assert int(model.optimizer.iterations.numpy()) == 2


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
    assert message.startswith(
        "10,000 of the 10,000 images of the training data are not images of x_train (they are images of x_test)."
    )
    message = problem(
        record(kernel["x_train"], kernel["y_train"], (kernel["x_train"][:10_000], kernel["y_train"][:10_000]))
    )
    assert "not images of x_test (they are images of x_train)" in message
    message = problem(record(kernel["x_train"] * 255.0, kernel["y_train"], (x_test, y_test)))
    assert message.startswith("60,000 of the 60,000 images of the training data are not images of x_train.")


def test_validation_on_another_slice_of_the_test_set_fails(kernel):
    x_test, y_test = kernel["x_test"], kernel["y_test"]
    message = problem(record(kernel["x_train"], kernel["y_train"], (x_test[5_000:], y_test[5_000:])))
    assert message.startswith(
        "The validation data is not the test set. The validation data holds 5,000 images, only part of x_test."
    )


# ----- check_training and the verifier --------------------------------------------------------


def _trained(kernel, x, y):
    from graders.authoring import reference

    recorder.install(TINY)
    model = reference.build_run("eta_large")
    history = model.fit(x, y, batch_size=32, epochs=10, verbose=0, validation_data=(kernel["x_test"], kernel["y_test"]))
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

    from graders.checks.kernel_export import export_cell
    from graders.verify import rebuild
    from graders.verify.export_reader import read_cell_exports

    x, y = kernel["x_train"], kernel["y_train"]
    model, history = _trained(kernel, x[:10_000], y[:10_000])
    monkeypatch.setitem(sys.modules["__main__"].__dict__, "model_eta_large", model)
    export_cell({"grade_id": "test_todo1_training", "names": ["model_eta_large"]}, str(tmp_path))
    exports = read_cell_exports(tmp_path / "test_todo1_training")
    item = exports["manifest"]["items"]["model_eta_large"]
    rebuilt = rebuild.rebuild_model(item, exports["arrays"], "model_eta_large")
    (rec,) = recorder.fit_records(rebuilt)
    np.testing.assert_array_equal(rec["train"]["images"], recorder.fit_records(model)[0]["train"]["images"])
    assert "holds 10,000 images, only part of x_train" in problem(rec)
    with pytest.raises(GradingFailure, match="holds 10,000 images"):
        data_checks.check_fit_data(rebuilt, TINY)
