"""Rebuild Keras objects from validated exports, with our own code and allowlists only.

A model item (see ``graders.checks.kernel_export``) becomes
``keras.Sequential([keras.Input(input_shape), *layers])``: each layer's class
must be in ``LAYERS`` and each config key in that class's allowlist with a
value of the right type and range (else :class:`ArtifactError`). Weights are
set with shape checks; the optimizer is rebuilt from ``OPTIMIZERS`` and its
``iterations`` and momentum buffers assigned from the export. Nothing exported
is ever imported, unpickled or evaluated.
"""

from __future__ import annotations

import re

import numpy as np

from graders.checks.optimizer_identity import KERAS_SGD_PATH
from graders.verify.export_reader import ArtifactError

ACTIVATIONS = frozenset(
    {
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
        "leaky_relu",
        "relu6",
        "silu",
        "swish",
        "exponential",
        "hard_sigmoid",
        "mish",
    }
)
OPTIMIZERS = ("SGD", "Adam", "RMSprop", "Adagrad")
LOSS_CLASSES = (
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "BinaryCrossentropy",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "KLDivergence",
)
LOSS_NAMES = frozenset(
    {
        "categorical_crossentropy",
        "sparse_categorical_crossentropy",
        "binary_crossentropy",
        "mean_squared_error",
        "mse",
        "mean_absolute_error",
        "mae",
        "kl_divergence",
        *LOSS_CLASSES,
    }
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}\Z")
_IGNORE = object()  # a key that is checked for type only and not passed to the layer


def _fail(where, message):
    raise ArtifactError(f"{where}: {message}")


def _int_in(low, high):
    def check(value, where):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            _fail(where, f"should be an integer in {low}..{high}, found {value!r}")
        return value

    return check


def _pair(high):
    """An int or a pair of ints in 1..high, as Keras accepts for kernel and pool sizes."""

    def check(value, where):
        items = [value] if isinstance(value, int) else value
        if not isinstance(items, list) or len(items) not in (1, 2):
            _fail(where, f"should be an integer or a pair, found {value!r}")
        for item in items:
            _int_in(1, high)(item, where)
        return tuple(items) if len(items) == 2 else items[0]

    return check


def _padding_2d(value, where):
    """ZeroPadding2D's padding: an int, a pair, or a pair of pairs (all in 0..64)."""
    items = [value] if isinstance(value, int) else value
    if not isinstance(items, list) or len(items) not in (1, 2):
        _fail(where, f"should be an integer, a pair or a pair of pairs, found {value!r}")
    if all(isinstance(item, int) for item in items):
        checked = [_int_in(0, 64)(item, where) for item in items]
        return tuple(checked) if len(checked) == 2 else checked[0]
    if len(items) != 2 or not all(isinstance(item, list) and len(item) == 2 for item in items):
        _fail(where, f"should be an integer, a pair or a pair of pairs, found {value!r}")
    return tuple(tuple(_int_in(0, 64)(side, where) for side in item) for item in items)


def _target_shape(value, where):
    if not isinstance(value, list) or not 1 <= len(value) <= 4:
        _fail(where, f"should be a short shape, found {value!r}")
    return tuple(-1 if item == -1 else _int_in(1, 1 << 20)(item, where) for item in value)


def _optional(check):
    return lambda value, where: None if value is None else check(value, where)


def _choice(*allowed):
    def check(value, where):
        if value not in allowed:
            _fail(where, f"{value!r} is not one of {sorted(map(str, allowed))}")
        return value

    return check


def _bool(value, where):
    if not isinstance(value, bool):
        _fail(where, "should be true or false")
    return value


def _float_in(low, high):
    def check(value, where):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            _fail(where, f"should be a number in {low}..{high}, found {value!r}")
        return float(value)

    return check


def _activation(value, where):
    if not isinstance(value, str) or value not in ACTIVATIONS:
        _fail(where, f"activation {value!r} is not an allowed activation name")
    return value


def _ignored_object(value, where):
    """Initializers, regularizers, constraints: any plain JSON, never passed on.

    The weights are set from the export, so an initializer changes nothing here;
    a regularizer or constraint changes no check's verdict.
    """
    if value is not None and not isinstance(value, (str, dict)):
        _fail(where, "should be a name, an object or null")
    return _IGNORE


def _dtype(value, where):
    name = value.get("config", {}).get("name") if isinstance(value, dict) else value
    if name not in ("float32", None):
        _fail(where, f"dtype {name!r} is not float32")
    return _IGNORE


def _ignored_name(value, where):
    if not isinstance(value, str) or len(value) > 200:
        _fail(where, "should be a short string")
    return _IGNORE


def _ignored_shape(value, where):
    if value is not None and (not isinstance(value, list) or len(value) > 5):
        _fail(where, "should be a short shape")
    return _IGNORE


_COMMON = {
    "name": _ignored_name,
    "trainable": _bool,
    "dtype": _dtype,
    "input_shape": _ignored_shape,
    "batch_input_shape": _ignored_shape,
}
_WEIGHTED = {
    "use_bias": _bool,
    "kernel_initializer": _ignored_object,
    "bias_initializer": _ignored_object,
    "kernel_regularizer": _ignored_object,
    "bias_regularizer": _ignored_object,
    "activity_regularizer": _ignored_object,
    "kernel_constraint": _ignored_object,
    "bias_constraint": _ignored_object,
}
_DATA_FORMAT = {"data_format": _choice("channels_last")}
_POOL = {"pool_size": _pair(32), "strides": _optional(_pair(32)), "padding": _choice("valid", "same"), **_DATA_FORMAT}

#: Allowed layer classes: ``name -> (keras.layers attribute, {config key: validator})``.
LAYERS = {
    "Conv2D": (
        "Conv2D",
        {
            "filters": _int_in(1, 4096),
            "kernel_size": _pair(32),
            "strides": _pair(32),
            "padding": _choice("valid", "same"),
            "dilation_rate": _pair(8),
            "groups": _choice(1),
            "activation": _activation,
            **_WEIGHTED,
            **_DATA_FORMAT,
        },
    ),
    "MaxPooling2D": ("MaxPooling2D", _POOL),
    "MaxPool2D": ("MaxPooling2D", _POOL),
    "AveragePooling2D": ("AveragePooling2D", _POOL),
    "Flatten": ("Flatten", _DATA_FORMAT),
    "Dense": (
        "Dense",
        {
            "units": _int_in(1, 4096),
            "activation": _activation,
            "quantization_config": _choice(None),
            "lora_rank": _choice(None),
            **_WEIGHTED,
        },
    ),
    "Dropout": (
        "Dropout",
        {"rate": _float_in(0.0, 1.0), "noise_shape": _choice(None), "seed": _optional(_int_in(0, 2**31))},
    ),
    "Activation": ("Activation", {"activation": _activation}),
    "ReLU": (
        "ReLU",
        {
            "max_value": _optional(_float_in(0.0, 1e6)),
            "negative_slope": _float_in(0.0, 1.0),
            "threshold": _float_in(-1e6, 1e6),
        },
    ),
    "Softmax": ("Softmax", {"axis": _int_in(-4, 4)}),
    # Not the homework's layers, but a student's honest variation: rebuilt so that the
    # checks (not the allowlist) say what is wrong with them.
    "LeakyReLU": ("LeakyReLU", {"negative_slope": _float_in(0.0, 1.0)}),
    "GlobalAveragePooling2D": ("GlobalAveragePooling2D", {"keepdims": _bool, **_DATA_FORMAT}),
    "GlobalMaxPooling2D": ("GlobalMaxPooling2D", {"keepdims": _bool, **_DATA_FORMAT}),
    "ZeroPadding2D": ("ZeroPadding2D", {"padding": _padding_2d, **_DATA_FORMAT}),
    "Reshape": ("Reshape", {"target_shape": _target_shape}),
    "Rescaling": ("Rescaling", {"scale": _float_in(-1e6, 1e6), "offset": _float_in(-1e6, 1e6)}),
    "BatchNormalization": (
        "BatchNormalization",
        {
            "axis": _int_in(-4, 4),
            "momentum": _float_in(0.0, 1.0),
            "epsilon": _float_in(0.0, 1.0),
            "center": _bool,
            "scale": _bool,
            "synchronized": _choice(False),
            "renorm": _choice(False),
            "renorm_clipping": _choice(None),
            "renorm_momentum": _float_in(0.0, 1.0),
            **{
                f"{part}_{kind}": _ignored_object
                for part in ("beta", "gamma")
                for kind in ("initializer", "regularizer", "constraint")
            },
            "moving_mean_initializer": _ignored_object,
            "moving_variance_initializer": _ignored_object,
        },
    ),
}


def layer_kwargs(class_name: str, config: dict, where: str) -> tuple[str, dict]:
    """The keras.layers class name and checked constructor arguments for one exported layer."""
    if class_name not in LAYERS:
        _fail(where, f"layer class {class_name!r} is not allowed")
    attribute, schema = LAYERS[class_name]
    schema = {**_COMMON, **schema}
    kwargs = {}
    for key, value in config.items():
        if key not in schema:
            _fail(where, f"{class_name} config key {key!r} is not allowed")
        checked = schema[key](value, f"{where}.{key}")
        if checked is not _IGNORE:
            kwargs[key] = checked
    return attribute, kwargs


def _set_weights(layer, keys: list, arrays: dict, where: str) -> None:
    import keras

    values = [arrays[key] for key in keys]
    current = layer.weights
    if len(values) != len(current):
        _fail(where, f"has {len(values)} weight arrays; the layer has {len(current)}")
    for value, variable, key in zip(values, current, keys):
        if tuple(value.shape) != tuple(variable.shape):
            _fail(key, f"has shape {list(value.shape)}; the layer wants {list(variable.shape)}")
        if value.dtype.kind not in "fi":
            _fail(key, f"dtype {value.dtype} is not a number type")
        variable.assign(keras.ops.convert_to_tensor(value.astype("float32")))


def _optimizer(spec: dict, where: str):
    import keras

    name = spec["class_name"]
    if name not in OPTIMIZERS:
        _fail(where, f"optimizer {name!r} is not one of {list(OPTIMIZERS)}")
    if name == "SGD" and spec["class_path"] != KERAS_SGD_PATH:
        return _impostor_sgd(spec)
    rate = spec["learning_rate"]
    if isinstance(rate, dict):
        _fail(where, "a learning-rate schedule cannot be verified; use a number")
    kwargs = {"learning_rate": float(rate)}
    if name == "SGD":
        kwargs.update(momentum=float(spec["momentum"]), nesterov=bool(spec["nesterov"]))
    elif name == "RMSprop":
        kwargs["momentum"] = float(spec["momentum"])
    if not 0.0 <= kwargs.get("momentum", 0.0) <= 1.0 or not 0.0 <= kwargs["learning_rate"] <= 1e6:
        _fail(where, "learning rate or momentum out of range")
    return getattr(keras.optimizers, name)(**kwargs)


def _impostor_sgd(spec: dict):
    """An optimizer that, like the kernel's, is named SGD but is another class (``class_path``):
    Keras's SGD underneath here (the verifier never runs the student's class), under the
    student's module and qualified name, so the unchanged checks judge it as the kernel's
    checks did (``optimizer_identity``), in the same words."""
    import keras

    module, _, qualname = spec["class_path"].rpartition(".")
    impostor = type("SGD", (keras.optimizers.SGD,), {"__module__": module, "__qualname__": qualname})
    return impostor(learning_rate=float(spec["learning_rate"]), momentum=float(spec["momentum"]))


def _loss(compiled: dict, where: str):
    import keras

    loss_class, loss = compiled["loss_class"], compiled["loss"]
    if loss_class in LOSS_CLASSES:
        instance = getattr(keras.losses, loss_class)()
        if loss and _IDENTIFIER.match(loss) and loss != instance.name:
            instance = getattr(keras.losses, loss_class)(name=loss)
        return instance
    if loss in LOSS_NAMES:
        return loss
    _fail(where, f"loss {loss!r} ({loss_class}) is not an allowed loss")


def _assign_state(model, layers, state: dict, arrays: dict, where: str) -> None:
    """Build the optimizer for the model's variables; assign iterations and momenta."""
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    optimizer.iterations.assign(int(state["iterations"]))
    by_path = {variable.path: variable for variable in optimizer.variables}
    for slot in state["momentums"]:
        if slot["layer"] >= len(layers) or slot["weight"] >= len(layers[slot["layer"]].weights):
            _fail(where, f"momentum {slot['key']} names no weight of the model")
        variable = layers[slot["layer"]].weights[slot["weight"]]
        target = by_path.get(f"{optimizer.name}/{variable.path.replace('/', '_')}_momentum")
        if target is None:  # momentum 0 has no buffers: the cross-check reports the mismatch
            continue
        value = arrays[slot["key"]]
        if tuple(value.shape) != tuple(target.shape) or value.dtype.kind != "f":
            _fail(slot["key"], f"momentum of shape {list(value.shape)}; wanted {list(target.shape)}")
        target.assign(value.astype("float32"))


def rebuild_model(item: dict, arrays: dict, where: str = "model"):
    """A fresh ``keras.Sequential`` from a validated model item (weights when exported)."""
    import keras

    built_layers = []
    for index, entry in enumerate(item["layers"]):
        place = f"{where}.layers[{index}]"
        if entry["class_name"] == "InputLayer":
            _fail(place, "an InputLayer belongs in input_shape, not in the layer list")
        attribute, kwargs = layer_kwargs(entry["class_name"], entry["config"], place)
        try:
            built_layers.append(getattr(keras.layers, attribute)(**kwargs))
        except (ValueError, TypeError) as error:
            _fail(place, f"Keras refused the config: {error}")
    shape = item["input_shape"]
    try:
        if shape is None:
            model = keras.Sequential(built_layers)
        else:
            model = keras.Sequential([keras.Input(shape=tuple(shape)), *built_layers])
    except (ValueError, TypeError) as error:
        _fail(where, f"the layers do not fit together: {error}")
    for index, entry in enumerate(item["layers"]):
        keys = entry.get("weights")
        if keys is None:
            continue
        if shape is None and keys:
            _fail(where, "weights for a model without an input shape")
        if shape is not None:
            _set_weights(built_layers[index], keys, arrays, f"{where}.layers[{index}]")
    confirm_mapping(model, item, arrays, where)
    compiled = item["compile"]
    if compiled is not None:
        model.compile(
            optimizer=_optimizer(compiled["optimizer"], where + ".optimizer"),
            loss=_loss(compiled, where + ".loss"),
            metrics=["accuracy"],
        )
        if item["optimizer_state"] is not None and shape is not None:
            _assign_state(model, built_layers, item["optimizer_state"], arrays, where)
    records = fit_records(item.get("fits"), arrays, where + ".fits")
    if records is not None:
        from graders.checks.recorder import remember_fit

        for record in records:
            remember_fit(model, record)
    if item.get("evidence") is not None:
        from graders.checks.evidence import remember_segment

        for segment in evidence_segments(item["evidence"], arrays, where + ".evidence"):
            remember_segment(model, segment)
    return model


def _evidence_array(arrays: dict, key: str, kinds: str, ndim: int | None = None) -> np.ndarray:
    value = arrays[key]
    if value.dtype.kind not in kinds or (ndim is not None and value.ndim != ndim):
        _fail(key, f"{value.dtype}{list(value.shape)} is not the array of training evidence it should be")
    return value


def evidence_segments(evidence: dict, arrays: dict, where: str = "evidence") -> list[dict]:
    """The validated evidence of a model item as ``graders.checks.evidence`` segments (arrays
    in place of keys; weights and slots as float32, orders as int64). Evidence the kernel
    could not carry is one segment that names the problem."""
    if evidence["problem"] is not None:
        return [{"orders": [], "states": [], "problem": evidence["problem"]}]
    segments = []
    for index, segment in enumerate(evidence["segments"]):
        place = f"{where}.segments[{index}]"
        states = [
            {
                "weights": [
                    _evidence_array(arrays, key, "f").astype("float32", copy=False) for key in state["weights"]
                ],
                "iterations": state["iterations"],
                "slots": {
                    slot: _evidence_array(arrays, key, "f").astype("float32", copy=False)
                    for slot, key in state["slots"].items()
                },
                "unmapped": list(state["unmapped"]),
            }
            for state in segment["states"]
        ]
        orders = [_evidence_array(arrays, key, "i", 1).astype(np.int64, copy=False) for key in segment["orders"]]
        segments.append({**segment, "orders": orders, "states": states})
        if not all(len(state["weights"]) == len(states[0]["weights"]) for state in states):
            _fail(place, "its states hold different numbers of weights")
    return segments


def confirm_mapping(model, item: dict, arrays: dict, where: str) -> None:
    """A model the kernel read in another form (``item["mapped"]``: a subclassed model, a
    layer subclass, an activation function...) is trusted only when the rebuilt chain
    computes what the student's model computed on the probe images; else raise
    :class:`ArtifactError` ("could not verify": a person will look). The grade then rests
    on the rebuilt model."""
    notes = item.get("mapped")
    if not notes:
        return
    from graders.checks.kernel_export import PROBE_TOLERANCE, probe_images

    reading = "; ".join(notes)
    key = item.get("probe")
    if key is None or item["input_shape"] is None:
        _fail(
            where,
            f"was read in another form ({reading}), and no predictions on the probe images "
            "came with it to confirm that reading",
        )
    want = arrays[key]
    got = np.asarray(model(probe_images(), training=False), dtype="float64")
    if want.dtype.kind != "f" or want.shape != got.shape:
        _fail(
            where,
            f"was read in another form ({reading}); its probe predictions have shape "
            f"{list(want.shape)}, the rebuilt model's {list(got.shape)}",
        )
    gaps = np.abs(got - want.astype("float64"))
    difference = float(np.nanmax(gaps)) if got.size and not np.isnan(gaps).all() else 0.0
    # equal_nan: a diverged model (learning rate 1) predicts NaN in both processes
    if not np.allclose(got, want, rtol=PROBE_TOLERANCE, atol=PROBE_TOLERANCE, equal_nan=True):
        _fail(
            where,
            f"was read in another form ({reading}), but the rebuilt chain of its layers does "
            f"not compute what the student's model computes on the probe images (largest "
            f"difference {difference:.3g})",
        )


def _fit_sample(sample: dict, arrays: dict, where: str) -> dict:
    if sample["kind"] != "data":
        return dict(sample)
    images, labels = arrays[sample["images"]], arrays[sample["labels"]]
    if images.dtype != np.int64 or labels.dtype != np.int64 or images.ndim != 1 or images.shape != labels.shape:
        _fail(
            where,
            f"a fingerprint should be two int64 arrays of one length, found "
            f"{images.dtype}{list(images.shape)} and {labels.dtype}{list(labels.shape)}",
        )
    return {"kind": "data", "images": images, "labels": labels}


def fit_records(fits, arrays: dict, where: str = "fits") -> list | None:
    """The validated ``fits`` of a model item as ``recorder`` fit records (arrays in place
    of keys), or None when the kernel recorded none."""
    if fits is None:
        return None
    return [
        {side: _fit_sample(record[side], arrays, f"{where}[{index}].{side}") for side in ("train", "validation")}
        for index, record in enumerate(fits)
    ]


def rebuild_history(item: dict, models: dict, where: str = "history"):
    """A ``keras.callbacks.History`` with the exported records, tied to its rebuilt model."""
    import keras

    history = keras.callbacks.History()
    history.history = {key: list(values) for key, values in item["history"].items()}
    history.params = dict(item["params"])
    history.epoch = list(item["epoch"])
    owner = item["model"]
    if owner is not None:
        if owner not in models:
            _fail(where, f"belongs to {owner!r}, which is not an exported model")
        history.set_model(models[owner])
    return history


def _restore_tuples(value, top_tuple: bool = False):
    if isinstance(value, dict):
        return tuple(_restore_tuples(item) for item in value["tuple"])
    if isinstance(value, list):
        items = [_restore_tuples(item) for item in value]
        return tuple(items) if top_tuple else items
    return value


def rebuild_value(item: dict, arrays: dict):
    """A plain value item (tuples restored) or an array item (a writable copy)."""
    if item["kind"] == "array":
        return np.array(arrays[item["key"]], copy=True)
    return _restore_tuples(item["value"], item["tuple"])


def placeholder(type_name: str):
    """An object whose type is named like the unsupported one, so checks name it."""
    name = type_name if _IDENTIFIER.match(type_name or "") else "unsupported"
    return type(name, (), {"__repr__": lambda self: f"<{name}>"})()
