"""Cross-checks on numbers the student's kernel controls, on validated export items.

Keras keeps each of these facts twice (measured, Keras 3.15): the optimizer's
update count and the history's epochs x steps; the optimizer's learning-rate
variable and its config; the momentum setting and the presence of momentum
buffers. An honest export agrees with itself; a rigged one must forge both
copies consistently. Each check raises ``GradingFailure`` when they disagree.
"""

from __future__ import annotations

import numpy as np

from graders.checks.failures import GradingFailure
from graders.checks.optimizer_identity import KERAS_SGD_PATH, identity_problem


def check_updates(name: str, model: dict, history_name: str, history: dict) -> None:
    """``iterations == params.epochs * params.steps == len(history) * params.steps``.

    ``model``/``history``: a validated model item with an optimizer state and the
    history item whose ``model`` is ``name``.
    """
    state = model.get("optimizer_state")
    if state is None:
        raise GradingFailure(f"{name} has a training history ({history_name}) but no optimizer state.")
    params = history["params"]
    epochs, steps = params.get("epochs"), params.get("steps")
    if epochs is None or steps is None:
        raise GradingFailure(f"{history_name}.params lacks epochs or steps.")
    recorded = len(history["epoch"])
    lengths = {len(values) for values in history["history"].values()}
    if lengths - {recorded}:
        raise GradingFailure(f"{history_name} records {sorted(lengths)} values per metric for {recorded} epochs.")
    iterations = state["iterations"]
    if not iterations == epochs * steps == recorded * steps:
        raise GradingFailure(
            f"{name} made {iterations:,} optimizer updates, but {history_name} records "
            f"{recorded} of epochs={epochs} with {steps} steps each "
            f"({recorded * steps:,} updates): the model and its history do not agree."
        )


def check_learning_rate(name: str, model: dict) -> None:
    """The optimizer's learning-rate variable equals its config's learning_rate (as float32)."""
    state, compiled = model.get("optimizer_state"), model.get("compile")
    if state is None or compiled is None or state["learning_rate"] is None:
        return
    configured = compiled["optimizer"]["learning_rate"]
    if isinstance(configured, dict):
        return  # a schedule: its variable is not a constant to compare
    variable = state["learning_rate"]
    if np.float32(variable) != np.float32(configured):
        raise GradingFailure(f"{name}'s optimizer holds learning rate {variable!r} but its config says {configured!r}.")


def check_momentum_buffers(name: str, model: dict) -> None:
    """Momentum buffers exist, one per trainable weight, exactly when momentum > 0 (SGD)."""
    state, compiled = model.get("optimizer_state"), model.get("compile")
    if state is None or compiled is None or compiled["optimizer"]["class_name"] != "SGD":
        return
    if compiled["optimizer"]["class_path"] != KERAS_SGD_PATH:
        return  # not SGD, whatever its name: the optimizer check says so, in the kernel's words
    momentum = compiled["optimizer"]["momentum"]
    buffers = len(state["momentums"])
    weights = sum(len(layer.get("weights", [])) for layer in model["layers"])
    if momentum > 0 and buffers != weights:
        raise GradingFailure(
            f"{name} is compiled with momentum {momentum} but has {buffers} momentum buffers for {weights} weights."
        )
    if momentum == 0 and buffers:
        raise GradingFailure(f"{name} is compiled without momentum but has {buffers} momentum buffers.")
    impostor = identity_problem("SGD", compiled["optimizer"]["class_path"], state["slots"], momentum, weights)
    if impostor:
        raise GradingFailure(impostor)


def crosscheck_items(items: dict) -> None:
    """All cross-checks for one cell's items: per trained model, and per history with a model."""
    for name, item in items.items():
        if item["kind"] == "model":
            check_learning_rate(name, item)
            check_momentum_buffers(name, item)
    for history_name, item in items.items():
        if item["kind"] == "history" and item["model"] is not None:
            owner = items.get(item["model"])
            if owner is not None and owner["kind"] == "model":
                check_updates(item["model"], owner, history_name, item)
