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

Arrays live in ``arrays.npz`` under keys such as ``model_eta_large/layer3/0``
(the layer's 4th weight list entry 0) or ``model_eta_large/opt/momentum/3/0``.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from graders.checks.optimizer_identity import class_path, slot_names
from graders.checks.recorder import fit_records

FORMAT = "hw5-export/1"
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


class _Writer:
    """Collects arrays under unique keys while items are built."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def add(self, key: str, array) -> str:
        self.arrays[key] = _plain_array(array)
        return key


def _linear_layers(model) -> list:
    """The model's layers, InputLayer excluded, if they form one chain; else raise.

    A Sequential model is a chain by construction. A functional model is one
    when every layer has a single inbound tensor from the layer before it.
    """
    import keras

    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    if isinstance(model, keras.Sequential):
        return layers
    config = model.get_config()
    entries = config["layers"]
    previous = None
    for entry in entries:
        nodes = entry.get("inbound_nodes") or []
        if entry["class_name"] == "InputLayer":
            if previous is not None or nodes:
                raise _Unsupported("a functional model with several inputs")
            previous = entry["name"]
            continue
        if len(nodes) != 1 or len(nodes[0].get("args", [])) != 1 or nodes[0].get("kwargs"):
            raise _Unsupported("a functional model that is not a single chain of layers")
        history = nodes[0]["args"][0].get("config", {}).get("keras_history", [None])
        if history[0] != previous:
            raise _Unsupported("a functional model that is not a single chain of layers")
        previous = entry["name"]
    outputs = list(config.get("output_layers") or [])
    if outputs and not isinstance(outputs[0], (list, tuple)):  # one output: a flat [name, 0, 0]
        outputs = [outputs]
    if [list(item) for item in outputs] != [[previous, 0, 0]]:
        raise _Unsupported("a functional model whose output is not its last layer")
    return layers


def _input_shape(model):
    try:
        shape = model.input_shape if hasattr(model, "input_shape") else model.inputs[0].shape
    except (AttributeError, ValueError, IndexError, TypeError):
        return None
    return [None if dim is None else int(dim) for dim in tuple(shape)[1:]]


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
    loss_name = loss if isinstance(loss, str) or loss is None else (
        getattr(loss, "name", None) or getattr(loss, "__name__", None))
    return {
        "optimizer": {
            "class_name": type(optimizer).__name__,
            "class_path": class_path(type(optimizer)),
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
        "slots": slot_names(optimizer),
    }


_MAX_FITS = 16


def _sample_item(sample, key: str, writer: _Writer) -> dict:
    """One side of a fit record (``recorder``'s sample) as plain data, arrays by key."""
    kind = sample.get("kind") if isinstance(sample, dict) else None
    if kind == "data":
        images, labels = np.asarray(sample["images"]), np.asarray(sample["labels"])
        if images.dtype != np.int64 or labels.dtype != np.int64 or images.shape != labels.shape \
                or images.ndim != 1:
            return {"kind": "unknown", "reason": "a malformed fingerprint"}
        return {"kind": "data", "images": writer.add(f"{key}/images", images),
                "labels": writer.add(f"{key}/labels", labels)}
    if kind == "split":
        return {"kind": "split", "fraction": float(sample["fraction"])}
    if kind == "none":
        return {"kind": "none"}
    return {"kind": "unknown", "reason": _short(sample.get("reason", "")) if kind == "unknown"
            else "a malformed fingerprint"}


def _fits_item(model, name: str, writer: _Writer) -> list | None:
    """The fit records the grading kit left on the model (``recorder.fit_records``), or None."""
    records = fit_records(model)
    if records is None:
        return None
    return [{"train": _sample_item(record.get("train"), f"{name}/fit{number}/train", writer),
             "validation": _sample_item(record.get("validation"), f"{name}/fit{number}/validation", writer)}
            for number, record in enumerate(records[:_MAX_FITS])]


def _model_item(model, name: str, writer: _Writer | None) -> dict:
    """Layers as [{"class_name", "config", "weights": [key, ...]}]; weights only with a writer.

    With a writer, ``"fits"`` carries the model's fit records (what each ``fit`` call
    trained and validated on, see ``graders.checks.data_checks``), or null.
    """
    layers = _linear_layers(model)
    entries = []
    for index, layer in enumerate(layers):
        entry = {"class_name": type(layer).__name__, "config": _json_config(layer.get_config())}
        if writer is not None:
            entry["weights"] = [
                writer.add(f"{name}/layer{index}/{position}", np.asarray(weight))
                for position, weight in enumerate(layer.get_weights())
            ]
        entries.append(entry)
    item = {
        "kind": "model",
        "model_class": "Sequential" if type(model).__name__ == "Sequential" else "Functional",
        "input_shape": _input_shape(model),
        "layers": entries,
        "compile": _compile_item(model),
        "optimizer_state": None if writer is None else _optimizer_state(model, layers, name, writer),
    }
    if writer is not None:
        item["fits"] = _fits_item(model, name, writer)
    return item


def _history_item(history, namespace: dict, names) -> dict:
    values = {}
    for key, series in dict(history.history).items():
        values[str(key)] = [float(value) for value in series]
    params = {str(key): value for key, value in dict(history.params or {}).items()
              if isinstance(value, (int, np.integer)) and not isinstance(value, bool)}
    owner = getattr(history, "model", None)
    model_name = next((other for other in names if other in namespace and namespace[other] is owner
                       and owner is not None), None)
    return {"kind": "history", "history": values, "params": {k: int(v) for k, v in params.items()},
            "epoch": [int(epoch) for epoch in history.epoch], "model": model_name}


def _loaded_keras():
    """The kernel's Keras when the kernel imported it, else None: a value cannot be a Keras
    object otherwise, and importing TensorFlow here would cost seconds (a Part A kernel
    never imports it; the first export could run past the cell's time limit)."""
    return sys.modules.get("keras")


def _item(value, name: str, namespace: dict, names, writer: _Writer) -> dict:
    keras = _loaded_keras()
    try:
        if keras is not None and isinstance(value, keras.Model):
            return _model_item(value, name, writer)
        if keras is not None and isinstance(value, keras.callbacks.History):
            return _history_item(value, namespace, names)
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


def _call_item(function, args, name: str) -> dict:
    keras = _loaded_keras()
    try:
        if not callable(function) or isinstance(function, type) or (
                keras is not None and isinstance(function, keras.layers.Layer)):
            return {"kind": "unsupported", "unsupported": type(function).__name__}
        result = function(*args)
        keras = _loaded_keras()  # the call may have imported it
        if keras is not None and isinstance(result, keras.Model):
            return _model_item(result, name, None)
        if isinstance(result, np.generic):
            result = result.item()
        return {"kind": "value", **_value_fields(result)}  # plain data only (numbers, strings, ...)
    except _Unsupported as unsupported:
        return {"kind": "unsupported", "unsupported": str(unsupported)}
    except BaseException as error:
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        return {"kind": "error", "error": f"{type(error).__name__}: {_short(error)}"}


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
        items[name] = {"kind": "missing"} if name not in namespace else _item(
            namespace[name], name, namespace, names, writer)
    calls = []
    for number, call in enumerate(request.get("calls", [])):
        builder, args = str(call["builder"]), list(call.get("args", []))
        function = namespace.get(builder)
        result = {"kind": "missing"} if builder not in namespace else _call_item(
            function, args, f"call{number}")
        calls.append({"builder": builder, "args": args, "result": result})
    folder = os.path.join(out_dir, grade_id)
    os.makedirs(folder, exist_ok=True)
    manifest = {"format": FORMAT, "grade_id": grade_id, "items": items, "calls": calls}
    with open(os.path.join(folder, "manifest.json"), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, allow_nan=True)
    if writer.arrays:
        with open(os.path.join(folder, "arrays.npz"), "wb") as handle:
            np.savez(handle, **writer.arrays)
