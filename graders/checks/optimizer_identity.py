"""Is the optimizer Keras's own SGD? Judged by what it is, never by its name.

A class named ``SGD`` can be Adam underneath (``class SGD(keras.optimizers.Adam)``),
and a subclass of Keras's SGD can override its update. So an optimizer is SGD
here only when:

- its class *is* Keras's ``keras.optimizers.SGD`` (module ``keras.src.optimizers.sgd``,
  no subclass, no other class under that name), and
- once built, its variables are exactly SGD's: the update count, the learning rate,
  and one ``..._momentum`` buffer per trainable weight when momentum > 0 (none
  otherwise). Adam's ``_velocity`` slots, or any slot SGD does not keep, fail.

The same plain-data rule (:func:`identity_problem`) runs in the student's kernel
(``model_checks``) and in the out-of-kernel verifier (``graders.verify``), which
reads the class path and the slot names from the export.
"""

from __future__ import annotations

#: Where Keras 3 defines its SGD; ``keras.optimizers.SGD`` is this class.
KERAS_SGD_PATH = "keras.src.optimizers.sgd.SGD"
#: The suffix Keras 3 gives each SGD momentum buffer (``<optimizer>/<weight path>_momentum``).
MOMENTUM_SUFFIX = "_momentum"


def class_path(cls) -> str:
    """``module.qualname`` of a class, e.g. ``keras.src.optimizers.sgd.SGD``."""
    return f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', '?')}"


def slot_names(optimizer) -> list[str] | None:
    """The optimizer's variables other than its update count and learning rate, by their
    name within the optimizer (``dense_kernel_momentum``); None before it is built."""
    if not getattr(optimizer, "built", False):
        return None
    skip = {id(getattr(optimizer, "iterations", None)), id(getattr(optimizer, "_learning_rate", None))}
    names = []
    for variable in optimizer.variables:
        if id(variable) in skip:
            continue
        path = str(getattr(variable, "path", getattr(variable, "name", "?")))
        names.append(path.split("/", 1)[-1])
    return names


def identity_problem(
    class_name: str, found_path: str, slots: list[str] | None, momentum: float, trainable_weights: int | None
) -> str | None:
    """What shows that an optimizer called ``class_name`` is not Keras's own SGD, or None.

    ``found_path``: its class's ``module.qualname``; ``slots``: :func:`slot_names` (None
    when not built); ``trainable_weights``: how many trainable weights the model has
    (None: unknown, the slot count is then not compared).
    Only an optimizer that claims to be SGD is judged: another class fails elsewhere
    with its own name.
    """
    if class_name != "SGD":
        return None
    if found_path != KERAS_SGD_PATH:
        return (
            f"The optimizer is a class named SGD defined in {found_path.rsplit('.', 1)[0]}, not "
            f"Keras's own SGD ({KERAS_SGD_PATH.replace('.src.optimizers.sgd', '.optimizers')}). "
            "Compile with keras.optimizers.SGD(learning_rate=..., momentum=...) itself, "
            "not a subclass or another optimizer under that name."
        )
    if slots is None:
        return None
    foreign = [name for name in slots if not name.endswith(MOMENTUM_SUFFIX)]
    if foreign:
        return (
            f"The optimizer keeps variables that SGD does not ({', '.join(foreign[:3])}): it "
            "is not Keras's own SGD. Compile with keras.optimizers.SGD itself."
        )
    wanted = trainable_weights if momentum > 0 else 0
    if trainable_weights is not None and len(slots) != wanted:
        return (
            f"The optimizer keeps {len(slots)} momentum buffers for {trainable_weights} trainable "
            f"weights at momentum {momentum:g}; Keras's SGD keeps {wanted}. Compile with "
            "keras.optimizers.SGD itself and train with model.fit."
        )
    return None


def optimizer_problem(model) -> str | None:
    """:func:`identity_problem` for a live model's optimizer (in the kernel)."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    momentum = getattr(optimizer, "momentum", 0.0)
    momentum = float(momentum) if isinstance(momentum, (int, float)) else 0.0
    try:
        trainable = len(model.trainable_weights)
    except Exception:  # a model that cannot say: the slot count is not compared
        trainable = None
    return identity_problem(
        type(optimizer).__name__, class_path(type(optimizer)), slot_names(optimizer), momentum, trainable
    )
