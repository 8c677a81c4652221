"""Training evidence (graders.checks.evidence): what the recorder keeps of each fit call, the
checks on it, and the out-of-kernel replay (graders.verify.replay). In-process, on the full
data with the tiny budget (seconds); the forged cases are the ways a kernel can claim a
training that did not happen."""

from __future__ import annotations

import numpy as np
import pytest

import hw5_data
from checks.tiny_budget import TINY
from graders.checks import CouldNotCheck, GradingFailure, evidence, recorder
from graders.verify import replay

pytestmark = [pytest.mark.needs_mnist, pytest.mark.usefixtures("tiny_grading_budget")]

STEPS = -(-TINY.n_train // 32)
KEY = b"a fixed key for the tests"


@pytest.fixture(scope="module")
def data():
    """The notebook's arrays while grading: the full data, one-hot labels."""
    import keras

    (x_train, y_train), (x_test, y_test) = hw5_data.load_mnist()
    prepare = lambda images: images.reshape((-1, 28, 28, 1)).astype("float32") / 255.0
    return (
        prepare(x_train),
        keras.utils.to_categorical(y_train, 10),
        prepare(x_test),
        keras.utils.to_categorical(y_test, 10),
    )


@pytest.fixture(autouse=True)
def grading_kernel():
    """The recorder on, as in a grading kernel; no replayer until a test sets one."""
    recorder.install(TINY)
    evidence.set_replayer(None, None)
    yield
    evidence.set_replayer(None, None)


def _model(learning_rate=0.05, momentum=0.0):
    import keras

    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate, momentum=momentum),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _trained(data, epochs=3, **settings):
    x, y, xt, yt = data
    model = _model(**settings)
    model.fit(x, y, batch_size=32, epochs=epochs, validation_data=(xt, yt), verbose=0)
    return model


def _check(model, replayed_epoch=None):
    """check_evidence as the verifier runs it: the replay on, and (for the tests) the drawn
    epoch pinned by finding a label whose draw is ``replayed_epoch``."""
    replay.switch_on(KEY)
    epochs = sum(len(segment["orders"]) for segment in evidence.segments_of(model) or [])
    label = "run"
    if replayed_epoch is not None:
        label = next(f"run{n}" for n in range(1000) if evidence.draw_epoch(KEY, f"run{n}", epochs) == replayed_epoch)
    evidence.check_evidence(model, label, required=True)


def _exported_and_rebuilt(model, history, tmp_path, monkeypatch, name: str):
    """``model`` as the verifier sees it: exported with ``history`` by one cell, read by the
    strict reader, rebuilt."""
    import sys

    from graders.checks.kernel_export import export_cell
    from graders.verify import rebuild
    from graders.verify.export_reader import read_cell_exports

    namespace = vars(sys.modules["__main__"])
    monkeypatch.setitem(namespace, f"model_{name}", model)
    monkeypatch.setitem(namespace, f"history_{name}", history)
    export_cell({"grade_id": name, "names": [f"history_{name}", f"model_{name}"]}, str(tmp_path))
    exports = read_cell_exports(tmp_path / name)
    return rebuild.rebuild_model(exports["manifest"]["items"][f"model_{name}"], exports["arrays"], f"model_{name}")


# ----- what the recorder keeps -----------------------------------------------------------


def test_each_epoch_of_a_fit_keeps_its_start_and_the_end_its_own_state(data):
    model = _trained(data, epochs=3, momentum=0.9)
    (segment,) = evidence.segments_of(model)
    assert segment["problem"] is None and segment["batch_size"] == 32
    assert len(segment["orders"]) == 3 and len(segment["states"]) == 4
    assert [state["iterations"] for state in segment["states"]] == [None, STEPS, 2 * STEPS, 3 * STEPS]
    assert len(segment["states"][1]["slots"]) == 4  # one momentum buffer per weight
    for order in segment["orders"]:  # every budget row once, in a fresh order each epoch
        np.testing.assert_array_equal(np.sort(order), np.arange(TINY.n_train))
    assert not np.array_equal(segment["orders"][0], segment["orders"][1])
    for kept, now in zip(segment["states"][-1]["weights"], model.get_weights()):
        np.testing.assert_array_equal(kept, now)
    assert model.optimizer.iterations.numpy() == 3 * STEPS  # Keras counts as before


def test_shuffle_false_trains_the_rows_in_the_order_given(data):
    x, y, xt, yt = data
    model = _model()
    picked = np.random.default_rng(1).permutation(len(x))
    model.fit(x[picked], y[picked], batch_size=32, epochs=2, shuffle=False, validation_data=(xt, yt), verbose=0)
    first, second = evidence.segments_of(model)[0]["orders"]
    np.testing.assert_array_equal(first, second)
    budget_x, _ = replay.training_rows("fast")
    given_order = recorder.row_hashes(x[picked])
    wanted = recorder.row_hashes(budget_x[first])
    assert np.all(np.diff(np.flatnonzero(np.isin(given_order, wanted))) > 0)


def test_an_honest_training_passes_and_replays_exactly(data):
    model = _trained(data, epochs=3, momentum=0.9)
    (segment,) = evidence.segments_of(model)
    for epoch in range(3):
        replayed = replay.replay_epoch(model, segment, epoch)
        assert evidence.replay_gap(replayed, segment["states"][epoch], segment["states"][epoch + 1]) <= 1e-6
        _check(model, replayed_epoch=epoch)


# ----- forged training -------------------------------------------------------------------


def test_a_model_never_trained_by_fit_fails_while_grading(data):
    model = _model()
    with pytest.raises(GradingFailure, match="no training of this model by fit"):
        _check(model)
    evidence.check_evidence(model, "run", required=False)  # outside grading: not judged


def test_weights_changed_after_training_fail(data):
    model = _trained(data, epochs=2)
    other = _trained(data, epochs=2, learning_rate=0.2)
    model.set_weights(other.get_weights())
    with pytest.raises(GradingFailure, match="changed after fit"):
        _check(model)


def test_a_learning_rate_changed_after_training_fails(data):
    model = _trained(data, epochs=2, learning_rate=0.01)
    model.optimizer.learning_rate = 1.0
    with pytest.raises(GradingFailure, match="learning rate 0.01, but its optimizer now says 1"):
        _check(model)


def test_a_model_trained_before_its_graded_fit_fails(data):
    x, y, xt, yt = data
    model = _model()
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(7)
    model.fit(x, y, batch_size=32, epochs=2, validation_data=(xt, yt), verbose=0)
    with pytest.raises(GradingFailure, match="already made 7 updates"):
        _check(model)


@pytest.mark.parametrize("epoch", [0, 2])
def test_a_forged_epoch_fails_its_replay(data, epoch):
    """The state after ``epoch`` replaced by another training's (same shapes, consistent
    counts): only the replay can see it, and it does whichever epoch it draws."""
    model = _trained(data, epochs=3, learning_rate=0.05)
    other = _trained(data, epochs=3, learning_rate=0.2)
    (segment,) = evidence.segments_of(model)
    forged = evidence.segments_of(other)[0]["states"][epoch + 1]
    segment["states"][epoch + 1] = {**segment["states"][epoch + 1], "weights": forged["weights"]}
    if epoch + 1 == 3:
        model.set_weights(forged["weights"])
    with pytest.raises(GradingFailure, match=f"epoch {epoch + 1}, replayed by the grader"):
        _check(model, replayed_epoch=epoch)


def test_a_standing_still_chain_fails_even_at_a_tiny_learning_rate(data):
    """lr 1e-5 moves the weights by about 1e-5 an epoch: a chain that claims the updates
    but never moves is judged against the replay's own move, not an absolute tolerance."""
    model = _trained(data, epochs=2, learning_rate=0.00001)
    (segment,) = evidence.segments_of(model)
    for state in segment["states"][1:]:
        state["weights"] = segment["states"][0]["weights"]
    model.set_weights(segment["states"][0]["weights"])
    with pytest.raises(GradingFailure, match="replayed by the grader"):
        _check(model, replayed_epoch=1)


def test_switched_off_the_replay_lets_a_forged_epoch_through(data):
    """The check that makes the difference: without the replay, the forged chain passes."""
    model = _trained(data, epochs=3, learning_rate=0.05)
    other = _trained(data, epochs=3, learning_rate=0.2)
    (segment,) = evidence.segments_of(model)
    segment["states"][2] = {**segment["states"][2], "weights": evidence.segments_of(other)[0]["states"][2]["weights"]}
    evidence.check_evidence(model, "run", required=True)  # no replayer: the kernel's view
    with pytest.raises(GradingFailure):
        _check(model, replayed_epoch=1)


def test_a_layer_that_draws_random_numbers_is_a_limit_not_a_failure(data):
    import keras

    x, y, xt, yt = data
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dropout(0.2),
                              keras.layers.Dense(10, activation="softmax")])  # fmt: skip
    model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=1, validation_data=(xt, yt), verbose=0)
    with pytest.raises(CouldNotCheck, match="Dropout"):
        _check(model)


def _history_for(model, values: dict, params: dict):
    import keras

    history = keras.callbacks.History()
    history.set_model(model)
    history.history, history.params, history.epoch = values, params, list(range(len(values["accuracy"])))
    return history


def _history_by_hand(data):
    """An untrained model whose update count and History are written to agree."""
    from graders.checks import training_checks

    model = _model()
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(10 * STEPS)
    accuracy = training_checks.recompute_accuracy(model, "fast")
    values = {"loss": [2.3] * 10, "accuracy": [accuracy] * 10, "val_loss": [2.3] * 10, "val_accuracy": [accuracy] * 10}
    return model, _history_for(model, values, {"epochs": 10, "steps": STEPS})


def _copied_weights(data):
    """A trained model's weights, update count and history copied into another model, its
    momentum buffers filled."""
    trained = _trained(data, epochs=10)
    model = _model(momentum=0.9)
    model.set_weights(trained.get_weights())
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(trained.optimizer.iterations)
    for slot in model.optimizer.variables[2:]:
        slot.assign(np.full(slot.shape, 1e-3, dtype="float32"))
    return model, _history_for(model, dict(trained.history.history), dict(trained.history.params))


def _rewritten_record(data):
    """Trained at learning rate 0.05, then set to 0.5 with the recorded training rewritten to agree."""
    x, y, xt, yt = data
    model = _model(learning_rate=0.05)
    history = model.fit(x, y, batch_size=32, epochs=10, validation_data=(xt, yt), verbose=0)
    model.optimizer.learning_rate = 0.5
    for segment in evidence.segments_of(model):
        segment["optimizer"]["config"]["learning_rate"] = 0.5
    return model, history


@pytest.mark.parametrize("forge", [_history_by_hand, _copied_weights, _rewritten_record], ids=lambda f: f.__name__[1:])
def test_each_forgery_fails_check_training_and_earns_the_point_with_the_evidence_switched_off(data, monkeypatch, forge):
    """Issue 17's forgeries, in process, through check_training as the verifier runs it (the
    replay on). Without the evidence check each one earns the training point."""
    from graders.checks import check_training

    model, history = forge(data)
    replay.switch_on(KEY)
    with pytest.raises(GradingFailure):
        check_training(history, model, "eta_large")
    monkeypatch.setattr(evidence, "check_evidence", lambda *args, **kwargs: None)
    check_training(history, model, "eta_large")  # switched off: the forgery's point


def test_the_evidence_crosses_the_export_and_replays_on_the_rebuilt_model(data, tmp_path, monkeypatch):
    """Kernel to verifier: the exporter carries the segments with the trained model of a cell
    that exports its history, the strict reader reads them, the rebuilt model holds them,
    and the replay on it lands on the recorded states."""
    import sys

    from graders.checks.kernel_export import export_cell
    from graders.verify import rebuild
    from graders.verify.export_reader import read_cell_exports

    x, y, xt, yt = data
    model = _model(momentum=0.9)
    history = model.fit(x, y, batch_size=32, epochs=2, validation_data=(xt, yt), verbose=0)
    namespace = vars(sys.modules["__main__"])
    monkeypatch.setitem(namespace, "model_trained", model)
    monkeypatch.setitem(namespace, "history_trained", history)
    monkeypatch.setitem(namespace, "model_alone", _trained(data, epochs=1))
    export_cell({"grade_id": "training", "names": ["history_trained", "model_trained", "model_alone"]}, str(tmp_path))
    exports = read_cell_exports(tmp_path / "training")
    items = exports["manifest"]["items"]
    assert items["model_alone"].get("evidence") is None  # no history in the cell: not carried
    rebuilt = rebuild.rebuild_model(items["model_trained"], exports["arrays"], "model_trained")
    (segment,) = evidence.segments_of(rebuilt)
    (kept,) = evidence.segments_of(model)
    np.testing.assert_array_equal(segment["orders"][1], kept["orders"][1])
    for epoch in (0, 1):
        _check(rebuilt, replayed_epoch=epoch)
    segment["states"][1]["slots"] = {name: value * 0 for name, value in segment["states"][1]["slots"].items()}
    with pytest.raises(GradingFailure, match="epoch 2, replayed"):
        _check(rebuilt, replayed_epoch=1)  # momentum buffers zeroed: the replay differs


def test_an_epoch_on_part_of_x_train_fails_even_with_its_fit_record_gone(data):
    x, y, xt, yt = data
    model = _model()
    model.fit(x[:30000], y[:30000], batch_size=32, epochs=1, validation_data=(xt, yt), verbose=0)
    object.__delattr__(model, recorder.FIT_RECORDS_ATTRIBUTE)  # the data check has nothing to judge
    with pytest.raises(GradingFailure, match="Epoch 1 of this model's training used .* of the 200 in x_train"):
        evidence.check_evidence(model, "run", required=True)


def test_the_warm_up_readies_the_replay_of_a_rebuilt_homework_model():
    """The verifier traces each graded run's step while it waits; the model it later
    rebuilds from an honest export must find that step (no trace after go)."""
    import keras

    from graders.checks.kernel_export import _model_item, _Writer
    from graders.verify import rebuild

    assert replay.warm_up(batch_size=4) >= 1
    student = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            keras.layers.Conv2D(32, (3, 3), strides=(1, 1), padding="valid", activation="relu"),
            keras.layers.MaxPooling2D((2, 2)),
            keras.layers.Flatten(),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    student.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.7), loss="categorical_crossentropy", metrics=["accuracy"]
    )
    writer = _Writer()
    rebuilt = rebuild.rebuild_model(_model_item(student, "student", writer), writer.arrays)
    spec = evidence.optimizer_spec(student.optimizer)
    assert replay._signature(rebuilt, spec) in replay._replayers


def test_a_students_own_optimizer_class_replays_as_the_keras_class_it_is(data, tmp_path, monkeypatch):
    """Adam under the name SGD: the optimizer check fails it by its class; its training is
    still the training it claims (Adam's), and replays as Adam out of kernel."""
    import keras

    class SGD(keras.optimizers.Adam):
        def __init__(self, learning_rate=0.01, momentum=0.0, **kwargs):
            super().__init__(learning_rate=learning_rate, **kwargs)
            self.momentum = momentum

    x, y, xt, yt = data
    model = _model()
    model.compile(optimizer=SGD(0.01), loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=2, validation_data=(xt, yt), verbose=0)
    assert evidence.segments_of(model)[0]["optimizer"]["class_name"] == "Adam"
    rebuilt = _exported_and_rebuilt(model, history, tmp_path, monkeypatch, "adam")
    for epoch in (0, 1):
        _check(rebuilt, replayed_epoch=epoch)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"class_weight": {digit: 1.0 for digit in range(10)}}, "class_weight"),
        ({"regularizer": True}, "kernel regularizer"),
    ],
)
def test_training_the_replay_cannot_rebuild_is_a_limit_not_a_failure(data, change, named):
    """Settings that change training but that the rebuilt model leaves out: a person looks."""
    import keras

    x, y, xt, yt = data
    model = _model()
    if change.pop("regularizer", False):
        model = keras.Sequential(
            [keras.Input((28, 28, 1)), keras.layers.Flatten(),
             keras.layers.Dense(10, activation="softmax", kernel_regularizer="l2")]
        )  # fmt: skip
        model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=1, validation_data=(xt, yt), verbose=0, **change)
    with pytest.raises(CouldNotCheck, match=named):
        _check(model)


def test_a_model_whose_layers_are_built_by_its_first_step_keeps_them_from_the_first_epoch(data, tmp_path, monkeypatch):
    """A subclassed model built with model.build(shape) has no weights until Keras's first
    training step: the recorder builds it first, so every state holds every weight, and its
    training replays on the chain the verifier rebuilds."""
    import keras

    class Small(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(4, 3, activation="relu")
            self.flat = keras.layers.Flatten()
            self.out = keras.layers.Dense(10, activation="softmax")

        def call(self, x):
            return self.out(self.flat(self.conv(x)))

    x, y, xt, yt = data
    model = Small()
    model.build((None, 28, 28, 1))
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=2, validation_data=(xt, yt), verbose=0)
    (segment,) = evidence.segments_of(model)
    assert segment["problem"] is None and [len(state["weights"]) for state in segment["states"]] == [4, 4, 4]
    rebuilt = _exported_and_rebuilt(model, history, tmp_path, monkeypatch, "small")
    for epoch in (0, 1):
        _check(rebuilt, replayed_epoch=epoch)
