"""MNIST for HW5: one loader for the notebook, its tests and the grader.

Where the data comes from, in order:
1. the file named by the environment variable ``HW5_MNIST_PATH`` (an ``.npz`` with
   the keys ``x_train``, ``y_train``, ``x_test``, ``y_test``, as Keras ships it);
2. ``mnist.npz`` beside this file;
3. ``keras.datasets.mnist.load_data()``, which downloads once into ``~/.keras``.

The notebook always gets the full data set (60,000 / 10,000 images), at home and
while grading. While nbgrader grades (``NBGRADER_EXECUTION`` is ``autograde`` or
``validate``, with the course's grading kit installed), each ``fit`` trains on a
fixed, stratified subset of what it is given (the *budget*), so a submission grades
in seconds rather than minutes. ``HW5_GRADING_BUDGET=full`` grades on the whole
data set instead.
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
#: The arrays of an MNIST archive (as Keras ships it) and their shapes; the grader checks
#: the data file it grades with against these too.
MNIST_SHAPES = {
    "x_train": (60_000, *IMAGE_SHAPE),
    "y_train": (60_000,),
    "x_test": (10_000, *IMAGE_SHAPE),
    "y_test": (10_000,),
}

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
            arrays = {key: archive[key] for key in MNIST_SHAPES}
    except KeyError as missing:
        raise ValueError(f"{path} is not an MNIST archive: key {missing} is missing.") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} could not be read as an .npz archive: {error}") from None
    for key, shape in MNIST_SHAPES.items():
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
    """MNIST as ``(x_train, y_train), (x_test, y_test)`` in the raw Keras layout:
    ``(n, 28, 28)`` ``uint8`` images and ``(n,)`` ``uint8`` labels.

    The whole data set by default (the notebook's call, at home and while grading);
    ``budget``'s fixed, stratified subset when one is given (the grading checks).
    """
    budget = budget or BUDGETS["full"]
    (x_train, y_train), (x_test, y_test) = load_full_mnist()
    train = stratified_indices(y_train, budget.n_train)
    test = stratified_indices(y_test, budget.n_test)
    return (x_train[train], y_train[train]), (x_test[test], y_test[test])


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
    switch on the grading kit's budget inside ``fit`` (its ``recorder``), where the kit
    is installed: without it, nothing about training changes."""
    import keras

    keras.utils.set_random_seed(seed)
    if in_grading_mode():
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        warnings.showwarning = _show_warning_on_stdout
        try:
            from graders import checks as grading_kit
        except ImportError:  # validating at home: no grading kit, the full data
            return
        grading_kit.recorder.install(active_budget())
