"""Checks on training: the history, the number of updates, and recomputed accuracy.

Accuracy is never taken from the history alone: the check predicts the test data
itself, loaded afresh by the notebook's own loader, and compares.
"""

from __future__ import annotations

import functools

import numpy as np

from graders.checks import evidence, recorder
from graders.checks.data_checks import budget_arrays, check_fit_data, forget_budget_data
from graders.checks.describe import steps_per_epoch
from graders.checks.expected_data import expected, thresholds
from graders.checks.failures import GradingFailure, public_check
from graders.checks.model_checks import matches_run, require_model


@functools.lru_cache(maxsize=2)
def _test_data(budget_name: str):
    """The budget's test images ``(n, 28, 28, 1)`` and integer labels ``(n,)``."""
    import hw5_data

    budget = hw5_data.BUDGETS[budget_name]
    _, (images, labels) = budget_arrays(budget)
    x_test, _ = hw5_data.preprocess(images, labels)
    return x_test, np.asarray(labels, dtype=int)


def forget_test_data() -> None:
    """Drop the cached test data (after another ``hw5_data`` module was put in place)."""
    _test_data.cache_clear()
    forget_budget_data()


def _active_budget():
    import hw5_data

    return hw5_data.active_budget()


def recompute_accuracy(model, budget_name: str) -> float:
    """The model's accuracy on the budget's test images, predicted here.

    The arg-max is Keras's own (``keras.ops.argmax``), as in the ``accuracy``
    metric, so a model whose outputs hold NaN is scored the way its history was.
    """
    import keras

    x_test, labels = _test_data(budget_name)
    # predict_on_batch per 500 images: the same forward pass as predict(), without its
    # data adapter and callbacks (0.1-0.2 s per model, paid in the kernel and the verifier).
    batches = [model.predict_on_batch(x_test[start : start + 500]) for start in range(0, len(x_test), 500)]
    probabilities = (
        np.concatenate([np.asarray(batch, dtype="float32") for batch in batches])
        if batches
        else np.zeros((0, 10), dtype="float32")
    )
    if probabilities.shape != (len(labels), 10):
        raise GradingFailure(
            f"The model predicts an array of shape {probabilities.shape} for {len(labels)} images; "
            f"expected ({len(labels)}, 10): one probability per digit class."
        )
    predicted = np.asarray(keras.ops.convert_to_numpy(keras.ops.argmax(probabilities, axis=-1)))
    return float(np.mean(predicted == labels))


def _history_values(history, key: str) -> list[float]:
    values = history.history.get(key)
    if values is None:
        return []
    return [float(value) for value in values]


@public_check
def check_history(history, epochs: int | None = None) -> None:
    """``history`` is what ``model.fit`` returned, with per-epoch accuracy and validation accuracy."""
    import keras

    epochs = epochs or expected()["epochs"]
    if not isinstance(history, keras.callbacks.History) or not isinstance(getattr(history, "history", None), dict):
        raise GradingFailure(
            f"Expected the History object returned by model.fit(...), found a {type(history).__name__}."
        )
    if "accuracy" not in history.history:
        raise GradingFailure("The history has no 'accuracy': compile the model with metrics=['accuracy'].")
    if "val_accuracy" not in history.history:
        raise GradingFailure("The history has no 'val_accuracy': pass validation_data=(x_test, y_test) to fit.")
    found = len(_history_values(history, "accuracy"))
    if found != epochs:
        raise GradingFailure(f"The history covers {found} epochs; expected epochs={epochs}.")


@public_check
def check_training(history, model, run: str) -> None:
    """The model was trained as the homework says, and ``history`` records that training.

    Checks, in order: the history's epochs; that the history belongs to this model;
    what each ``fit`` call trained and validated on, where the grading setup recorded
    it (``data_checks.check_fit_data``: x_train/y_train and x_test/y_test, in any
    order); the number of SGD updates (10 epochs x ceil(n_train / 32) batches: this catches a
    wrong batch size, epoch count or training set); the training evidence
    (``evidence.check_evidence``: the recorded epochs end in this model, and out of kernel
    one drawn epoch replays); the accuracy recomputed on the
    test data against the history's last ``val_accuracy``; and, for a model whose
    architecture and optimizer are right, a calibrated accuracy floor.
    """
    settings = expected()
    check_history.__wrapped__(history)
    require_model(model, "The model")
    if getattr(history, "model", None) is not model:
        raise GradingFailure(
            "This history was not produced by training this model: assign the result of "
            "the same model's fit(...) call (history = model.fit(...))."
        )
    budget = _active_budget()
    check_fit_data(model, budget)
    n_train = budget.n_train
    updates = int(np.asarray(model.optimizer.iterations))
    wanted_updates = settings["epochs"] * steps_per_epoch(n_train, settings["batch_size"])
    if updates != wanted_updates:
        raise GradingFailure(
            f"The model made {updates:,} SGD updates; training once on x_train ({n_train:,} images) "
            f"with batch_size={settings['batch_size']} for epochs={settings['epochs']} makes "
            f"{wanted_updates:,}. Check the batch size, the epochs, the training data, and that "
            "fit is called once on a freshly built model."
        )
    # The weights graded are what the recorded training produced (replayed out of kernel).
    evidence.check_evidence(model, run, required=recorder.installed() or evidence.replaying())
    limits = thresholds()
    accuracy = recompute_accuracy(model, budget.name)
    last_validation = _history_values(history, "val_accuracy")[-1]
    tolerance = limits["history_agreement"]
    if not abs(accuracy - last_validation) <= tolerance:  # also fails on NaN
        raise GradingFailure(
            f"The model's accuracy on the test data is {accuracy:.4f}, but the history's last "
            f"val_accuracy is {last_validation:.4f}. Pass validation_data=(x_test, y_test) "
            "and do not change the model after training it."
        )
    floor = limits["budgets"][budget.name][run].get("min_test_accuracy")
    if floor is not None and matches_run(model, run) and accuracy < floor:
        raise GradingFailure(
            f"The trained model reaches {accuracy:.4f} test accuracy under the '{budget.name}' "
            "grading budget, lower than a correct solution reaches. Check the data you train on "
            "(x_train, y_train after preprocessing) and the training settings."
        )
    # Feedback for the student, and a record that makes grading runs comparable.
    print(
        f"{run}: {settings['epochs']} epochs, {updates:,} updates, "
        f"test accuracy {accuracy:.4f} ({budget.name} budget: {n_train:,} training images)"
    )
