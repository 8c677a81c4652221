"""Plain-data descriptions of Keras models, shared by the checks and the expectations.

The expectations in ``expected.json`` are these descriptions of the reference
models, so a student's model and the reference are compared in one vocabulary.
"""

from __future__ import annotations

import math

#: Layer attributes that define the homework's architecture, by layer class.
ARCHITECTURE_FIELDS = {
    "Conv2D": ("filters", "kernel_size", "strides", "padding", "activation"),
    "MaxPooling2D": ("pool_size", "strides", "padding"),
    "Flatten": (),
    "Dense": ("units", "activation"),
}

#: Layers that only apply an activation; folded into the layer before them, so
#: ``Conv2D(32, 3)`` followed by ``Activation("relu")`` reads as ``Conv2D(..., relu)``.
_ACTIVATION_LAYERS = {"Activation": "activation", "ReLU": "relu", "Softmax": "softmax"}


def _plain(value):
    """Tuples and lists become lists, so descriptions round-trip through JSON."""
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    return value


#: Other names of the same activation (``tf.nn.softmax.__name__`` is ``softmax_v2``).
_ACTIVATION_ALIASES = {"softmax_v2": "softmax"}


def _activation_name(value) -> str:
    """A plain name for an activation given as a name, a function or a serialized dict."""
    if value is None:
        return "linear"
    if isinstance(value, dict):  # Keras 3 serializes a non-Keras function as a dict
        value = value.get("config") if isinstance(value.get("config"), str) else value.get("class_name")
    name = value if isinstance(value, str) else getattr(value, "__name__", str(value))
    return _ACTIVATION_ALIASES.get(name, name)


def _shape_without_batch(shape) -> list:
    return [None if dim is None else int(dim) for dim in tuple(shape)[1:]]


def model_layers(model) -> list:
    """The model's layers, without the InputLayer that functional models list."""
    return [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]


def model_input_shape(model):
    """The declared input shape without the batch axis, or ``None`` if never declared."""
    try:
        return _shape_without_batch(model.input_shape if hasattr(model, "input_shape") else model.inputs[0].shape)
    except (AttributeError, ValueError, IndexError, TypeError):
        return None


def describe_layers(model) -> list[dict]:
    """One dict per layer: its class, defining settings, output shape and parameter count.

    Output shapes exclude the batch axis, e.g. ``[26, 26, 32]`` for the first Conv2D.
    """
    input_shape = model_input_shape(model)
    shape = None if input_shape is None else (None, *input_shape)
    described: list[dict] = []
    for layer in model_layers(model):
        kind = type(layer).__name__
        config = layer.get_config()
        if shape is not None:
            try:
                shape = tuple(layer.compute_output_shape(shape))
            except Exception:  # a layer that cannot say: leave the shape unknown
                shape = None
        if kind in _ACTIVATION_LAYERS and described:
            name = config.get("activation", _ACTIVATION_LAYERS[kind])
            previous = described[-1]
            if previous.get("activation", "linear") == "linear":
                previous["activation"] = _activation_name(name)
                previous["output_shape"] = None if shape is None else _shape_without_batch(shape)
                continue
        entry = {"class": kind}
        for field in ARCHITECTURE_FIELDS.get(kind, ()):
            if field == "activation":  # the function itself: tf.nn.relu and "relu" are one thing
                entry[field] = _activation_name(getattr(layer, "activation", None) or config.get(field))
            else:
                entry[field] = _plain(config.get(field))
        entry["output_shape"] = None if shape is None else _shape_without_batch(shape)
        entry["params"] = int(layer.count_params()) if layer.built else None
        described.append(entry)
    return described


def describe_optimizer(model) -> dict:
    """The optimizer's class, learning rate, momentum and Nesterov flag, as plain numbers."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return {"class": None}
    config = optimizer.get_config()
    learning_rate = config.get("learning_rate")
    if isinstance(learning_rate, dict):  # a schedule: report its class, never a number
        learning_rate = learning_rate.get("class_name", "schedule")
    else:
        learning_rate = float(learning_rate)
    return {
        "class": type(optimizer).__name__,
        "learning_rate": learning_rate,
        "momentum": float(config.get("momentum", 0.0) or 0.0),
        "nesterov": bool(config.get("nesterov", False)),
    }


def describe_loss(model) -> str | None:
    """The compiled loss as a snake_case name, e.g. ``categorical_crossentropy``."""
    loss = getattr(model, "loss", None)
    if loss is None:
        return None
    if isinstance(loss, str):
        return loss
    name = getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__
    return str(name)


def describe_model(model) -> dict:
    """Everything the checks compare: input shape, layers, parameters, optimizer, loss."""
    layers = describe_layers(model)
    total = sum(entry["params"] for entry in layers) if all(
        entry["params"] is not None for entry in layers
    ) else None
    return {
        "input_shape": model_input_shape(model),
        "layers": layers,
        "total_params": total,
        "optimizer": describe_optimizer(model),
        "loss": describe_loss(model),
    }


def steps_per_epoch(n_samples: int, batch_size: int) -> int:
    return math.ceil(n_samples / batch_size)
