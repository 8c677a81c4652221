"""Replay one epoch of a model's recorded training, out of kernel, on the instructor's data.

The verifier sets :func:`replay_epoch` as the replayer of ``graders.checks.evidence``:
``check_training`` then replays one epoch of each trained model, drawn by a key the kernel
never saw, and compares where it lands with the next recorded state. The replay is the
kernel's own path: the epoch's rows of the budget's training data (the instructor's
``hw5_data``, never the student's arrays), in the recorded order, batched into the same
``tf.data`` pipeline, trained by Keras's ``fit`` on a copy of the rebuilt model compiled
with the Keras optimizer the recording names. Measured: this lands exactly on the
kernel's next state (bench/replay_cost.py).

One copy is kept per architecture, optimizer settings and loss (the learning rate is a
variable, so the three runs of ``define_model`` share one traced step).
"""

from __future__ import annotations

import functools
import json
import math

import numpy as np

from graders.checks import evidence
from graders.checks.describe import model_layers
from graders.checks.failures import CouldNotCheck, GradingFailure

_replayers: dict[str, object] = {}


@functools.lru_cache(maxsize=2)
def training_rows(budget_name: str) -> tuple[np.ndarray, np.ndarray]:
    """The budget's training images ``(n, 28, 28, 1)`` float32 and classes ``(n,)`` int64,
    in the order the recorder numbers them (``recorder.budget_row_numbers``)."""
    import hw5_data
    from graders.checks.data_checks import budget_arrays

    (images, labels), _ = budget_arrays(hw5_data.BUDGETS[budget_name])
    x_train, _ = hw5_data.preprocess(images, labels)
    return x_train, np.asarray(labels, dtype=np.int64)


def _limit(detail: str) -> CouldNotCheck:
    return CouldNotCheck.about("the grader could not replay this model's training", detail)


def _optimizer(spec: dict | None):
    """A fresh Keras optimizer of the class and config a segment names (plain numbers only)."""
    import keras

    if spec is None or spec["class_name"] not in evidence.OPTIMIZER_CLASSES:
        raise _limit(f"its optimizer ({(spec or {}).get('class_name')}) is not one the replay rebuilds")
    config = {}
    for key, value in spec["config"].items():
        if value is not None and not isinstance(value, (bool, int, float)):
            raise _limit(f"its optimizer's {key} is a {type(value).__name__}, not a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise _limit(f"its optimizer's {key} is {value}")
        config[key] = value
    if not isinstance(config.get("learning_rate"), (int, float)):
        raise _limit("its optimizer has no learning rate the replay can set")
    try:
        return getattr(keras.optimizers, spec["class_name"]).from_config(config)
    except (TypeError, ValueError) as error:
        raise _limit(f"Keras refused its optimizer's config: {error}") from None


def _signature(model, spec: dict) -> str:
    layers = [
        (type(layer).__name__, {key: value for key, value in layer.get_config().items() if key != "name"})
        for layer in model_layers(model)
    ]
    settings = {key: value for key, value in spec["config"].items() if key != "learning_rate"}
    return json.dumps(
        [layers, list(model.inputs[0].shape[1:]), spec["class_name"], settings, repr(model.loss)],
        sort_keys=True,
        default=str,
    )


def _replayer(model, spec: dict):
    """A compiled copy of ``model``'s architecture with the segment's optimizer (cached)."""
    import keras

    key = _signature(model, spec)
    if key not in _replayers:
        # from its config, never clone_model: that also rebuilds the compiled optimizer from
        # its config, and a student's own optimizer class cannot be found here
        if isinstance(model, keras.Sequential):
            copy = keras.Sequential.from_config(model.get_config())
        else:
            copy = keras.models.clone_model(model)
        copy.compile(optimizer=_optimizer(spec), loss=model.loss)
        _replayers[key] = copy
    return _replayers[key]


def _set_state(copy, state: dict, learning_rate: float) -> None:
    variables = evidence.model_variables(copy)
    if len(variables) != len(state["weights"]):
        raise _limit(f"the recording holds {len(state['weights'])} weights; the model has {len(variables)}")
    for variable, value in zip(variables, state["weights"]):
        if tuple(variable.shape) != value.shape:
            raise _limit(f"a recorded weight of shape {list(value.shape)} for one of {list(variable.shape)}")
        variable.assign(value)
    optimizer = copy.optimizer
    if not optimizer.built:
        optimizer.build(copy.trainable_variables)
    optimizer.iterations.assign(state["iterations"] or 0)
    optimizer.learning_rate = float(learning_rate)
    slots = evidence.slot_variables(optimizer, variables)
    if state["unmapped"] or set(state["slots"]) - set(slots):
        raise _limit("the recorded optimizer state does not fit the replay's optimizer")
    for name, variable in slots.items():
        value = state["slots"].get(name)
        if value is not None and value.shape != tuple(variable.shape):
            raise _limit(f"a recorded optimizer slot of shape {list(value.shape)} for one of {list(variable.shape)}")
        variable.assign(np.zeros(variable.shape, dtype="float32") if value is None else value)


def replay_epoch(model, segment: dict, epoch: int) -> dict:
    """The state one epoch of ``segment`` (number ``epoch``) reaches from its recorded start,
    trained here on the instructor's data (``evidence.state_of``'s form)."""
    import hw5_data

    spec = segment["optimizer"]
    copy = _replayer(model, _checked_spec(spec))
    _set_state(copy, segment["states"][epoch], spec["config"]["learning_rate"])
    images, classes = training_rows(hw5_data.active_budget().name)
    order = segment["orders"][epoch]
    if len(order) and (order.min() < 0 or order.max() >= len(images)):
        raise GradingFailure(
            "The model's recorded training names images that are not in the training data. "
            "Train the model with fit alone."
        )
    shape = tuple(segment["image_shape"])
    if math.prod(shape) != math.prod(images.shape[1:]) or segment["labels"] is None:
        raise _limit(f"it was trained on images of shape {list(shape)} or labels the replay does not write")
    x = images[order].reshape((len(order), *shape))
    y = evidence.canonical_labels(segment["labels"], classes[order])
    batch = segment["batch_size"]
    pipeline = evidence.ordered_batches(x, y, batch, [np.arange(len(order))])
    copy.fit(pipeline, epochs=1, steps_per_epoch=evidence.steps(len(order), batch), shuffle=False, verbose=0)
    return evidence.state_of(copy)


def _checked_spec(spec):
    if spec is None:
        raise _limit("no optimizer was recorded with its training")
    return spec


def _expected_model(architecture: dict):
    """A Keras model of an expected architecture (``expected.json``), or None when it holds a
    layer this reader does not build."""
    import keras

    built = []
    for layer in architecture["layers"]:
        kind = layer["class"]
        if kind == "Conv2D":
            built.append(
                keras.layers.Conv2D(
                    layer["filters"],
                    tuple(layer["kernel_size"]),
                    strides=tuple(layer["strides"]),
                    padding=layer["padding"],
                    activation=layer["activation"],
                )
            )
        elif kind == "MaxPooling2D":
            built.append(
                keras.layers.MaxPooling2D(
                    tuple(layer["pool_size"]), strides=tuple(layer["strides"]), padding=layer["padding"]
                )
            )
        elif kind == "Flatten":
            built.append(keras.layers.Flatten())
        elif kind == "Dense":
            built.append(keras.layers.Dense(layer["units"], activation=layer["activation"]))
        else:
            return None
    return keras.Sequential([keras.Input(tuple(architecture["input_shape"])), *built])


def warm_up(batch_size: int | None = None) -> int:
    """Ready the replay of every graded run as the homework writes it (its architecture, SGD
    with its momentum, its loss: ``expected.json``), its training step traced, before any
    export arrives: a rebuilt model of the same form then replays without tracing. Returns
    how many replays were readied; a form this cannot build is simply not readied."""
    import keras

    from graders.checks.expected_data import expected

    deterministic()
    settings = expected()
    batch_size = batch_size or settings["batch_size"]
    readied = 0
    for run in settings["runs"].values():
        architecture = settings["architectures"][run["builder"]]
        model = _expected_model(architecture)
        if model is None:
            continue
        optimizer = keras.optimizers.SGD(learning_rate=run["learning_rate"], momentum=run["momentum"])
        model.compile(optimizer=optimizer, loss=architecture["loss"])
        spec = evidence.optimizer_spec(optimizer)
        if _signature(model, spec) in _replayers:
            continue
        copy = _replayer(model, spec)
        shape = tuple(architecture["input_shape"])
        images = np.zeros((batch_size + 1, *shape), dtype="float32")
        labels = np.eye(10, dtype="float32")[np.zeros(batch_size + 1, dtype=int)]
        pipeline = evidence.ordered_batches(images, labels, batch_size, [np.arange(batch_size + 1)])
        copy.fit(pipeline, epochs=1, steps_per_epoch=2, shuffle=False, verbose=0)
        readied += 1
    return readied


def deterministic() -> None:
    """TensorFlow's deterministic ops, as the grading kernel has them (``hw5_data.prepare_session``):
    without them a replay lands within about 1e-7 of the kernel's state, not on it."""
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()


def switch_on(key: bytes) -> None:
    """Replay one epoch per checked model, drawn by ``key`` (the host's, per submission)."""
    deterministic()
    evidence.set_replayer(replay_epoch, key)
