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
_ACTIVATION_ALIASES = {"softmax_v2": "softmax", "log_softmax_v2": "log_softmax", "swish": "silu"}

#: The activations an unnamed function is compared with (:func:`identify_activation`).
KNOWN_ACTIVATIONS = (
    "relu",
    "softmax",
    "sigmoid",
    "tanh",
    "linear",
    "elu",
    "selu",
    "softplus",
    "softsign",
    "gelu",
    "relu6",
    "silu",
    "exponential",
    "hard_sigmoid",
    "leaky_relu",
    "mish",
)


def _function_name(value) -> str:
    """The name an activation is spelled with: a string, a serialized dict or a function's name."""
    if value is None:
        return "linear"
    if isinstance(value, dict):  # Keras 3 serializes a non-Keras function as a dict
        value = value.get("config") if isinstance(value.get("config"), str) else value.get("class_name")
    name = value if isinstance(value, str) else getattr(value, "__name__", str(value))
    return _ACTIVATION_ALIASES.get(name, name)


def _probe_vector():
    """A (2, 12) float32 batch spanning negative and positive values, where activations differ."""
    import numpy as np

    return np.linspace(-4.0, 4.0, 24, dtype="float32").reshape(2, 12)


def identify_activation(function) -> str | None:
    """The name of the Keras activation that ``function`` computes, or None.

    Compared on a probe batch, so ``tf.nn.relu``, ``keras.ops.relu`` or
    ``lambda x: tf.nn.relu(x)`` all read as ``"relu"``. Only a callable is probed (a
    name is read as it is spelled); anything it raises means "not identified".
    """
    import numpy as np

    if not callable(function):
        return None
    import keras

    x = _probe_vector()
    try:
        got = np.asarray(keras.ops.convert_to_numpy(function(keras.ops.convert_to_tensor(x))), dtype="float64")
    except Exception:  # a function that does not take a tensor computes no known activation
        return None
    for name in KNOWN_ACTIVATIONS:
        try:
            want = np.asarray(keras.ops.convert_to_numpy(keras.activations.get(name)(x)), dtype="float64")
        except Exception:  # an activation this Keras does not have
            continue
        if got.shape == want.shape and np.allclose(got, want, rtol=1e-5, atol=1e-6):
            return name
    return None


def _activation_name(value) -> str:
    """A plain name for an activation given as a name, a function or a serialized dict.

    A function is read as the activation it computes (``tf.nn.softmax`` -> ``softmax``);
    one that computes none of Keras's keeps its own name, which the checks then report.
    """
    name = _function_name(value)
    if callable(value) and not isinstance(value, type) and name not in KNOWN_ACTIVATIONS:
        return identify_activation(value) or name
    return name


def _shape_without_batch(shape) -> list:
    return [None if dim is None else int(dim) for dim in tuple(shape)[1:]]


def keras_class(layer) -> type:
    """The nearest class of Keras's own among the layer's classes: a student's
    ``class MyConv(layers.Conv2D)`` reads as ``Conv2D``, which it is (its computation is
    confirmed out of kernel, on probe images)."""
    for klass in type(layer).__mro__:
        if klass.__module__.split(".")[0] == "keras":
            return klass
    return type(layer)


def keras_class_name(layer) -> str:
    """``keras_class(layer).__name__``."""
    return keras_class(layer).__name__


def _is_model(layer) -> bool:
    try:
        import keras
    except ImportError:  # pragma: no cover - the checks run with Keras
        return False
    return isinstance(layer, keras.Model)


def model_layers(model) -> list:
    """The model's computing layers in order, without InputLayers, with nested models
    (a Sequential inside a Sequential, a subclassed model's sub-models) opened up.

    A subclassed ``keras.Model`` lists the layers it tracks in the order its
    ``__init__`` created them: the homework's chain, when written as one.
    """
    found = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        if _is_model(layer) and layer is not model:
            found.extend(model_layers(layer))
        else:
            found.append(layer)
    return found


def model_input_shape(model):
    """The declared input shape without the batch axis, or ``None`` if never declared.

    Read from ``keras.Input``/``input_shape=``, else from ``model.build(shape)`` or the
    model's first call (Keras records the shape it was built with).
    """
    try:
        return _shape_without_batch(model.input_shape if hasattr(model, "input_shape") else model.inputs[0].shape)
    except (AttributeError, ValueError, IndexError, TypeError, KeyError):
        pass
    shapes = getattr(model, "_build_shapes_dict", None)
    if isinstance(shapes, dict) and len(shapes) == 1:
        shape = next(iter(shapes.values()))
        if isinstance(shape, (tuple, list)) and all(dim is None or isinstance(dim, int) for dim in shape):
            return _shape_without_batch(shape)
    return None


def _build_if_needed(layer, shape) -> None:
    """Build a layer that ``model.build()`` left unbuilt (a subclassed model without a
    ``build`` method), as Keras would on the first call: its parameters can then be counted."""
    if getattr(layer, "built", True) or shape is None:
        return
    try:
        layer.build(shape)
    except Exception:  # a layer that cannot be built here: its parameters stay unknown
        pass


def _layer_config(layer) -> dict:
    """The layer's config, or {} when it cannot give one (its attributes are read instead)."""
    try:
        config = layer.get_config()
    except Exception:
        return {}
    return config if isinstance(config, dict) else {}


def describe_layers(model) -> list[dict]:
    """One dict per layer: its class, defining settings, output shape and parameter count.

    Output shapes exclude the batch axis, e.g. ``[26, 26, 32]`` for the first Conv2D.
    A layer is named by its nearest Keras class (:func:`keras_class_name`) and its
    settings read from the layer itself, so honest spellings (a subclass of Conv2D,
    ``activation=tf.nn.relu``, nested models, ``build()``) describe the same.
    """
    input_shape = model_input_shape(model)
    shape = None if input_shape is None else (None, *input_shape)
    described: list[dict] = []
    for layer in model_layers(model):
        kind = keras_class_name(layer)
        config = _layer_config(layer)
        _build_if_needed(layer, shape)
        if shape is not None:
            try:
                shape = tuple(layer.compute_output_shape(shape))
            except Exception:  # a layer that cannot say: leave the shape unknown
                shape = None
        if kind in _ACTIVATION_LAYERS and described:
            name = getattr(layer, "activation", None) if kind == "Activation" else _ACTIVATION_LAYERS[kind]
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
                entry[field] = _plain(config[field] if field in config else getattr(layer, field, None))
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
    total = sum(entry["params"] for entry in layers) if all(entry["params"] is not None for entry in layers) else None
    return {
        "input_shape": model_input_shape(model),
        "layers": layers,
        "total_params": total,
        "optimizer": describe_optimizer(model),
        "loss": describe_loss(model),
    }


def steps_per_epoch(n_samples: int, batch_size: int) -> int:
    return math.ceil(n_samples / batch_size)
