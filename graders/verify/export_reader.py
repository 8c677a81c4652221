"""A strict reader for one graded cell's exports: ``manifest.json`` and ``arrays.npz``.

Everything here is written by the student's kernel, so it is read as hostile
input: regular files only, opened with ``O_NOFOLLOW`` relative to the folder;
size caps; JSON parsed by ``json.loads`` after a nesting-depth scan; every field
checked against the schema of ``graders.checks.kernel_export``; the npz's zip members
checked (names, declared sizes, ``.npy`` headers: dtype allowlist, shape bounds)
before ``np.load(allow_pickle=False)`` reads them. Any violation raises
:class:`ArtifactError`. Layer configs are only checked to be JSON here;
``graders.verify.rebuild`` allowlists their classes and keys.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import zipfile

import numpy as np

from graders.checks.kernel_export import ARRAYS, FORMAT, MANIFEST, MAX_ARRAYS_BYTES, MAX_FITS, MAX_MANIFEST_BYTES
from graders.sandbox.hostfs import read_capped

MAX_UNCOMPRESSED_BYTES = 64 << 20  # all members together, as declared
MAX_JSON_DEPTH = 32
MAX_DIMS, MAX_ELEMENTS = 4, 10_000_000
DTYPES = frozenset({"float16", "float32", "float64", "int32", "int64", "bool"})
MAX_LAYERS, MAX_CALLS, MAX_LIST = 64, 64, 10_000
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}\Z")
_KEY = re.compile(r"[A-Za-z0-9_/]{1,200}\Z")


class ArtifactError(ValueError):
    """The exports break the format or a limit; the message says which."""


def _open_regular(folder_fd: int, name: str, cap: int) -> bytes:
    """The bytes of a regular file ``name`` in the folder, at most ``cap`` of them."""
    try:
        data = read_capped(name, cap, dir_fd=folder_fd)
    except OverflowError as error:
        raise ArtifactError(f"{name}: {error}; the limit is {cap:,} bytes") from None
    except (ValueError, OSError) as error:
        raise ArtifactError(f"{name} cannot be read ({error}); a link is refused") from None
    if data is None:
        raise ArtifactError(f"{name} cannot be opened (it does not exist)")
    return data


def _check_depth(text: str) -> None:
    """Reject JSON nested deeper than ``MAX_JSON_DEPTH`` before the parser recurses.

    One pass, no regular expression: a crafted string must not cost quadratic time."""
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise ArtifactError(f"{MANIFEST} is nested deeper than {MAX_JSON_DEPTH} levels")
        elif char in "]}":
            depth -= 1


def _no_duplicates(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise ArtifactError(f"{MANIFEST} repeats the key {key!r}")
        result[key] = value
    return result


def parse_manifest(data: bytes) -> dict:
    """JSON with NaN/Infinity constants allowed (the schema decides where), depth-limited."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ArtifactError(f"{MANIFEST} is not UTF-8") from None
    _check_depth(text)
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as error:
        if isinstance(error, ArtifactError):
            raise
        raise ArtifactError(f"{MANIFEST} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ArtifactError(f"{MANIFEST} is not a JSON object")
    return value


# ----- schema ---------------------------------------------------------------------------


def _fail(where: str, what: str):
    raise ArtifactError(f"{where}: {what}")


def _object(value, where: str, required: set, optional: set = frozenset()) -> dict:
    if not isinstance(value, dict):
        _fail(where, "is not an object")
    keys = set(value)
    if not required <= keys or not keys <= required | optional:
        _fail(where, f"has keys {sorted(keys)}; expected {sorted(required)} (+ {sorted(optional)})")
    return value


def _int(value, where: str, low: int = 0, high: int = 2**53) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _fail(where, f"should be an integer in {low}..{high}, found {value!r}")
    return value


def _float(value, where: str, finite: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(where, f"should be a number, found {type(value).__name__}")
    if finite and not math.isfinite(value):
        _fail(where, f"should be finite, found {value!r}")
    return float(value)


def _str(value, where: str, pattern=None, limit: int = 10_000) -> str:
    if not isinstance(value, str) or len(value) > limit or (pattern and not pattern.match(value)):
        _fail(where, f"should be a string{' of the form ' + pattern.pattern if pattern else ''}")
    return value


def _list(value, where: str, limit: int = MAX_LIST) -> list:
    if not isinstance(value, list) or len(value) > limit:
        _fail(where, f"should be a list of at most {limit} entries")
    return value


def _optional(value, check, where: str, *args):
    return None if value is None else check(value, where, *args)


def _plain_value(value, where: str, depth: int = 0) -> None:
    """A value item: str/int/float/bool/None, lists, and ``{"tuple": [...]}``."""
    if depth > 8:
        _fail(where, "is nested too deeply")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, float):
        _float(value, where)  # an answer is finite: NaN/inf is refused (histories and weights allow it)
    elif isinstance(value, int):
        _int(value, where, -(2**63), 2**63)
    elif isinstance(value, str):
        _str(value, where, limit=100_000)
    elif isinstance(value, list):
        for item in _list(value, where):
            _plain_value(item, where, depth + 1)
    elif isinstance(value, dict):
        _plain_value(_object(value, where, {"tuple"})["tuple"], where, depth)
        if not isinstance(value["tuple"], list):
            _fail(where, "a tuple should hold a list")
    else:
        _fail(where, f"holds a {type(value).__name__}")


def _sample(sample, where: str, keys: set) -> None:
    """One side of a fit record: data (two arrays by key; their dtype and shape are checked
    where they are used, ``rebuild.fit_records``), a split, none, or unknown."""
    kind = sample.get("kind") if isinstance(sample, dict) else None
    if kind == "data":
        _object(sample, where, {"kind", "images", "labels"})
        for field in ("images", "labels"):
            keys.add(_str(sample[field], f"{where}.{field}", _KEY))
    elif kind == "split":
        fraction = _float(_object(sample, where, {"kind", "fraction"})["fraction"], where + ".fraction")
        if not 0 < fraction < 1:
            _fail(where + ".fraction", f"should lie between 0 and 1, found {fraction!r}")
    elif kind == "none":
        _object(sample, where, {"kind"})
    elif kind == "unknown":
        _str(_object(sample, where, {"kind", "reason"})["reason"], where + ".reason", None, 1000)
    else:
        _fail(where, "is not a fit sample of a known kind")


def _fits(fits, where: str, keys: set) -> None:
    for index, record in enumerate(_list(fits, where, MAX_FITS)):
        _object(record, f"{where}[{index}]", {"train", "validation"})
        _sample(record["train"], f"{where}[{index}].train", keys)
        _sample(record["validation"], f"{where}[{index}].validation", keys)


_SLOT = re.compile(r"[0-9]{1,4}/[a-z_]{1,40}\Z")


def _state(state, where: str, keys: set) -> None:
    _object(state, where, {"weights", "iterations", "slots", "unmapped"})
    for key in _list(state["weights"], where + ".weights", 16 * MAX_LAYERS):
        keys.add(_str(key, where + ".weights", _KEY))
    _optional(state["iterations"], _int, where + ".iterations")
    slots = _object(
        state["slots"], where + ".slots", set(), set(state["slots"]) if isinstance(state["slots"], dict) else set()
    )
    if len(slots) > 8 * MAX_LAYERS:
        _fail(where + ".slots", "has too many entries")
    for slot, key in slots.items():
        _str(slot, where + ".slots", _SLOT)
        keys.add(_str(key, f"{where}.slots[{slot!r}]", _KEY))
    for path in _list(state["unmapped"], where + ".unmapped", 64):
        _str(path, where + ".unmapped", None, 200)


def _segment(segment, where: str, keys: set) -> None:
    """One fit call's training evidence (``graders.checks.evidence``): orders and states by key;
    the arrays' dtypes and shapes are checked where they are used (``rebuild.evidence``)."""
    _object(segment, where, {"batch_size", "image_shape", "labels", "optimizer", "orders", "states", "problem"})
    _int(segment["batch_size"], where + ".batch_size", 1, 1 << 20)
    for size in _list(segment["image_shape"], where + ".image_shape", MAX_DIMS):
        _int(size, where + ".image_shape", 1, 1 << 20)
    labels = segment["labels"]
    if labels is not None:
        if isinstance(labels, dict) and labels.get("form") == "one_hot":
            _int(_object(labels, where + ".labels", {"form", "width"})["width"], where + ".labels.width", 2, 4096)
        elif isinstance(labels, dict) and labels.get("form") == "classes":
            if not isinstance(_object(labels, where + ".labels", {"form", "column"})["column"], bool):
                _fail(where + ".labels.column", "should be true or false")
        else:
            _fail(where + ".labels", "is not a known form of labels")
    if segment["optimizer"] is not None:
        spec = _object(segment["optimizer"], where + ".optimizer", {"class_name", "config"})
        _str(spec["class_name"], where + ".optimizer.class_name", _NAME)
        config = _object(
            spec["config"],
            where + ".optimizer.config",
            set(),
            set(spec["config"]) if isinstance(spec["config"], dict) else set(),
        )
        for name, value in config.items():
            _str(name, where + ".optimizer.config", _NAME)
            _plain_value(value, f"{where}.optimizer.config[{name!r}]")
    for key in _list(segment["orders"], where + ".orders", 1000):
        keys.add(_str(key, where + ".orders", _KEY))
    for index, state in enumerate(_list(segment["states"], where + ".states", 1001)):
        _state(state, f"{where}.states[{index}]", keys)
    _optional(segment["problem"], _str, where + ".problem", None, 1000)


def _evidence(evidence, where: str, keys: set) -> None:
    _object(evidence, where, {"segments", "problem"})
    _optional(evidence["problem"], _str, where + ".problem", None, 1000)
    for index, segment in enumerate(_list(evidence["segments"], where + ".segments", MAX_FITS)):
        _segment(segment, f"{where}.segments[{index}]", keys)


def _model(item: dict, where: str, keys: set) -> None:
    _object(
        item,
        where,
        {"kind", "model_class", "input_shape", "layers", "compile", "optimizer_state"},
        {"fits", "mapped", "probe", "evidence"},
    )
    if item.get("fits") is not None:
        _fits(item["fits"], where + ".fits", keys)
    if item.get("evidence") is not None:
        _evidence(item["evidence"], where + ".evidence", keys)
    if "mapped" in item:  # read in another form than the student's: confirmed on the probe images
        for note in _list(item["mapped"], where + ".mapped", 64):
            _str(note, where + ".mapped", None, 300)
        if item.get("probe") is not None:
            keys.add(_str(item["probe"], where + ".probe", _KEY))
    elif "probe" in item:
        _fail(where, "has probe predictions but no mapping notes")
    if item["model_class"] not in ("Sequential", "Functional"):
        _fail(where, f"model_class {item['model_class']!r} is not Sequential or Functional")
    shape = item["input_shape"]
    if shape is not None:
        for dim in _list(shape, where + ".input_shape", MAX_DIMS):
            _int(dim, where + ".input_shape", 1, 4096)
    for index, layer in enumerate(_list(item["layers"], where + ".layers", MAX_LAYERS)):
        place = f"{where}.layers[{index}]"
        _object(layer, place, {"class_name", "config"}, {"weights"})
        _str(layer["class_name"], place + ".class_name", _NAME)
        _object(
            layer["config"],
            place + ".config",
            set(),
            set(layer["config"]) if isinstance(layer["config"], dict) else set(),
        )
        for key in _list(layer.get("weights", []), place + ".weights", 16):
            keys.add(_str(key, place + ".weights", _KEY))
    compiled = item["compile"]
    if compiled is not None:
        _object(compiled, where + ".compile", {"optimizer", "loss", "loss_class", "metrics"})
        opt = _object(
            compiled["optimizer"],
            where + ".compile.optimizer",
            {"class_name", "class_path", "learning_rate", "momentum", "nesterov"},
        )
        _str(opt["class_name"], where + ".optimizer.class_name", _NAME)
        _str(opt["class_path"], where + ".optimizer.class_path", None, 300)
        if isinstance(opt["learning_rate"], dict):
            _object(opt["learning_rate"], where + ".learning_rate", {"schedule"})
        else:
            _float(opt["learning_rate"], where + ".learning_rate")
        _float(opt["momentum"], where + ".momentum")
        if not isinstance(opt["nesterov"], bool):
            _fail(where + ".nesterov", "should be true or false")
        _optional(compiled["loss"], _str, where + ".loss", None, 200)
        _optional(compiled["loss_class"], _str, where + ".loss_class", _NAME)
        for metric in _list(compiled["metrics"], where + ".metrics", 16):
            _str(metric, where + ".metrics", None, 200)
    state = item["optimizer_state"]
    if state is not None:
        _object(state, where + ".optimizer_state", {"iterations", "learning_rate", "momentums", "slots"})
        for slot in _list(state["slots"], where + ".slots", 8 * MAX_LAYERS):
            _str(slot, where + ".slots[]", None, 500)
        _int(state["iterations"], where + ".iterations")
        _optional(state["learning_rate"], _float, where + ".optimizer_state.learning_rate")
        for slot in _list(state["momentums"], where + ".momentums", 4 * MAX_LAYERS):
            _object(slot, where + ".momentums[]", {"layer", "weight", "path", "key"})
            _int(slot["layer"], where + ".momentums[].layer", 0, MAX_LAYERS)
            _int(slot["weight"], where + ".momentums[].weight", 0, 16)
            _str(slot["path"], where + ".momentums[].path", None, 500)
            keys.add(_str(slot["key"], where + ".momentums[].key", _KEY))


def _history(item: dict, where: str) -> None:
    _object(item, where, {"kind", "history", "params", "epoch", "model"})
    _object(
        item["history"], where + ".history", set(), set(item["history"]) if isinstance(item["history"], dict) else set()
    )
    for key, series in item["history"].items():
        _str(key, where + ".history", None, 100)
        for value in _list(series, f"{where}.history[{key!r}]"):
            _float(value, f"{where}.history[{key!r}]", finite=False)  # a diverging run gives NaN
    params = item["params"]
    _object(params, where + ".params", set(), set(params) if isinstance(params, dict) else set())
    for key, value in params.items():
        _str(key, where + ".params", _NAME)
        _int(value, f"{where}.params[{key!r}]", 0, 10**9)
    for epoch in _list(item["epoch"], where + ".epoch"):
        _int(epoch, where + ".epoch", 0, 10**6)
    _optional(item["model"], _str, where + ".model", _NAME)


def _item(item, where: str, keys: set, arrays_meta: dict, weights_allowed: bool = True) -> None:
    if not isinstance(item, dict) or item.get("kind") not in (
        "missing",
        "callable",
        "value",
        "array",
        "model",
        "history",
        "unsupported",
        "error",
        "unrepresentable",
    ):
        _fail(where, "is not an item of a known kind")
    kind = item["kind"]
    if kind in ("missing", "callable"):
        _object(item, where, {"kind"})
    elif kind == "unsupported":
        _str(_object(item, where, {"kind", "unsupported"})["unsupported"], where, None, 1000)
    elif kind == "error":
        _str(_object(item, where, {"kind", "error"})["error"], where, None, 10_000)
    elif kind == "unrepresentable":
        _object(item, where, {"kind", "type", "reason"})
        _str(item["type"], where + ".type", None, 100)
        _str(item["reason"], where + ".reason", None, 1000)
    elif kind == "value":
        _object(item, where, {"kind", "value", "tuple"})
        _plain_value(item["value"], where)
        if not isinstance(item["tuple"], bool) or (item["tuple"] and not isinstance(item["value"], list)):
            _fail(where, "tuple should be true (with a list) or false")
    elif kind == "array":
        _object(item, where, {"kind", "key", "dtype", "shape"})
        key = _str(item["key"], where + ".key", _KEY)
        if item["dtype"] not in DTYPES:
            _fail(where, f"dtype {item['dtype']!r} is not allowed")
        shape = tuple(_int(dim, where + ".shape", 0, MAX_ELEMENTS) for dim in _list(item["shape"], where, MAX_DIMS))
        keys.add(key)
        arrays_meta[key] = (item["dtype"], shape)
    elif kind == "model":
        # a builder's result carries weights only to confirm a mapped reading (its probe)
        weights_allowed = weights_allowed or item.get("probe") is not None
        if not weights_allowed and (
            item.get("optimizer_state") is not None
            or any("weights" in layer for layer in item.get("layers") or [] if isinstance(layer, dict))
        ):
            _fail(where, "a builder's result is exported without weights")
        if not weights_allowed and (item.get("fits") is not None or item.get("evidence") is not None):
            _fail(where, "a builder's result is exported without fit records or training evidence")
        _model(item, where, keys)
    else:
        _history(item, where)


def validate_manifest(manifest: dict, grade_id: str | None = None) -> set:
    """Check every field; returns the set of array keys the manifest names."""
    _object(manifest, MANIFEST, {"format", "grade_id", "items", "calls"})
    if manifest["format"] != FORMAT:
        _fail(MANIFEST, f"format {manifest['format']!r} is not {FORMAT!r}")
    _str(manifest["grade_id"], "grade_id", None, 200)
    if grade_id is not None and manifest["grade_id"] != grade_id:
        _fail("grade_id", f"{manifest['grade_id']!r} is not this cell's {grade_id!r}")
    keys: set[str] = set()
    arrays_meta: dict = {}
    items = manifest["items"]
    _object(items, "items", set(), set(items) if isinstance(items, dict) else set())
    for name, item in items.items():
        _str(name, "items", _NAME)
        _item(item, f"items[{name!r}]", keys, arrays_meta)
    for index, call in enumerate(_list(manifest["calls"], "calls", MAX_CALLS)):
        place = f"calls[{index}]"
        _object(call, place, {"builder", "args", "result"})
        _str(call["builder"], place + ".builder", _NAME)
        for arg in _list(call["args"], place + ".args", 8):
            _float(arg, place + ".args")
        _item(call["result"], place + ".result", keys, {}, weights_allowed=False)
    manifest["_array_meta"] = arrays_meta
    return keys


# ----- npz ------------------------------------------------------------------------------


def _npy_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo):
    """(dtype, shape) from a member's ``.npy`` header, read before any data."""
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
            else:
                raise ArtifactError(f"{info.filename}: .npy version {version} is not allowed")
        except ValueError as error:
            raise ArtifactError(f"{info.filename}: bad .npy header: {error}") from None
    return dtype, shape


def read_arrays(data: bytes, wanted: set) -> dict:
    """The arrays named in ``wanted`` from the npz bytes; every member must be wanted."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise ArtifactError(f"{ARRAYS} is not a valid zip: {error}") from None
    names = {}
    total = 0
    for info in members:
        key = info.filename[:-4] if info.filename.endswith(".npy") else None
        if key is None or key not in wanted or key in names:
            raise ArtifactError(f"{ARRAYS} holds {info.filename!r}, which the manifest does not name")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ArtifactError(f"{info.filename}: compression {info.compress_type} is not allowed")
        total += info.file_size
        if info.file_size > MAX_UNCOMPRESSED_BYTES or total > MAX_UNCOMPRESSED_BYTES:
            raise ArtifactError(
                f"{ARRAYS} declares {total:,} uncompressed bytes; the limit is {MAX_UNCOMPRESSED_BYTES:,}"
            )
        names[key] = info
    missing = wanted - set(names)
    if missing:
        raise ArtifactError(f"{ARRAYS} lacks {sorted(missing)[:5]}")
    for key, info in names.items():
        try:
            dtype, shape = _npy_header(archive, info)
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise ArtifactError(f"{info.filename}: unreadable: {error}") from None
        if dtype.name not in DTYPES or dtype.hasobject:
            raise ArtifactError(f"{key}: dtype {dtype} is not allowed")
        if len(shape) > MAX_DIMS or math.prod(shape) > MAX_ELEMENTS:
            raise ArtifactError(f"{key}: shape {shape} is too large")
        if math.prod(shape) * dtype.itemsize > info.file_size:
            raise ArtifactError(f"{key}: shape {shape} needs more bytes than the member holds")
    arrays = {}
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as loaded:
            for key in names:
                arrays[key] = np.asarray(loaded[key])
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as error:
        raise ArtifactError(f"{ARRAYS} could not be read: {type(error).__name__}: {error}") from None
    return arrays


def read_cell_exports(folder) -> dict:
    """``{"manifest": dict, "arrays": {key: np.ndarray}}`` for one cell's export folder.

    The folder's base name is the cell's grade_id; it may hold only ``manifest.json``
    and ``arrays.npz`` (the latter only when the manifest names arrays).
    """
    folder = os.fspath(folder)
    try:
        folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        raise ArtifactError(f"the export folder cannot be opened ({error.strerror})") from None
    try:
        entries = set(os.listdir(folder_fd))
        extra = entries - {MANIFEST, ARRAYS}
        if extra:
            raise ArtifactError(f"the export folder holds unexpected files: {sorted(extra)[:5]}")
        if MANIFEST not in entries:
            raise ArtifactError(f"the export folder has no {MANIFEST}")
        manifest = parse_manifest(_open_regular(folder_fd, MANIFEST, MAX_MANIFEST_BYTES))
        wanted = validate_manifest(manifest, os.path.basename(os.path.normpath(folder)))
        array_meta = manifest.pop("_array_meta")
        arrays = {}
        if wanted or ARRAYS in entries:
            if ARRAYS not in entries:
                raise ArtifactError(f"the manifest names arrays but there is no {ARRAYS}")
            arrays = read_arrays(_open_regular(folder_fd, ARRAYS, MAX_ARRAYS_BYTES), wanted)
    finally:
        os.close(folder_fd)
    for key, (dtype, shape) in array_meta.items():
        if arrays[key].dtype.name != dtype or arrays[key].shape != shape:
            raise ArtifactError(
                f"{key}: the manifest says {dtype}{list(shape)}, the array is "
                f"{arrays[key].dtype}{list(arrays[key].shape)}"
            )
    return {"manifest": manifest, "arrays": arrays}
