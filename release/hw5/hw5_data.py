"""MNIST for HW5: one loader for the notebook, its tests and the grader.

Where the data comes from, in order:
1. the file named by the environment variable ``HW5_MNIST_PATH`` (an ``.npz`` with
   the keys ``x_train``, ``y_train``, ``x_test``, ``y_test``, as Keras ships it);
2. ``mnist.npz`` beside this file;
3. ``keras.datasets.mnist.load_data()``, which downloads once into ``~/.keras``.

How much of it is used (the *budget*):
- Students running the notebook themselves get the full data set (60,000 / 10,000).
- While nbgrader grades or validates (``NBGRADER_EXECUTION`` is ``autograde`` or
  ``validate``) the notebook trains on a fixed, stratified subset, so a submission
  grades in seconds rather than minutes. ``HW5_GRADING_BUDGET=full`` grades on
  the whole data set instead.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28)

#: Environment variables this module reads.
DATA_PATH_VARIABLE = "HW5_MNIST_PATH"
BUDGET_VARIABLE = "HW5_GRADING_BUDGET"
GRADING_MODES = ("autograde", "validate")

# Fixed once: the subset is a function of this seed alone, never of the run.
_SUBSET_SEED = 2026


@dataclass(frozen=True)
class Budget:
    """How many images are used for training and for testing."""

    name: str
    n_train: int
    n_test: int

    def describe(self) -> str:
        return (
            f"HW5 data budget: {self.name} "
            f"({self.n_train:,} training / {self.n_test:,} test images)"
        )


BUDGETS = {
    "fast": Budget("fast", n_train=1_000, n_test=500),
    "full": Budget("full", n_train=60_000, n_test=10_000),
}


def active_budget(environ=os.environ) -> Budget:
    """The budget for this run: ``fast`` while nbgrader grades, else ``full``."""
    if environ.get("NBGRADER_EXECUTION") not in GRADING_MODES:
        return BUDGETS["full"]
    name = environ.get(BUDGET_VARIABLE, "fast").strip().lower()
    if name not in BUDGETS:
        raise ValueError(
            f"{BUDGET_VARIABLE}={name!r} is not a known budget; use one of {sorted(BUDGETS)}."
        )
    return BUDGETS[name]


def in_grading_mode(environ=os.environ) -> bool:
    return environ.get("NBGRADER_EXECUTION") in GRADING_MODES


def _read_npz(path: Path):
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    except KeyError as missing:
        raise ValueError(f"{path} is not an MNIST archive: key {missing} is missing.") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} could not be read as an .npz archive: {error}") from None
    expected = {
        "x_train": (60_000, *IMAGE_SHAPE),
        "y_train": (60_000,),
        "x_test": (10_000, *IMAGE_SHAPE),
        "y_test": (10_000,),
    }
    for key, shape in expected.items():
        if arrays[key].shape != shape:
            raise ValueError(f"{path}: {key} has shape {arrays[key].shape}, expected {shape}.")
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _find_local_copy() -> Path | None:
    configured = os.environ.get(DATA_PATH_VARIABLE)
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"{DATA_PATH_VARIABLE}={configured!r} does not name a file. "
                "Point it at an MNIST .npz, or unset it to download with Keras."
            )
        return path
    beside = Path(__file__).with_name("mnist.npz")
    return beside if beside.is_file() else None


def load_full_mnist():
    """The whole of MNIST as ``(x_train, y_train), (x_test, y_test)``.

    Shapes: ``(60000, 28, 28)`` and ``(60000,)``, ``(10000, 28, 28)`` and
    ``(10000,)``; images are ``uint8`` in 0..255, labels ``uint8`` in 0..9.
    """
    local = _find_local_copy()
    if local is not None:
        return _read_npz(local)
    import keras  # imported late: a local copy needs no TensorFlow

    return keras.datasets.mnist.load_data()


def stratified_indices(labels: np.ndarray, size: int) -> np.ndarray:
    """``size`` indices into ``labels``, an equal share per class, fixed for all runs.

    The result is shuffled (by the fixed seed) so that classes are interleaved.
    """
    labels = np.asarray(labels)
    if size >= len(labels):
        return np.arange(len(labels))
    if size % NUM_CLASSES:
        raise ValueError(f"A stratified subset needs a multiple of {NUM_CLASSES} images, got {size}.")
    rng = np.random.default_rng(_SUBSET_SEED)
    per_class = size // NUM_CLASSES
    chosen = [
        rng.permutation(np.flatnonzero(labels == digit))[:per_class] for digit in range(NUM_CLASSES)
    ]
    return rng.permutation(np.concatenate(chosen))


def load_mnist(budget: Budget | None = None):
    """MNIST cut to ``budget`` (default: :func:`active_budget`).

    Returns ``(x_train, y_train), (x_test, y_test)`` in the raw Keras layout:
    ``(n_train, 28, 28)`` ``uint8`` images and ``(n_train,)`` ``uint8`` labels.

    The notebook's own call (no ``budget``) while grading on a subset returns the
    images as :class:`RowsOfFullData`, which remember how many rows a slice such as
    ``x_train[:10000]`` would hold on the full data set (see there).
    """
    tracked = budget is None and in_grading_mode()
    budget = budget or active_budget()
    (x_train, y_train), (x_test, y_test) = load_full_mnist()
    train = stratified_indices(y_train, budget.n_train)
    test = stratified_indices(y_test, budget.n_test)
    x_train, x_test = x_train[train], x_test[test]
    if tracked:
        x_train = RowsOfFullData.standing_for(x_train, len(y_train))
        x_test = RowsOfFullData.standing_for(x_test, len(y_test))
    return (x_train, y_train[train]), (x_test, y_test[test])


def preprocess(images: np.ndarray, labels: np.ndarray):
    """The homework's preprocessing, for the grading checks, which load the data themselves.

    ``(n, 28, 28)`` uint8 images become ``(n, 28, 28, 1)`` float32 in [0, 1];
    ``(n,)`` labels become ``(n, 10)`` one-hot float32 rows.
    """
    x = images.reshape((-1, *IMAGE_SHAPE, 1)).astype("float32") / 255.0
    y = np.eye(NUM_CLASSES, dtype="float32")[np.asarray(labels, dtype=int)]
    return x, y


def output_shape(model) -> tuple:
    """A Keras model's output shape with the batch axis, e.g. ``(None, 10)``, however the
    model was written: Keras's ``model.output_shape`` where it records one (Sequential,
    functional), else traced for the homework's images (a subclassed ``keras.Model``, which
    has no ``output_shape``)."""
    try:
        return tuple(model.output_shape)
    except AttributeError:
        import keras

        return tuple(model.compute_output_spec(keras.KerasTensor((None, *IMAGE_SHAPE, 1))).shape)


def all_layers(model) -> list:
    """A Keras model's layers in order, with the layers of nested models (a Sequential
    inside a Sequential, a subclassed model's sub-models) opened up; no InputLayer."""
    import keras

    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend(all_layers(layer))
        elif type(layer).__name__ != "InputLayer":
            found.append(layer)
    return found


def _show_warning_on_stdout(message, category, filename, lineno, file=None, line=None):
    sys.stdout.write(warnings.formatwarning(message, category, filename, lineno, line))


def prepare_session(seed: int) -> None:
    """Seed Python, NumPy and the backend. While grading, also force deterministic ops,
    show Python warnings on stdout (nbgrader zeroes a test cell with any stderr
    output, and a warning, e.g. Keras's about ``input_shape=``, is not an error), and
    record what every ``fit`` call trains on (:func:`install_fit_recorder`)."""
    import keras

    keras.utils.set_random_seed(seed)
    if in_grading_mode():
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        warnings.showwarning = _show_warning_on_stdout
        install_fit_recorder()


# ----- What each training run was given (grading mode only) ------------------------------
#
# While grading, the setup cell's prepare_session() wraps keras.Model.fit (a thin wrapper
# that records, then calls the real fit unchanged). Each call leaves on the model a
# *fit record*: an order-insensitive fingerprint of the training images and labels and
# of the validation data, which the grading checks compare with the budget's own arrays.
# A fingerprint is one 64-bit hash per image (of its float32 pixels) and one class per
# label, so shuffling or copying the data changes nothing, and nothing here can make
# the student's fit call fail: any error while fingerprinting is recorded instead.
#
# A *sample* (one side of a record) is one of:
#   {"kind": "data", "images": int64 (n,), "labels": int64 (n,), "full_rows": int | None}
#   {"kind": "split", "fraction": float}    # validation_split: part of the training data
#   {"kind": "none"}                        # no validation data
#   {"kind": "unknown", "reason": str}      # input we do not fingerprint (a generator, ...)
# A record is {"train": sample, "validation": sample}.

FIT_RECORDS_ATTRIBUTE = "_hw5_fit_records"
#: Beyond this many rows a dataset is not fingerprinted (recorded as unknown).
MAX_FINGERPRINT_ROWS = 200_000
_HASH_SEED = 20260605
_HASH_CHUNK = 4096
_hash_keys: dict[int, np.ndarray] = {}


class RowsOfFullData(np.ndarray):
    """An image array that stands for ``full_rows`` rows of the full data set.

    Under a grading budget ``x_train`` holds a subset, so ``x_train[:10000]`` is all of
    it, and the data alone cannot show that on the real data it would be a sixth.
    A row slice of this array records ``full_rows``: the rows the same slice takes
    from the full data set (``x_train[:10000]``: 10,000 of 60,000). Copies, reshapes
    that keep the first axis, arithmetic and permutations keep it; any other
    selection of rows forgets it (``None``: the data's own fingerprint decides).
    Only ever built while grading; a student's own run gets plain arrays.
    """

    full_rows = None

    @classmethod
    def standing_for(cls, array: np.ndarray, full_rows: int) -> "RowsOfFullData":
        view = np.asarray(array).view(cls)
        view.full_rows = int(full_rows)
        return view

    def __array_finalize__(self, obj):
        rows = getattr(obj, "full_rows", None)
        same_rows = (rows is not None and self.ndim >= 1 and getattr(obj, "ndim", 0) >= 1
                     and self.shape[0] == obj.shape[0])
        self.full_rows = rows if same_rows else None

    def __getitem__(self, key):
        result = super().__getitem__(key)
        try:
            if isinstance(result, RowsOfFullData):
                result.full_rows = self._rows_after(key, result)
        except Exception:  # never let bookkeeping break the student's indexing
            result.full_rows = None
        return result

    def _rows_after(self, key, result):
        if self.full_rows is None or self.ndim < 1 or result.ndim < 1:
            return None
        first = key[0] if isinstance(key, tuple) and key else key
        if isinstance(first, slice):
            return len(range(*first.indices(self.full_rows)))
        if first is None:  # a new first axis
            return None
        return self.full_rows if result.shape[0] == self.shape[0] else None


def _keys_for(width: int) -> np.ndarray:
    keys = _hash_keys.get(width)
    if keys is None:
        rng = np.random.default_rng([_HASH_SEED, width])
        keys = rng.integers(0, 2**63, size=width, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        _hash_keys[width] = keys
    return keys


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, element-wise on uint64."""
    values = values ^ (values >> np.uint64(30))
    values = values * np.uint64(0xBF58476D1CE4E5B9)
    values = values ^ (values >> np.uint64(27))
    values = values * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def row_hashes(images) -> np.ndarray:
    """One hash per row of ``images`` ``(n, ...)``, as int64 ``(n,)``.

    The rows are compared as float32 pixels (the homework's preprocessing: uint8 / 255),
    whatever their dtype or trailing shape: ``(n, 28, 28, 1)`` and ``(n, 784)`` hash
    alike. A multilinear hash of the 32-bit words with fixed odd 64-bit keys, then
    mixed: vectorised, about 60 ms for 60,000 MNIST rows.
    """
    images = np.asarray(images)
    rows = images.shape[0] if images.ndim else 0
    width = int(np.prod(images.shape[1:], dtype=np.int64)) if images.ndim > 1 else 1
    keys = _keys_for(width)
    out = np.empty(rows, dtype=np.uint64)
    for start in range(0, rows, _HASH_CHUNK):
        chunk = np.ascontiguousarray(images[start:start + _HASH_CHUNK], dtype=np.float32)
        words = chunk.reshape(len(chunk), width).view(np.uint32).astype(np.uint64)
        out[start:start + len(chunk)] = words @ keys
    return _mix(out ^ np.uint64(width)).view(np.int64)


def label_classes(labels) -> np.ndarray:
    """The class of each label as int64 ``(n,)``: the arg-max of a one-hot ``(n, k)`` row,
    or the value of an integer label ``(n,)``. Raises ValueError for anything else."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] > 1:
        return np.argmax(labels, axis=1).astype(np.int64)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim == 1 and labels.dtype.kind in "iuf":
        classes = labels.astype(np.int64)
        if labels.dtype.kind == "f" and not np.array_equal(classes, labels):
            raise ValueError("labels that are not whole numbers")
        return classes
    raise ValueError(f"labels of shape {labels.shape} and dtype {labels.dtype}")


def _unknown(reason: str) -> dict:
    return {"kind": "unknown", "reason": str(reason)[:300]}


def _array_sample(x, y) -> dict:
    if y is None:
        return _unknown("inputs without labels")
    full_rows = getattr(x, "full_rows", None)
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim < 1 or y.ndim < 1 or x.shape[0] != y.shape[0]:
        return _unknown(f"{x.shape[:1]} images for {y.shape[:1]} labels")
    return {"kind": "data", "images": row_hashes(x), "labels": label_classes(y),
            "full_rows": None if full_rows is None else int(full_rows)}


def _dataset_sample(dataset) -> dict:
    """Iterate the (finite, known-length) dataset once; tf.data gives a fresh iterator each
    time, so the student's training still sees every element."""
    cardinality = int(dataset.cardinality())
    if cardinality < 0:
        return _unknown("a tf.data.Dataset of infinite or unknown length")
    images, labels, rows = [], [], 0
    for element in dataset.as_numpy_iterator():
        if not isinstance(element, tuple) or len(element) not in (2, 3):
            return _unknown("a tf.data.Dataset whose elements are not (images, labels)")
        x, y = np.asarray(element[0]), np.asarray(element[1])
        if x.ndim < 2 or y.ndim < 1 or x.shape[0] != y.shape[0]:
            return _unknown("a tf.data.Dataset whose elements are not batches of (images, labels)")
        images.append(row_hashes(x))
        labels.append(label_classes(y))
        rows += x.shape[0]
        if rows > MAX_FINGERPRINT_ROWS:
            return _unknown(f"a tf.data.Dataset of more than {MAX_FINGERPRINT_ROWS:,} rows")
    return {"kind": "data", "images": np.concatenate(images) if images else np.zeros(0, np.int64),
            "labels": np.concatenate(labels) if labels else np.zeros(0, np.int64), "full_rows": None}


def _is_dataset(value) -> bool:
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(value, tf.data.Dataset)


def fingerprint_sample(x, y=None) -> dict:
    """A sample (see above) of inputs ``x`` and labels ``y``: arrays or tensors, or a batched
    ``tf.data.Dataset`` of ``(images, labels)``; anything else is ``unknown``, never an error."""
    try:
        if _is_dataset(x):
            return _dataset_sample(x) if y is None else _unknown("a dataset with separate labels")
        if isinstance(x, np.ndarray) or hasattr(x, "__array__"):
            return _array_sample(x, y)
        return _unknown(f"a {type(x).__name__}")
    except Exception as error:  # never break the student's fit
        return _unknown(f"fingerprinting failed: {type(error).__name__}: {error}")


def fit_record(arguments: dict) -> dict:
    """The record of one ``fit`` call, from its bound arguments (``x``, ``y``,
    ``validation_data``, ``validation_split``, as Keras names them)."""
    x, y = arguments.get("x"), arguments.get("y")
    validation_data = arguments.get("validation_data")
    split = arguments.get("validation_split") or 0.0
    if validation_data is not None:
        if _is_dataset(validation_data):
            validation = fingerprint_sample(validation_data)
        elif isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3):
            validation = fingerprint_sample(validation_data[0], validation_data[1])
        else:
            validation = _unknown(f"validation_data of type {type(validation_data).__name__}")
    elif split:
        validation = {"kind": "split", "fraction": float(split)}
        try:  # Keras trains on the first floor(n * (1 - split)) rows
            rows = len(x)
            at = int(np.floor(rows * (1.0 - float(split))))
            x, y = np.asarray(x)[:at], (None if y is None else np.asarray(y)[:at])
        except Exception as error:
            return {"train": _unknown(f"validation_split on a {type(x).__name__}: {error}"),
                    "validation": validation}
    else:
        validation = {"kind": "none"}
    return {"train": fingerprint_sample(x, y), "validation": validation}


def fit_records(model) -> list | None:
    """The records of every ``fit`` call on ``model``, in order; ``None`` when none was recorded."""
    records = getattr(model, FIT_RECORDS_ATTRIBUTE, None)
    return None if records is None else list(records)


def remember_fit(model, record: dict) -> None:
    """Add ``record`` to the model's records (bypassing Keras's attribute tracking)."""
    records = getattr(model, FIT_RECORDS_ATTRIBUTE, None) or ()
    object.__setattr__(model, FIT_RECORDS_ATTRIBUTE, (*records, record))


_original_fit = None


def install_fit_recorder() -> None:
    """Wrap ``keras.Model.fit`` so that each call records its data first (idempotent).

    The wrapper binds the call's arguments with fit's own signature (positional and
    keyword alike), records, then calls the real ``fit`` unchanged with the same
    arguments. A failure to record is itself recorded, never raised.
    """
    global _original_fit
    import functools
    import inspect

    import keras

    if _original_fit is not None:
        return
    original = keras.Model.fit
    signature = inspect.signature(original)

    @functools.wraps(original)
    def fit(self, *args, **kwargs):
        try:
            bound = signature.bind(self, *args, **kwargs)
            record = fit_record(bound.arguments)
        except Exception as error:
            record = {"train": _unknown(f"fit's arguments: {type(error).__name__}: {error}"),
                      "validation": _unknown("fit's arguments")}
        try:
            remember_fit(self, record)
        except Exception:
            pass
        return original(self, *args, **kwargs)

    keras.Model.fit = fit
    _original_fit = original


def uninstall_fit_recorder() -> None:
    """Put the real ``keras.Model.fit`` back (for tests)."""
    global _original_fit
    import keras

    if _original_fit is not None:
        keras.Model.fit = _original_fit
        _original_fit = None
