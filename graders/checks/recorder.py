"""What each ``fit`` call was given, and the grading budget applied inside ``fit``.

Part of the kernel kit, switched on only while grading: ``hw5_data.prepare_session``
calls :func:`install` when nbgrader grades or validates *and* ``graders`` is
importable. A student at home (or ``nbgrader validate`` where ``graders`` is absent)
gets no wrapper: ``keras.Model.fit`` is Keras's own.

While grading, the notebook's arrays are the full data set (60,000 / 10,000 rows),
exactly as at home, so a slice, a conversion, an index or a concatenation means what
it means at home. The budget applies inside ``fit``: each call

1. records what it was given, an order-insensitive *fit record*: one 64-bit hash per
   image (of its float32 pixels) and one class per label, for the training and the
   validation data (``graders.checks.data_checks`` compares them with the full data);
2. trains and validates on the budget's rows of whatever it was given, found by row
   fingerprint and kept in the order given (``x_train[:10000]`` holds a sixth of the
   budget's rows, and trains on them: the update count shows it). Data whose rows are
   none of the budget's (another preprocessing) is cut by position instead, so that a
   mistake still trains in seconds and is judged by its fit record;
3. trains those rows in an order of its own (a fresh permutation per epoch, or as given
   with ``shuffle=False``) and keeps each epoch's starting state on the model: the
   training evidence of :mod:`graders.checks.evidence`.

Inputs: NumPy arrays and anything ``np.asarray`` reads (tensors, float64, lists);
a finite ``tf.data.Dataset`` of ``(images, labels)`` batches is read once, and its
budget rows are trained as arrays with the dataset's own batch size. A generator or
a ``PyDataset`` is recorded as ``unknown`` and trained as given.

A *sample* (one side of a record) is one of:
  {"kind": "data", "images": int64 (n,), "labels": int64 (n,)}
  {"kind": "split", "fraction": float}    # validation_split: part of the training data
  {"kind": "none"}                        # no validation data
  {"kind": "unknown", "reason": str}      # input we do not read (a generator, ...)
A record is {"train": sample, "validation": sample}. Nothing here makes the
student's ``fit`` fail: an error while recording is recorded, and ``fit`` runs as given.
"""

from __future__ import annotations

import functools
import inspect
import sys
from dataclasses import dataclass

import numpy as np

FIT_RECORDS_ATTRIBUTE = "_hw5_fit_records"
#: Beyond this many rows a tf.data.Dataset is not read (recorded as unknown).
MAX_FINGERPRINT_ROWS = 200_000
_HASH_SEED = 20260605
_HASH_CHUNK = 4096
_hash_keys: dict[int, np.ndarray] = {}


# ----- fingerprints ----------------------------------------------------------------------


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
        chunk = np.ascontiguousarray(images[start : start + _HASH_CHUNK], dtype=np.float32)
        words = chunk.reshape(len(chunk), width).view(np.uint32).astype(np.uint64)
        out[start : start + len(chunk)] = words @ keys
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


def unknown(reason: str) -> dict:
    return {"kind": "unknown", "reason": str(reason)[:300]}


# ----- reading what fit was given ---------------------------------------------------------


@dataclass
class Given:
    """Inputs read as arrays: ``images`` ``(n, ...)``, ``labels`` ``(n, ...)``, and the batch
    size a dataset brought (None for arrays)."""

    images: np.ndarray
    labels: np.ndarray
    batch_size: int | None = None
    _hashes: np.ndarray | None = None

    def hashes(self) -> np.ndarray:
        """The rows' hashes, computed once (the record and the budget's cut share them)."""
        if self._hashes is None:
            self._hashes = row_hashes(self.images)
        return self._hashes

    def sample(self) -> dict:
        return {"kind": "data", "images": self.hashes(), "labels": label_classes(self.labels)}


def _is_dataset(value) -> bool:
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(value, tf.data.Dataset)


def _read_dataset(dataset) -> Given | str:
    """A finite dataset of ``(images, labels)`` batches, read once (tf.data gives a fresh
    iterator each time), or the reason it cannot be read."""
    if int(dataset.cardinality()) < 0:
        return "a tf.data.Dataset of infinite or unknown length"
    images, labels, rows, batch = [], [], 0, None
    for element in dataset.as_numpy_iterator():
        if not isinstance(element, tuple) or len(element) != 2:
            return "a tf.data.Dataset whose elements are not (images, labels)"
        x, y = np.asarray(element[0]), np.asarray(element[1])
        if x.ndim < 2 or y.ndim < 1 or x.shape[0] != y.shape[0]:
            return "a tf.data.Dataset whose elements are not batches of (images, labels)"
        batch = batch or x.shape[0]
        images.append(x)
        labels.append(y)
        rows += x.shape[0]
        if rows > MAX_FINGERPRINT_ROWS:
            return f"a tf.data.Dataset of more than {MAX_FINGERPRINT_ROWS:,} rows"
    if not images:
        return "an empty tf.data.Dataset"
    return Given(np.concatenate(images), np.concatenate(labels), batch)


def read_input(x, y=None) -> Given | str:
    """Arrays (or anything ``np.asarray`` reads) or a batched dataset as :class:`Given`,
    or the reason they cannot be read."""
    if _is_dataset(x):
        return _read_dataset(x) if y is None else "a dataset with separate labels"
    if not (isinstance(x, np.ndarray) or hasattr(x, "__array__") or isinstance(x, (list, tuple))):
        return f"a {type(x).__name__}"
    if y is None:
        return "inputs without labels"
    images, labels = np.asarray(x), np.asarray(y)
    if images.ndim < 1 or labels.ndim < 1 or images.shape[0] != labels.shape[0]:
        return f"{images.shape[:1]} images for {labels.shape[:1]} labels"
    return Given(images, labels)


def read_validation(validation_data) -> Given | str | None:
    """``validation_data`` as :class:`Given` (a 3-tuple's weights are dropped), a reason, or None."""
    if validation_data is None:
        return None
    if _is_dataset(validation_data):
        return read_input(validation_data)
    if isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
        return read_input(validation_data[0], validation_data[1])
    return f"validation_data of type {type(validation_data).__name__}"


# ----- the budget's rows ------------------------------------------------------------------


def budget_positions(
    hashes: np.ndarray, budget_hashes: np.ndarray, full_rows: int, budget_indices: np.ndarray
) -> np.ndarray:
    """Which of the given rows to train on, in the order given.

    ``hashes``: the given rows' hashes; ``budget_hashes``: the budget's rows (of the
    full split); ``full_rows``: the full split's size; ``budget_indices``: where the
    budget's rows sit in the full split. Rows found by fingerprint when any are;
    otherwise (no row is one of the budget's: another preprocessing) the budget's
    positions when the data has the full split's length, else evenly spaced rows in
    the same proportion.
    """
    found = np.flatnonzero(np.isin(hashes, budget_hashes))
    if len(found):
        return found
    if len(hashes) == full_rows:
        return np.sort(np.asarray(budget_indices))
    share = max(1, round(len(hashes) * len(budget_hashes) / full_rows)) if len(hashes) else 0
    return np.unique(np.linspace(0, len(hashes) - 1, share).astype(np.int64)) if share else found


@functools.lru_cache(maxsize=2)
def budget_rows(budget) -> dict:
    """``{"train": (hashes, indices), "test": (hashes, indices)}``: the budget's rows of the
    full data, preprocessed as the homework does, and where they sit in it."""
    import hw5_data
    from graders.checks.data_checks import budget_fingerprints

    full = hw5_data.BUDGETS["full"]
    prints = budget_fingerprints(full)
    rows = {}
    for split, size in (("train", budget.n_train), ("test", budget.n_test)):
        hashes, labels = prints[split]
        indices = hw5_data.stratified_indices(labels, size)
        rows[split] = (hashes[indices], indices)
    return rows


def _positions(given: Given, split: str, budget) -> np.ndarray:
    """Where the budget's rows of ``given`` sit in it (see :func:`budget_positions`)."""
    import hw5_data

    hashes, indices = budget_rows(budget)[split]
    full_rows = hw5_data.BUDGETS["full"].n_train if split == "train" else hw5_data.BUDGETS["full"].n_test
    return budget_positions(given.hashes(), hashes, full_rows, indices)


def _cut(given: Given, split: str, budget) -> tuple[np.ndarray, np.ndarray]:
    positions = _positions(given, split, budget)
    return given.images[positions], given.labels[positions]


def budget_row_numbers(given: Given, positions: np.ndarray, budget) -> np.ndarray | str:
    """Which row of the budget's training data (``data_checks.budget_arrays(budget)``'s
    order) each of ``given``'s ``positions`` holds, matched by image and label; or why
    some hold none (another preprocessing, a changed label)."""
    import hw5_data
    from graders.checks.data_checks import budget_fingerprints, pair_keys

    hashes, indices = budget_rows(budget)["train"]
    classes = budget_fingerprints(hw5_data.BUDGETS["full"])["train"][1][indices]
    try:
        given_classes = label_classes(given.labels[positions])
    except ValueError as error:
        return f"training labels the grader does not read ({error})"
    wanted = pair_keys(hashes, classes)
    found = pair_keys(given.hashes()[positions], given_classes)
    order = np.argsort(wanted, kind="stable")
    spot = np.minimum(np.searchsorted(wanted, found, sorter=order), len(wanted) - 1)
    matched = order[spot]
    if len(wanted) == 0 or not np.array_equal(wanted[matched], found):
        return "training rows that are not the budget's rows of x_train with their labels"
    return matched.astype(np.int64)


@dataclass
class FitPlan:
    """A call's record, and the arguments to call the real fit with (None: as given)."""

    record: dict
    arguments: dict | None = None


def plan_fit(arguments: dict, budget) -> FitPlan:
    """The record of one ``fit`` call (its bound arguments, as Keras names them), and,
    under a budget smaller than the data, the same call on the budget's rows."""
    validation_data = arguments.get("validation_data")
    split = arguments.get("validation_split") or 0.0
    train = read_input(arguments.get("x"), arguments.get("y"))
    if validation_data is None and split:
        train_sample = train.sample() if isinstance(train, Given) else unknown(train)
        return FitPlan({"train": train_sample, "validation": {"kind": "split", "fraction": float(split)}})
    validation = read_validation(validation_data)
    record = {
        "train": train.sample() if isinstance(train, Given) else unknown(train),
        "validation": {"kind": "none"}
        if validation is None
        else (validation.sample() if isinstance(validation, Given) else unknown(validation)),
    }
    if (
        not isinstance(train, Given)
        or budget is None
        or (arguments.get("sample_weight") is not None or arguments.get("steps_per_epoch") is not None)
    ):
        return FitPlan(record)
    changed = dict(arguments)
    positions = _positions(train, "train", budget)
    changed["x"], changed["y"] = train.images[positions], train.labels[positions]
    if train.batch_size is not None:
        changed["batch_size"] = train.batch_size
    if isinstance(validation, Given):
        changed["validation_data"] = _cut(validation, "test", budget)
    if changed.get("self") is not None:  # a call on a model (tests plan without one)
        _own_the_order(changed, train, positions, budget)
    return FitPlan(record, changed)


_fit_calls = [0]


def _own_the_order(changed: dict, train: Given, positions: np.ndarray, budget) -> None:
    """Train on the budget's rows of ``train`` (``positions``) in an order of our own, and
    keep each epoch's starting state on the model (:mod:`graders.checks.evidence`).

    ``changed``: fit's bound arguments, rewritten in place: a ``tf.data`` pipeline of every
    epoch's batches with ``steps_per_epoch`` in place of the arrays, Keras's shuffle off,
    and the snapshot callback added to the student's callbacks.
    """
    from graders.checks import evidence

    model = changed["self"]
    batch_size = changed.get("batch_size") or 32  # Keras's default
    epochs = max(0, int(changed.get("epochs", 1)) - int(changed.get("initial_epoch", 0) or 0))
    _fit_calls[0] += 1
    images = np.asarray(changed["x"], dtype="float32")
    unbuilt = evidence.build_before_training(model, images)
    form = evidence.labels_form(changed["y"])
    rows = budget_row_numbers(train, positions, budget)
    problem = rows if isinstance(rows, str) else (form if isinstance(form, str) else None)
    problem = problem or unbuilt or evidence.unreplayable(model, changed)
    labels = np.asarray(changed["y"]) if isinstance(form, str) else form[1]
    local = evidence.epoch_orders(len(images), epochs, changed.get("shuffle", True), _fit_calls[0])
    optimizer = getattr(model, "optimizer", None)
    try:
        spec = None if optimizer is None else evidence.optimizer_spec(optimizer)
    except Exception as error:  # a student's optimizer whose config cannot be read
        spec, problem = None, problem or f"the optimizer's config could not be read ({type(error).__name__})"
    segment = {
        "batch_size": int(batch_size),
        "image_shape": [int(size) for size in images.shape[1:]],
        "labels": None if isinstance(form, str) else form[0],
        "optimizer": spec,
        "orders": [order if problem else rows[order] for order in local],
        "states": [],
        "problem": problem,
    }
    pipeline = evidence.ordered_batches(images, labels, int(batch_size), local)
    callbacks = [*list(changed.get("callbacks") or []), evidence.snapshot_callback(segment)]
    # Nothing below can fail: the segment is kept only for a call that trains as recorded.
    changed.update(x=pipeline, y=None, batch_size=None, shuffle=False, callbacks=callbacks)
    changed["steps_per_epoch"] = evidence.steps(len(images), int(batch_size))
    evidence.remember_segment(model, segment)


# ----- records on the model, and the wrapper ---------------------------------------------


def fit_records(model) -> list | None:
    """The records of every ``fit`` call on ``model``, in order; ``None`` when none was recorded."""
    records = getattr(model, FIT_RECORDS_ATTRIBUTE, None)
    return None if records is None else list(records)


def remember_fit(model, record: dict) -> None:
    """Add ``record`` to the model's records (bypassing Keras's attribute tracking)."""
    records = getattr(model, FIT_RECORDS_ATTRIBUTE, None) or ()
    object.__setattr__(model, FIT_RECORDS_ATTRIBUTE, (*records, record))


_original_fit = None


def install(budget) -> None:
    """Wrap ``keras.Model.fit`` so that each call records what it was given and trains on
    ``budget``'s rows of it (idempotent; the budget of the first call stays).

    The wrapper binds the call's arguments with fit's own signature (positional and
    keyword alike), plans (:func:`plan_fit`), then calls the real ``fit``: with the
    budget's rows, or unchanged when the input cannot be read.
    """
    global _original_fit
    import keras

    if _original_fit is not None:
        return
    original = keras.Model.fit
    signature = inspect.signature(original)

    @functools.wraps(original)
    def fit(self, *args, **kwargs):
        try:
            plan = plan_fit(signature.bind(self, *args, **kwargs).arguments, budget)
        except Exception as error:  # never break the student's fit
            plan = FitPlan(
                {
                    "train": unknown(f"fit's arguments: {type(error).__name__}: {error}"),
                    "validation": unknown("fit's arguments"),
                }
            )
        try:
            remember_fit(self, plan.record)
        except Exception:
            pass
        if plan.arguments is None:
            return original(self, *args, **kwargs)
        return original(**plan.arguments)

    keras.Model.fit = fit
    _original_fit = original


def installed() -> bool:
    return _original_fit is not None


def uninstall() -> None:
    """Put the real ``keras.Model.fit`` back (for tests)."""
    global _original_fit
    import keras

    if _original_fit is not None:
        keras.Model.fit = _original_fit
        _original_fit = None
