"""Export plain data from the student's kernel, for the out-of-kernel verifier.

This runs INSIDE the student's kernel, so nothing it writes is trusted: the
verifier (``graders.verify``) reads it with a strict reader and rebuilds the
objects with its own code. The exporter only has to be honest for an honest
student; it must never let a student's exception escape.

Layout, per graded cell: ``out_dir/<grade_id>/manifest.json`` and
``out_dir/<grade_id>/arrays.npz`` (uncompressed, ``np.savez``). The manifest::

    {"format": "hw5-export/1", "grade_id": str,
     "items": {name: item, ...},
     "calls": [{"builder": str, "args": [number, ...], "result": item}, ...]}

An item is one of::

    {"kind": "missing"}                          # no such global
    {"kind": "callable"}                         # a function: its calls are exported
    {"kind": "value", "value": json, "tuple": bool}   # str/int/float/bool/None, lists, tuples
    {"kind": "array", "key": str, "dtype": str, "shape": [int, ...]}
    {"kind": "model", ...}                       # see _model_item
    {"kind": "history", ...}                     # see _history_item
    {"kind": "unsupported", "unsupported": type name}
    {"kind": "error", "error": str}              # the student's object raised
    {"kind": "unrepresentable", "type": str, "reason": str}  # a Keras object we cannot carry

Arrays live in ``arrays.npz`` under keys such as ``model_eta_large/layer3/0``
(the layer's 4th weight list entry 0) or ``model_eta_large/opt/momentum/3/0``.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

#: The export format, the one home of its constants: its name, the two files of each
#: graded cell, their caps (the host's copy, ``graders.sandbox.copy_exports``, and the
#: verifier's reader, ``graders.verify.export_reader``, refuse more) and the fit records
#: a model carries at most.
FORMAT = "hw5-export/1"
MANIFEST, ARRAYS = "manifest.json", "arrays.npz"
MAX_MANIFEST_BYTES = 1 << 20
MAX_ARRAYS_BYTES = 64 << 20
MAX_FITS = 16
#: A model's training evidence (``evidence``'s segments) is carried up to this size; a
#: larger one is named, not carried (about 46 MiB for the momentum run's ten epochs).
MAX_EVIDENCE_BYTES = 52 << 20

_MAX_VALUE_DEPTH = 8
_FLOAT_DTYPES = ("float16", "float32", "float64")


class _Unsupported(Exception):
    """A value the exporter does not carry; recorded as ``unsupported``."""


def _json_value(value, depth: int = 0):
    """A plain JSON value for str/int/float/bool/None and nested lists or tuples of them.

    Tuples become ``{"tuple": [...]}`` below the top level so that the type
    survives; non-finite floats are kept (the manifest allows NaN constants).
    """
    if depth > _MAX_VALUE_DEPTH:
        raise _Unsupported("nested too deeply")
    if value is None or isinstance(value, (bool, str)):
        return str(value) if isinstance(value, str) else value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if type(value) in (list, tuple):
        items = [_json_value(item, depth + 1) for item in value]
        return {"tuple": items} if isinstance(value, tuple) else items
    raise _Unsupported(type(value).__name__)


def _array_item(value, name: str, writer) -> dict:
    """An array item; an object array or a list of arrays is exported as the numbers
    ``np.asarray(value, dtype=float)`` reads from it (what the checks compare)."""
    try:
        array = _plain_array(value)
    except _Unsupported:
        try:
            array = np.asarray(value, dtype="float64")
        except (TypeError, ValueError):
            raise _Unsupported(f"{type(value).__name__} of non-numbers") from None
    writer.add(name, array)
    return {"kind": "array", "key": name, "dtype": array.dtype.name, "shape": list(array.shape)}


def _plain_array(value) -> np.ndarray:
    """A copy with an allowlisted dtype; other numeric dtypes are widened."""
    array = np.array(value, copy=True)
    if array.dtype == np.bool_:
        return array
    if array.dtype.kind in "iu":
        return array.astype("int64")
    if array.dtype.kind == "f":
        return array if array.dtype.name in _FLOAT_DTYPES else array.astype("float64")
    raise _Unsupported(f"ndarray of {array.dtype}")


def _json_config(value, depth: int = 0):
    """A layer or optimizer config as JSON types; anything else is named, never repr'd."""
    if depth > 16:
        return {"unsupported": "nested too deeply"}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_json_config(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_config(item, depth + 1) for key, item in value.items()}
    return {"unsupported": type(value).__name__}


_SIBLINGS: dict = {}


def _sibling(name: str):
    """``graders/checks/<name>.py`` loaded from its file beside this one, as the executor
    loads this exporter, and never through an ``import`` statement: a student's
    ``sys.modules`` entry or ``builtins.__import__`` hook for ``graders`` must not change
    what their honest work exports. Every module of ``graders`` this exporter uses comes
    through here (``tests/verify/test_unusual_styles.py`` checks that none is imported)."""
    if name not in _SIBLINGS:
        import importlib.util

        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
        spec = importlib.util.spec_from_file_location(f"hw5_export_{name}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # a dataclass looks its module up while it is made
        try:
            spec.loader.exec_module(module)
        finally:
            sys.modules.pop(spec.name, None)
        _SIBLINGS[name] = module
    return _SIBLINGS[name]


class _Writer:
    """Collects arrays under unique keys while items are built."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def add(self, key: str, array) -> str:
        self.arrays[key] = _plain_array(array)
        return key


def _functional_chain_problem(model) -> str | None:
    """Why a functional model's graph is not one chain of layers, or None when it is.

    A functional model is a chain when every layer has a single inbound tensor from the
    layer before it and the output is the last layer's. (A nested model counts as one
    layer here; its own layers are opened up by ``describe.model_layers``.)
    """
    config = model.get_config()
    entries = config["layers"]
    previous = None
    for entry in entries:
        nodes = entry.get("inbound_nodes") or []
        if entry["class_name"] == "InputLayer":
            if previous is not None or nodes:
                return "a functional model with several inputs"
            previous = entry["name"]
            continue
        if len(nodes) != 1 or len(nodes[0].get("args", [])) != 1 or nodes[0].get("kwargs"):
            return "a functional model that is not a single chain of layers"
        history = nodes[0]["args"][0].get("config", {}).get("keras_history", [None])
        if history[0] != previous:
            return "a functional model that is not a single chain of layers"
        previous = entry["name"]
    outputs = list(config.get("output_layers") or [])
    if outputs and not isinstance(outputs[0], (list, tuple)):  # one output: a flat [name, 0, 0]
        outputs = [outputs]
    if [list(item) for item in outputs] != [[previous, 0, 0]]:
        return "a functional model whose output is not its last layer"
    return None


def _chain_layers(model) -> tuple[list, list[str]]:
    """The model's computing layers as one chain, and how they were read (``notes``).

    A plain ``keras.Sequential``, or a functional model whose graph is a chain, gives no
    note. Every other honest way of writing the chain (a subclassed ``keras.Model``, a
    subclass of Sequential, nested models, a functional graph this reader does not
    follow) is read as the chain of its layers in order, with a note: the verifier
    confirms such a reading on probe images before it trusts it (see ``probe``).
    """
    import keras

    model_layers = _sibling("describe").model_layers

    notes = []
    if type(model) is keras.Sequential:
        pass
    elif isinstance(model, keras.Sequential):
        notes.append(f"a subclass of Sequential ({type(model).__name__})")
    elif _is_functional(model):
        try:
            problem = _functional_chain_problem(model)
        except Exception as error:  # a config this reader does not know: read the layers instead
            problem = f"a functional model whose config could not be read ({type(error).__name__})"
        if problem:
            notes.append(f"{problem}, read as the chain of its layers")
    else:
        notes.append(f"a subclassed keras.Model ({type(model).__name__}), read as the chain of its layers")
    top = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    nested = [layer.name for layer in top if isinstance(layer, keras.Model)]
    if nested:
        notes.append(f"the layers of the nested model(s) {', '.join(nested)} opened up")
    return model_layers(model), notes


def _is_functional(model) -> bool:
    """Whether Keras built the model from a graph of layers (``keras.Model(inputs, outputs)``)."""
    return any(klass.__name__ == "Functional" and klass.__module__.startswith("keras") for klass in type(model).__mro__)


def _layer_entry(layer, index: int, notes: list[str]) -> dict:
    """``{"class_name", "config"}`` of a layer in its nearest Keras form.

    A subclass of a Keras layer is exported as that layer, with that layer's own config
    (not the keys a subclass may add); an activation given as a function is exported as
    the name of the Keras activation it computes. Each such reading adds a note.
    """
    describe = _sibling("describe")
    KNOWN_ACTIVATIONS, _function_name = describe.KNOWN_ACTIVATIONS, describe._function_name
    identify_activation, keras_class = describe.identify_activation, describe.keras_class

    klass = keras_class(layer)
    if klass is not type(layer):
        notes.append(f"layer {index}: {type(layer).__name__} read as {klass.__name__}")
    activation = getattr(layer, "activation", None)
    try:
        config = klass.get_config(layer)
    except Exception:  # e.g. a lambda activation Keras cannot serialize outside IPython
        config = _config_with_known_activation(layer, klass, activation)
    config = _json_config(config)
    spelled = config.get("activation")
    if "activation" in config and callable(activation) and spelled not in KNOWN_ACTIVATIONS:
        name = identify_activation(activation)
        if name is not None:
            notes.append(f"layer {index}: activation {_function_name(activation)} read as {name!r}")
            config["activation"] = name
    return {"class_name": klass.__name__, "config": config}


def _config_with_known_activation(layer, klass, activation) -> dict:
    """The layer's config with its activation function swapped, for the call, for the Keras
    activation it computes (put back at once): what Keras cannot serialize, it can then."""
    import keras

    name = _sibling("describe").identify_activation(activation)
    if name is None:
        raise _Unsupported(
            f"{type(layer).__name__}'s config cannot be read, and its activation computes none of Keras's"
        )
    layer.activation = keras.activations.get(name)
    try:
        return klass.get_config(layer)
    finally:
        layer.activation = activation


#: Probe images: the kernel reports a mapped model's predictions on them, and the verifier
#: makes the same images itself and compares its rebuilt model's predictions.
PROBE_SEED, PROBE_COUNT = 20160, 8
PROBE_TOLERANCE = 1e-4


def probe_images(count: int = PROBE_COUNT) -> np.ndarray:
    """``(count, 28, 28, 1)`` float32 images in [0, 1], the same in every process: noise,
    with a blank and a saturated image, so that every layer's output varies."""
    images = np.random.default_rng(PROBE_SEED).random((count, 28, 28, 1), dtype=np.float32)
    images[0] = 0.0
    images[1] = 1.0
    return images


def _probe_predictions(model) -> np.ndarray:
    """The student's model's outputs on the probe images (this builds an unbuilt model, as
    its first call in the notebook would)."""
    import keras

    return np.asarray(keras.ops.convert_to_numpy(model(probe_images(), training=False)), dtype="float32")


def _compile_item(model) -> dict | None:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    config = optimizer.get_config()
    # The optimizer's own variables and attributes, not get_config(): a patched get_config
    # is the cheapest lie about a learning rate (the kernel's checks read it).
    variable = getattr(optimizer, "_learning_rate", None)
    rate = float(np.asarray(variable)) if hasattr(variable, "numpy") else config.get("learning_rate")
    momentum = getattr(optimizer, "momentum", None)
    momentum = momentum if isinstance(momentum, (int, float)) else config.get("momentum", 0.0)
    loss = getattr(model, "loss", None)
    loss_name = (
        loss
        if isinstance(loss, str) or loss is None
        else (getattr(loss, "name", None) or getattr(loss, "__name__", None))
    )
    return {
        "optimizer": {
            "class_name": type(optimizer).__name__,
            "class_path": _sibling("optimizer_identity").class_path(type(optimizer)),
            # a schedule is named, never carried: the checks want a number
            "learning_rate": float(rate) if isinstance(rate, (int, float)) else {"schedule": _json_config(rate)},
            "momentum": float(momentum or 0.0),
            "nesterov": bool(getattr(optimizer, "nesterov", config.get("nesterov", False))),
        },
        "loss": None if loss_name is None else str(loss_name),
        "loss_class": None if loss is None or isinstance(loss, str) else type(loss).__name__,
        "metrics": ["accuracy"],
    }


def _optimizer_state(model, layers, name: str, writer: _Writer) -> dict | None:
    """Iterations, the learning-rate variable and momentum buffers, once the optimizer is built."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not getattr(optimizer, "built", False):
        return None
    by_path = {variable.path: variable for variable in optimizer.variables}
    prefix = optimizer.name + "/"
    rate = getattr(optimizer, "_learning_rate", None)
    momentums = []
    for index, layer in enumerate(layers):
        trainable = {id(variable) for variable in layer.trainable_weights}
        for position, variable in enumerate(layer.weights):
            if id(variable) not in trainable:
                continue
            # Keras 3 names a momentum "<optimizer>/<variable path with _>_momentum"
            slot = by_path.get(prefix + variable.path.replace("/", "_") + "_momentum")
            if slot is not None:
                key = writer.add(f"{name}/opt/momentum/{index}/{position}", np.asarray(slot.numpy()))
                momentums.append({"layer": index, "weight": position, "path": variable.path, "key": key})
    return {
        "iterations": int(np.asarray(optimizer.iterations)),
        "learning_rate": float(np.asarray(rate)) if hasattr(rate, "numpy") else None,
        "momentums": momentums,
        "slots": _sibling("optimizer_identity").slot_names(optimizer),
    }


def _sample_item(sample, key: str, writer: _Writer) -> dict:
    """One side of a fit record (``recorder``'s sample) as plain data, arrays by key."""
    kind = sample.get("kind") if isinstance(sample, dict) else None
    if kind == "data":
        images, labels = np.asarray(sample["images"]), np.asarray(sample["labels"])
        if images.dtype != np.int64 or labels.dtype != np.int64 or images.shape != labels.shape or images.ndim != 1:
            return {"kind": "unknown", "reason": "a malformed fingerprint"}
        return {
            "kind": "data",
            "images": writer.add(f"{key}/images", images),
            "labels": writer.add(f"{key}/labels", labels),
        }
    if kind == "split":
        return {"kind": "split", "fraction": float(sample["fraction"])}
    if kind == "none":
        return {"kind": "none"}
    return {
        "kind": "unknown",
        "reason": _short(sample.get("reason", "")) if kind == "unknown" else "a malformed fingerprint",
    }


def _fits_item(model, name: str, writer: _Writer) -> list | None:
    """The fit records the grading kit left on the model (``recorder.fit_records``), or None."""
    records = _sibling("recorder").fit_records(model)
    if records is None:
        return None
    return [
        {
            "train": _sample_item(record.get("train"), f"{name}/fit{number}/train", writer),
            "validation": _sample_item(record.get("validation"), f"{name}/fit{number}/validation", writer),
        }
        for number, record in enumerate(records[:MAX_FITS])
    ]


def _state_item(state: dict, key: str, writer: _Writer) -> dict:
    return {
        "weights": [writer.add(f"{key}/w{index}", weight) for index, weight in enumerate(state["weights"])],
        "iterations": None if state["iterations"] is None else int(state["iterations"]),
        "slots": {
            slot: writer.add(f"{key}/s{index}", value) for index, (slot, value) in enumerate(state["slots"].items())
        },
        "unmapped": [_short(path)[:200] for path in state["unmapped"][:64]],
    }


def _evidence_item(model, name: str, writer: _Writer) -> dict | None:
    """The model's training evidence (``graders.checks.evidence``) as plain data and arrays by
    key, or None when none was recorded; ``{"problem": ...}`` when it is too large to carry."""
    segments = _sibling("evidence").segments_of(model)
    if segments is None:
        return None
    size = sum(
        array.nbytes
        for segment in segments[:MAX_FITS]
        for array in [
            *segment["orders"],
            *(value for state in segment["states"] for value in [*state["weights"], *state["slots"].values()]),
        ]
    )
    if size > MAX_EVIDENCE_BYTES or len(segments) > MAX_FITS:
        return {
            "segments": [],
            "problem": f"the training evidence ({size:,} bytes, {len(segments)} fit calls) is too large to carry",
        }
    items = []
    for number, segment in enumerate(segments):
        key = f"{name}/ev{number}"
        items.append(
            {
                "batch_size": int(segment["batch_size"]),
                "image_shape": [int(size) for size in segment["image_shape"]],
                "labels": _json_config(segment["labels"]),
                "optimizer": _json_config(segment["optimizer"]),
                "orders": [writer.add(f"{key}/order{epoch}", order) for epoch, order in enumerate(segment["orders"])],
                "states": [
                    _state_item(state, f"{key}/state{index}", writer) for index, state in enumerate(segment["states"])
                ],
                "problem": None if segment["problem"] is None else _short(segment["problem"]),
            }
        )
    return {"segments": items, "problem": None}


def _model_item(model, name: str, writer: _Writer | None, weights: bool = True) -> dict:
    """Layers as [{"class_name", "config", "weights": [key, ...]}]; weights when ``weights``.

    With ``weights``, ``"fits"`` carries the model's fit records (what each ``fit`` call
    trained and validated on, see ``graders.checks.data_checks``), or null. A model that
    had to be read in another form (``_chain_layers``, ``_layer_entry``) carries
    ``"mapped"`` (the notes) and, when its input is the homework's, ``"probe"``: its
    predictions on :func:`probe_images`, with its weights even for a builder's result,
    so that the verifier can confirm the reading.
    """
    model_input_shape = _sibling("describe").model_input_shape

    layers, notes = _chain_layers(model)
    entries = [_layer_entry(layer, index, notes) for index, layer in enumerate(layers)]
    input_shape = model_input_shape(model)
    probe = None
    if notes and writer is not None and input_shape == [28, 28, 1]:
        probe = writer.add(f"{name}/probe", _probe_predictions(model))  # before reading weights: it builds
        weights = True
    for index, (entry, layer) in enumerate(zip(entries, layers)):
        if weights and writer is not None:
            entry["weights"] = [
                writer.add(f"{name}/layer{index}/{position}", np.asarray(weight))
                for position, weight in enumerate(layer.get_weights())
            ]
    item = {
        "kind": "model",
        "model_class": "Sequential" if isinstance(model, _keras_sequential()) else "Functional",
        "input_shape": input_shape,
        "layers": entries,
        "compile": _compile_item(model),
        "optimizer_state": None if writer is None or not weights else _optimizer_state(model, layers, name, writer),
    }
    if notes:
        item["mapped"] = [_short(note)[:300] for note in notes[:64]]
        item["probe"] = probe
    if writer is not None and weights:
        item["fits"] = _fits_item(model, name, writer)
    return item


def _keras_sequential():
    import keras

    return keras.Sequential


def _unrepresentable(value, error: BaseException) -> dict:
    """A Keras object the exporter could not carry: a limit of ours, never the student's
    failure (the verifier gives "could not verify: a person will look")."""
    reason = str(error) if isinstance(error, _Unsupported) else f"{type(error).__name__}: {_short(error)}"
    return {"kind": "unrepresentable", "type": type(value).__name__[:100], "reason": reason[:500]}


def _history_item(history, namespace: dict, names) -> dict:
    values = {}
    for key, series in dict(history.history).items():
        values[str(key)] = [float(value) for value in series]
    params = {
        str(key): value
        for key, value in dict(history.params or {}).items()
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    }
    owner = getattr(history, "model", None)
    model_name = next(
        (other for other in names if other in namespace and namespace[other] is owner and owner is not None), None
    )
    return {
        "kind": "history",
        "history": values,
        "params": {k: int(v) for k, v in params.items()},
        "epoch": [int(epoch) for epoch in history.epoch],
        "model": model_name,
    }


def _loaded_keras():
    """The kernel's Keras when the kernel imported it, else None: a value cannot be a Keras
    object otherwise, and importing TensorFlow here would cost seconds (a Part A kernel
    never imports it; the first export could run past the cell's time limit)."""
    return sys.modules.get("keras")


def _item(value, name: str, namespace: dict, names, writer: _Writer) -> dict:
    keras = _loaded_keras()
    try:
        if keras is not None and isinstance(value, (keras.Model, keras.callbacks.History)):
            try:
                if isinstance(value, keras.Model):
                    return _model_item(value, name, writer)
                return _history_item(value, namespace, names)
            except BaseException as error:
                if isinstance(error, (KeyboardInterrupt, SystemExit)):
                    raise
                return _unrepresentable(value, error)
        if isinstance(value, np.ndarray):
            return _array_item(value, name, writer)
        if isinstance(value, np.generic):
            value = value.item()
        if callable(value) and not isinstance(value, type):
            return {"kind": "callable"}
        try:
            return {"kind": "value", **_value_fields(value)}
        except _Unsupported:
            if isinstance(value, (list, tuple)):  # rows of arrays: numbers, as the checks read them
                return _array_item(value, name, writer)
            raise
    except _Unsupported as unsupported:
        return {"kind": "unsupported", "unsupported": str(unsupported)}
    except BaseException as error:  # the student's object misbehaved: record it, never raise
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        return {"kind": "error", "error": f"{type(error).__name__}: {_short(error)}"}


def _value_fields(value) -> dict:
    plain = _json_value(value)
    if isinstance(plain, dict):  # a top-level tuple
        return {"value": plain["tuple"], "tuple": True}
    return {"value": plain, "tuple": False}


def _short(error) -> str:
    try:
        return str(error)[:500]
    except Exception:
        return "(unprintable)"


def _call_item(function, args, name: str, writer: _Writer) -> dict:
    """The result of the student's ``function(*args)``: an ``error`` when their function
    raised, ``unrepresentable`` when the exporter could not carry what it returned."""
    keras = _loaded_keras()
    try:
        if (
            not callable(function)
            or isinstance(function, type)
            or (keras is not None and isinstance(function, keras.layers.Layer))
        ):
            return {"kind": "unsupported", "unsupported": type(function).__name__}
        result = function(*args)
    except BaseException as error:
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        return {"kind": "error", "error": f"{type(error).__name__}: {_short(error)}"}
    keras = _loaded_keras()  # the call may have imported it
    try:
        if keras is not None and isinstance(result, keras.Model):
            return _model_item(result, name, writer, weights=False)
        if isinstance(result, np.generic):
            result = result.item()
        return {"kind": "value", **_value_fields(result)}  # plain data only (numbers, strings, ...)
    except _Unsupported as unsupported:
        return {"kind": "unsupported", "unsupported": str(unsupported)}
    except BaseException as error:
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        return _unrepresentable(result, error)


def export_cell(request: dict, out_dir: str) -> None:
    """Write ``out_dir/<grade_id>/manifest.json`` and ``arrays.npz`` for one graded cell.

    ``request``: ``{"grade_id": str, "names": [str, ...],
    "calls": [{"builder": str, "args": [number, ...]}, ...]}`` (extra keys ignored).
    Globals come from ``sys.modules["__main__"].__dict__``, the kernel's namespace.
    """
    grade_id = str(request["grade_id"])
    if not grade_id or "/" in grade_id or grade_id in (".", ".."):
        raise ValueError(f"unusable grade_id {grade_id!r}")
    namespace = sys.modules["__main__"].__dict__
    names = [str(name) for name in request.get("names", [])]
    writer = _Writer()
    items = {}
    for name in names:
        items[name] = (
            {"kind": "missing"} if name not in namespace else _item(namespace[name], name, namespace, names, writer)
        )
    for history in [item for item in items.values() if item["kind"] == "history" and item["model"] is not None]:
        owner = history["model"]
        if items.get(owner, {}).get("kind") == "model" and "evidence" not in items[owner]:
            carried = _Writer()  # merged only when whole: a half-written item would orphan arrays
            try:
                items[owner]["evidence"] = _evidence_item(namespace[owner], owner, carried)
                writer.arrays.update(carried.arrays)
            except Exception as error:  # the student's object misbehaved: a limit, named
                items[owner]["evidence"] = {"segments": [], "problem": f"{type(error).__name__}: {_short(error)}"}
    calls = []
    for number, call in enumerate(request.get("calls", [])):
        builder, args = str(call["builder"]), list(call.get("args", []))
        function = namespace.get(builder)
        result = (
            {"kind": "missing"} if builder not in namespace else _call_item(function, args, f"call{number}", writer)
        )
        calls.append({"builder": builder, "args": args, "result": result})
    folder = os.path.join(out_dir, grade_id)
    os.makedirs(folder, exist_ok=True)
    manifest = {"format": FORMAT, "grade_id": grade_id, "items": items, "calls": calls}
    with open(os.path.join(folder, MANIFEST), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, allow_nan=True)
    if writer.arrays:
        with open(os.path.join(folder, ARRAYS), "wb") as handle:
            np.savez(handle, **writer.arrays)
