"""Evidence that a model's graded training happened as claimed, and its check.

Kernel side (with the recorder, only while grading): each budgeted ``fit`` call trains on
an order of rows the recorder owns (a fresh permutation per epoch, or the rows as given
with ``shuffle=False``), and a callback keeps the model's *state* at each epoch's start
and at the end. One call's record is a *segment*::

    {"batch_size": int, "image_shape": [int, ...], "labels": {"form": "one_hot", "width": k}
     or {"form": "classes", "column": bool}, "optimizer": {"class_name": str, "config": {...}},
     "orders": [int64 (rows,) per epoch: rows of the budget's training data, in training order],
     "states": [state at each epoch's start..., state at the end],
     "problem": None or why the segment cannot be replayed}

A *state* is ``{"weights": [array per weight of describe.model_layers, in order],
"iterations": int or None (optimizer not built yet), "slots": {"<weight index>/<slot>":
array}, "unmapped": [optimizer variables no weight owns]}``.

Check side (:func:`check_evidence`, from ``check_training``, in the kernel and out of
it): the first epoch starts from a fresh optimizer; each epoch adds its batches to the
update count; each call starts where the one before ended; the last state is the model
being graded; and, where a replayer is set (the out-of-kernel verifier, with a key the
kernel never sees), one epoch drawn by that key is replayed on the instructor's data and
must land on the next recorded state. This module imports nothing of ``graders`` at
import time: the exporter loads it from its file (``kernel_export._sibling``).
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np

EVIDENCE_ATTRIBUTE = "_hw5_evidence"
#: The permutations' seed (with the kernel's fit count and the epoch): fixed, so that a
#: notebook graded twice trains the same way.
ORDER_SEED = 2027
#: The optimizer variables a weight may own, by suffix (Keras 3 names them
#: ``<optimizer>/<weight path with _>_<suffix>``).
SLOT_SUFFIXES = ("momentum", "velocity", "velocity_hat", "accumulator")
#: Keras's own optimizer classes a segment may name; the verifier rebuilds only these.
OPTIMIZER_CLASSES = ("SGD", "Adam", "RMSprop", "Adagrad")
#: A replay this close to the next state is the claimed training; this far or farther is
#: not; in between, a person looks. The gap is the largest difference (weights and
#: optimizer slots) over the replay's own largest move, or over REPLAY_FLOOR of the largest
#: value where the epoch barely moves (a diverged or stalled model: float32 rounding then
#: dominates). Measured: an honest replay lands exactly (0) in another process with the
#: same threads and deterministic ops, within 1e-7 without them; forged states miss by
#: 0.04 to 1.2, zeroed momentum buffers by 0.25, a chain standing still at lr 1e-5 by 0.04.
REPLAY_MATCH, REPLAY_MISMATCH, REPLAY_FLOOR = 1e-3, 1e-2, 1e-4
#: Layers whose training draws random numbers: an epoch of theirs is not replayed exactly.
RANDOM_LAYERS = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
                 "GaussianDropout", "AlphaDropout")  # fmt: skip


# ----- kernel side: state, order, segment ---------------------------------------------


def model_variables(model) -> list:
    """Every weight variable of ``describe.model_layers(model)``, in order: a state's weights."""
    from graders.checks.describe import model_layers

    return [variable for layer in model_layers(model) for variable in layer.weights]


def slot_variables(optimizer, variables: list) -> dict:
    """``"<weight index>/<slot>"`` -> the built ``optimizer``'s variable that weight
    ``variables[index]`` owns (Keras 3 names it ``<optimizer>/<weight path with _>_<slot>``)."""
    by_path = {variable.path: variable for variable in optimizer.variables}
    found = {}
    for index, variable in enumerate(variables):
        for suffix in SLOT_SUFFIXES:
            slot = by_path.get(f"{optimizer.name}/{variable.path.replace('/', '_')}_{suffix}")
            if slot is not None:
                found[f"{index}/{suffix}"] = slot
    return found


def state_of(model) -> dict:
    """The model's state now (see the module docstring): copies, never views."""
    variables = model_variables(model)
    state = {"weights": [np.array(variable.numpy()) for variable in variables], "iterations": None, "slots": {}}
    state["unmapped"] = []
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not getattr(optimizer, "built", False):
        return state
    state["iterations"] = int(np.asarray(optimizer.iterations))
    slots = slot_variables(optimizer, variables)
    state["slots"] = {name: np.array(slot.numpy()) for name, slot in slots.items()}
    placed = {id(optimizer.iterations), id(getattr(optimizer, "_learning_rate", None))} | {
        id(v) for v in slots.values()
    }
    state["unmapped"] = [variable.path for variable in optimizer.variables if id(variable) not in placed]
    return state


def optimizer_spec(optimizer) -> dict:
    """The nearest Keras optimizer class the optimizer is, and that class's config of it:
    what the replay rebuilds (a subclass that changes the update then fails the replay)."""
    for klass in type(optimizer).__mro__:
        module = getattr(klass, "__module__", "") or ""
        if module.startswith("keras.") and klass.__name__ in OPTIMIZER_CLASSES:
            config = klass.get_config(optimizer)
            return {"class_name": klass.__name__, "config": {k: v for k, v in config.items() if k != "name"}}
    return {"class_name": type(optimizer).__name__, "config": {}}


def labels_form(labels: np.ndarray) -> tuple[dict, np.ndarray] | str:
    """How the labels are written, and the labels in that canonical form (one-hot rows as
    float32, classes as int64), or why they have no such form."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] > 1:
        classes = np.argmax(labels, axis=1)
        canonical = np.eye(labels.shape[1], dtype="float32")[classes]
        if not np.array_equal(canonical, labels):
            return "labels that are not one-hot rows"
        return {"form": "one_hot", "width": int(labels.shape[1])}, canonical
    if labels.ndim in (1, 2) and labels.dtype.kind in "iuf" and labels.shape[1:] in ((), (1,)):
        classes = labels.astype(np.int64)
        if not np.array_equal(classes, labels):
            return "labels that are not whole numbers"
        return {"form": "classes", "column": labels.ndim == 2}, classes
    return f"labels of shape {labels.shape}"


def canonical_labels(form: dict, classes: np.ndarray) -> np.ndarray:
    """The labels of ``classes`` (int ``(n,)``) written in ``form`` (:func:`labels_form`)."""
    if form["form"] == "one_hot":
        return np.eye(form["width"], dtype="float32")[classes]
    classes = np.asarray(classes, dtype=np.int64)
    return classes[:, None] if form["column"] else classes


def epoch_orders(rows: int, epochs: int, shuffle, call_number: int) -> list[np.ndarray]:
    """Each epoch's order of ``rows`` rows: a fresh permutation per epoch (Keras's own
    ``shuffle=True``), or the rows as given (``shuffle=False``)."""
    if not shuffle:
        return [np.arange(rows) for _ in range(epochs)]
    return [np.random.default_rng([ORDER_SEED, call_number, epoch]).permutation(rows) for epoch in range(epochs)]


def ordered_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, orders: list[np.ndarray]):
    """One ``tf.data`` pipeline of every epoch's batches in ``orders``' order (an epoch's last
    batch may be short): with ``steps_per_epoch``, Keras keeps one iterator for all epochs."""
    import tensorflow as tf

    images, labels = tf.constant(images), tf.constant(labels)
    dataset = None
    for order in orders:
        epoch = tf.data.Dataset.from_tensor_slices(np.asarray(order, dtype=np.int64)).batch(batch_size)
        dataset = epoch if dataset is None else dataset.concatenate(epoch)
    return dataset.map(lambda rows: (tf.gather(images, rows), tf.gather(labels, rows)))


def steps(rows: int, batch_size: int) -> int:
    return -(-rows // batch_size)


def build_before_training(model, images: np.ndarray) -> str | None:
    """Create the weights of a model whose layers are not built yet (a subclassed model, a
    Sequential without an input), by calling it on one image, so that the first epoch's
    starting state holds them: with TensorFlow, Keras would create them inside the first
    training step. The same initializers draw in the same order, so the weights are those
    the first step would have made. Returns why that failed, or None."""
    from graders.checks.describe import model_layers

    try:
        if all(layer.built for layer in model_layers(model)) and getattr(model, "built", True):
            return None
        model(images[:1])
    except Exception as error:  # noqa: BLE001 - the student's model: fit meets it and says so
        return f"the model could not be built before training ({type(error).__name__})"
    return None


#: Layer settings that change training but that the verifier's rebuilt model leaves out.
_UNREBUILT_SETTINGS = ("kernel_regularizer", "bias_regularizer", "activity_regularizer",
                       "kernel_constraint", "bias_constraint")  # fmt: skip


def unreplayable(model, arguments: dict) -> str | None:
    """Why a ``fit`` call on ``model`` with ``arguments`` cannot be replayed out of kernel (the
    verifier trains a rebuilt chain of Keras layers with Keras's own step), or None."""
    import keras

    from graders.checks.describe import model_layers

    if arguments.get("class_weight") is not None:
        return "fit was given class_weight, which the replay does not apply"
    for method in ("train_step", "compute_loss"):
        if getattr(type(model), method, None) is not getattr(keras.Model, method, None):
            return f"the model defines its own {method}"
    for index, layer in enumerate(model_layers(model)):
        for setting in _UNREBUILT_SETTINGS:
            if getattr(layer, setting, None) is not None:
                return f"layer {index} ({type(layer).__name__}) has a {setting.replace('_', ' ')}"
    return None


def snapshot_callback(segment: dict):
    """A Keras callback that appends the model's state to ``segment["states"]`` at each
    epoch's start and at the end of training."""
    import keras

    class Snapshots(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            segment["states"].append(state_of(self.model))

        def on_train_end(self, logs=None):
            segment["states"].append(state_of(self.model))

    return Snapshots()


def segments_of(model) -> list | None:
    """The model's recorded segments, in order; None when none was recorded."""
    segments = getattr(model, EVIDENCE_ATTRIBUTE, None)
    return None if segments is None else list(segments)


def remember_segment(model, segment: dict) -> None:
    """Add ``segment`` to the model's evidence (bypassing Keras's attribute tracking)."""
    segments = getattr(model, EVIDENCE_ATTRIBUTE, None) or ()
    object.__setattr__(model, EVIDENCE_ATTRIBUTE, (*segments, segment))


# ----- check side -------------------------------------------------------------------------

_replay = {"replayer": None, "key": None}


def set_replayer(replayer, key: bytes | None) -> None:
    """Replay one drawn epoch of each checked model: ``replayer(model, segment, epoch) ->
    state`` (the verifier's, :mod:`graders.verify.replay`); ``key``: the host's secret that
    draws the epoch. ``None`` switches the replay off (the kernel never replays)."""
    _replay["replayer"], _replay["key"] = replayer, key


def replaying() -> bool:
    """Whether a replayer is set (the verifier): evidence is then required of a trained model."""
    return _replay["replayer"] is not None


def draw_epoch(key: bytes, label: str, count: int) -> int:
    """An epoch in ``0..count-1`` drawn from ``key`` and ``label``: unknown to whoever lacks the key."""
    digest = hmac.new(key, label.encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") % count


def _same_state(first: dict, second: dict, *, slots: bool = True) -> bool:
    if first["iterations"] != second["iterations"] or len(first["weights"]) != len(second["weights"]):
        return False
    pairs = list(zip(first["weights"], second["weights"]))
    if slots:
        if set(first["slots"]) != set(second["slots"]):
            return False
        pairs += [(first["slots"][key], second["slots"][key]) for key in first["slots"]]
    return all(a.shape == b.shape and np.array_equal(a, b, equal_nan=True) for a, b in pairs)


def replay_gap(replayed: dict, start: dict, claimed: dict) -> float:
    """How far a replayed epoch lands from the claimed next state, over how far the replay
    moved from the start (weights and slots; at least ``REPLAY_FLOOR`` of the largest
    value): 0 for the claimed training, about 1 for a state the epoch does not produce.
    ``inf`` when shapes, slots or NaNs do not even agree."""
    keys = sorted(claimed["slots"])
    if sorted(replayed["slots"]) != keys or len(replayed["weights"]) != len(claimed["weights"]):
        return float("inf")
    trio = [*zip(replayed["weights"], start["weights"], claimed["weights"])]
    trio += [(replayed["slots"][k], start["slots"].get(k, np.zeros_like(claimed["slots"][k])), claimed["slots"][k])
             for k in keys]  # fmt: skip
    off = moved = scale = 0.0
    for got, began, wanted in trio:
        if got.shape != wanted.shape or began.shape != wanted.shape:
            return float("inf")
        both_nan = np.isnan(got) & np.isnan(wanted)
        if np.any(np.isnan(got) != np.isnan(wanted)):
            return float("inf")
        off = max(off, float(np.max(np.abs(np.where(both_nan, 0, got - wanted)), initial=0.0)))
        moved = max(moved, float(np.nanmax(np.abs(got - began), initial=0.0)))
        scale = max(scale, float(np.nanmax(np.abs(wanted), initial=0.0)))
    if off == 0.0:
        return 0.0
    floor = max(moved, REPLAY_FLOOR * scale)
    return off / floor if floor else float("inf")


def _number(value) -> float | None:
    try:
        number = float(np.asarray(value))
    except (TypeError, ValueError):
        return None
    return number


def _settings_changed(model, spec: dict | None) -> str | None:
    """How the model's optimizer settings now differ from those it was trained with, or None."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or spec is None:
        return None
    for setting in ("learning_rate", "momentum"):
        then, now = _number(spec["config"].get(setting)), _number(getattr(optimizer, setting, None))
        if then is not None and now is not None and np.float32(then) != np.float32(now):
            return f"{setting.replace('_', ' ')} {then:g}, but its optimizer now says {now:g}"
    return None


def _budget_rows() -> int | None:
    """How many training images an epoch of the active grading budget holds (None outside grading)."""
    try:
        import hw5_data

        return hw5_data.active_budget().n_train if hw5_data.in_grading_mode() else None
    except Exception:  # noqa: BLE001 - no budget to hold the orders to
        return None


def check_evidence(model, label: str, *, required: bool) -> None:
    """The model's recorded training is one run of ``fit`` from a fresh optimizer that ends in
    the model as it is now, and, where a replayer is set, its drawn epoch replays.

    ``label``: names the model in the draw (the run, e.g. ``"momentum"``); ``required``:
    whether a model with no evidence fails (while grading: the recorder records every
    ``fit``). Raises ``GradingFailure`` for training that did not happen as claimed and
    ``CouldNotCheck`` where the evidence cannot be read or replayed here.
    """
    from graders.checks.failures import CouldNotCheck, GradingFailure
    from graders.checks.recorder import fit_records

    segments = segments_of(model)
    if not segments:
        if not required:
            return
        if fit_records(model) is None:
            raise GradingFailure(
                "The grader found no training of this model by fit: its history and update count were "
                "not produced by training it. Train it in the TODO cell with history = model.fit(...)."
            )
        raise CouldNotCheck.about(
            "the grader could not record how this model was trained",
            "fit was called in a way the recorder does not own (see the fit record), so no evidence of the training was kept",
        )
    for segment in segments:
        if segment.get("problem"):
            raise CouldNotCheck.about("the grader could not record how this model was trained", segment["problem"])
    epochs = [(segment, epoch) for segment in segments for epoch in range(len(segment["orders"]))]
    rows = _budget_rows()
    for number, (segment, epoch) in enumerate(epochs, start=1):
        order = segment["orders"][epoch]
        if rows is not None and (len(order) != rows or not np.array_equal(np.sort(order), np.arange(rows))):
            raise GradingFailure(
                f"Epoch {number} of this model's training used {len(np.unique(order)):,} different images "
                f"of the {rows:,} in x_train (in {len(order):,} rows). Train on all of x_train and y_train."
            )
    for number, segment in enumerate(segments):
        states = segment["states"]
        if len(states) != len(segment["orders"]) + 1:
            raise GradingFailure(
                "The recorded training of this model did not run to its end. Train it once with "
                "history = model.fit(...), and let the call finish."
            )
        for epoch, order in enumerate(segment["orders"]):
            begun = states[epoch]["iterations"] or 0
            if states[epoch + 1]["iterations"] != begun + steps(len(order), segment["batch_size"]):
                raise GradingFailure(
                    "The model's update count does not follow from its training: an epoch of "
                    f"{len(order):,} images in batches of {segment['batch_size']} makes "
                    f"{steps(len(order), segment['batch_size'])} updates, but the count went from {begun:,} "
                    f"to {states[epoch + 1]['iterations']:,}. Train the model with fit alone."
                )
        if number and not _same_state(segments[number - 1]["states"][-1], states[0]):
            raise GradingFailure(
                "The model changed between two fit calls. Build the model, then train it with one "
                "fit call and leave it as it is."
            )
    first = segments[0]["states"][0]
    if first["iterations"] or any(np.any(value != 0) for value in first["slots"].values()):
        raise GradingFailure(
            f"The model's optimizer had already made {first['iterations'] or 0:,} updates when its graded "
            "training began. Build a fresh model (with its own optimizer) and train it once."
        )
    changed = _settings_changed(model, segments[-1]["optimizer"])
    if changed:
        raise GradingFailure(
            f"The model was trained with {changed}. Set the optimizer's settings when you build "
            "the model, and leave them as they are after training."
        )
    if not _same_state(segments[-1]["states"][-1], state_of(model), slots=False):
        raise GradingFailure(
            "The model's weights are not the ones its training ended with: it was changed after "
            "fit. Keep the model exactly as model.fit(...) left it."
        )
    if _replay["replayer"] is None or not epochs:
        return
    segment, epoch = epochs[draw_epoch(_replay["key"], label, len(epochs))]
    _replay_one(model, segment, epoch)


def _replay_one(model, segment: dict, epoch: int) -> None:
    from graders.checks.failures import CouldNotCheck, GradingFailure

    random_layers = sorted({type(layer).__name__ for layer in model.layers if type(layer).__name__ in RANDOM_LAYERS})
    if random_layers:
        raise CouldNotCheck.about(
            "the grader could not replay this model's training",
            f"its {', '.join(random_layers)} layers draw random numbers while training",
        )
    start, claimed = segment["states"][epoch], segment["states"][epoch + 1]
    replayed = _replay["replayer"](model, segment, epoch)
    gap = replay_gap(replayed, start, claimed)
    if gap <= REPLAY_MATCH:
        return
    if gap >= REPLAY_MISMATCH:
        raise GradingFailure(
            f"The model's weights do not follow from its training: epoch {epoch + 1}, replayed by the "
            "grader on the same data with the model's own settings, does not end where the recorded "
            "training says it did. Train the model with fit alone, and do not change its weights."
        )
    raise CouldNotCheck.about(
        "the grader's replay of this model's training was not conclusive",
        f"epoch {epoch + 1} replayed to a relative gap of {gap:.3g} (match <= {REPLAY_MATCH}, mismatch >= {REPLAY_MISMATCH})",
    )
