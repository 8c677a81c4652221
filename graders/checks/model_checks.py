"""Checks on model structure and compilation: layers, shapes, parameters, optimizer.

Each public check takes the student's real objects, raises ``GradingFailure`` with
an actionable message, and otherwise returns ``None``.
"""

from __future__ import annotations

import math

from graders.checks.describe import describe_layers, describe_model
from graders.checks.expected_data import expected, run_settings
from graders.checks.failures import GradingFailure, call_student, public_check
from graders.checks.optimizer_identity import optimizer_problem

_ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth"]

_HINTS = {
    "filters": "the number of filters is Conv2D's first argument",
    "kernel_size": "use a 3x3 kernel: kernel_size=(3, 3)",
    "strides": "use stride 1 for convolutions; pooling uses its pool size as stride",
    "padding": "use padding='valid' (no padding), as the homework says",
    "activation": "hidden layers use 'relu'; the output layer uses 'softmax'",
    "units": "the hidden Dense layer has 100 units and the output layer one unit per class (10)",
    "pool_size": "use 2x2 pooling: MaxPooling2D((2, 2))",
}


def require_model(model, name: str) -> None:
    import keras

    if not isinstance(model, keras.Model):
        raise GradingFailure(
            f"{name} should be a Keras model, but it is a {type(model).__name__}. "
            "Assign the value returned by your define_... function."
        )


def _layer_label(index: int, layer: dict) -> str:
    ordinal = _ORDINALS[index] if index < len(_ORDINALS) else f"#{index + 1}"
    return f"The {ordinal} layer ({layer['class']})"


def _compare_layers(found: list[dict], wanted: list[dict], builder: str) -> None:
    found_classes = [layer["class"] for layer in found]
    wanted_classes = [layer["class"] for layer in wanted]
    if found_classes != wanted_classes:
        raise GradingFailure(
            f"{builder} should build these layers in this order: {' -> '.join(wanted_classes)}; "
            f"your model has: {' -> '.join(found_classes) or 'no layers'}. "
            "Check for missing, extra or reordered layers."
        )
    for index, (have, want) in enumerate(zip(found, wanted)):
        for field, value in want.items():
            if field in ("class", "output_shape", "params"):
                continue
            if have.get(field) != value:
                raise GradingFailure(
                    f"{_layer_label(index, have)} has {field}={have.get(field)!r}; "
                    f"expected {field}={value!r}. Hint: {_HINTS.get(field, 'compare with the homework text')}."
                )
    for index, (have, want) in enumerate(zip(found, wanted)):
        if have["output_shape"] != want["output_shape"]:
            raise GradingFailure(
                f"{_layer_label(index, have)} outputs shape {have['output_shape']}; "
                f"expected {want['output_shape']}. Check the input shape and the layers before it."
            )
        if have["params"] != want["params"]:
            raise GradingFailure(
                f"{_layer_label(index, have)} has {have['params']:,} parameters; expected {want['params']:,}."
            )


def _architecture_failures(model, builder: str) -> None:
    spec = expected()["architectures"][builder]
    description = describe_model(model)
    if description["input_shape"] != spec["input_shape"]:
        raise GradingFailure(
            f"The model's input shape is {description['input_shape']}; expected {spec['input_shape']}. "
            "Start the model with keras.Input(shape=(28, 28, 1)) "
            "(or pass input_shape=(28, 28, 1) to the first layer)."
        )
    _compare_layers(description["layers"], spec["layers"], builder)
    if description["total_params"] != spec["total_params"]:
        raise GradingFailure(
            f"The model has {description['total_params']:,} parameters; expected {spec['total_params']:,}."
        )


def _optimizer_failures(model, learning_rate: float, momentum: float) -> None:
    optimizer = describe_model(model)["optimizer"]
    loss = describe_model(model)["loss"]
    if optimizer["class"] is None:
        raise GradingFailure("The model is not compiled: call model.compile(optimizer=..., loss=..., metrics=[...]).")
    if optimizer["class"] != expected()["optimizer_class"]:
        raise GradingFailure(
            f"The model is compiled with {optimizer['class']}; expected SGD "
            "(keras.optimizers.SGD), the optimizer this homework studies."
        )
    impostor = optimizer_problem(model)
    if impostor:
        raise GradingFailure(impostor)
    found_rate = optimizer["learning_rate"]
    if not isinstance(found_rate, float) or not math.isclose(found_rate, learning_rate, rel_tol=1e-5):
        raise GradingFailure(
            f"The SGD learning rate is {found_rate!r}; expected {learning_rate}. "
            "Pass it as SGD(learning_rate=...): Keras 3 no longer accepts lr=."
        )
    if not math.isclose(optimizer["momentum"], momentum, rel_tol=1e-5, abs_tol=1e-9):
        raise GradingFailure(
            f"The SGD momentum is {optimizer['momentum']}; expected {momentum}. "
            "Pass it as SGD(learning_rate=..., momentum=...)."
        )
    if loss not in ("categorical_crossentropy", "CategoricalCrossentropy"):
        raise GradingFailure(
            f"The model's loss is {loss!r}; expected 'categorical_crossentropy' (the labels are one-hot)."
        )


@public_check
def check_architecture(model, builder: str) -> None:
    """The model has exactly the layers, shapes and parameter counts of ``builder``'s reference.

    ``builder`` is ``"define_model"``, ``"define_model_with_momentum"`` or ``"define_model_2_conv"``.
    """
    require_model(model, "The model")
    _architecture_failures(model, builder)


@public_check
def check_optimizer(model, learning_rate: float, momentum: float = 0.0) -> None:
    """The model is compiled with SGD at this learning rate and momentum, and cross-entropy loss."""
    require_model(model, "The model")
    _optimizer_failures(model, learning_rate, momentum)


@public_check
def check_run_model(model, run: str) -> None:
    """The model of a named run (e.g. ``"eta_large"``) has the right architecture and optimizer."""
    settings = run_settings(run)
    require_model(model, "The model")
    _architecture_failures(model, settings["builder"])
    _optimizer_failures(model, settings["learning_rate"], settings["momentum"])


@public_check
def check_builder_optimizer(builder, name: str, argument_sets) -> None:
    """Each call ``builder(*args)`` returns a model compiled with SGD at exactly those arguments.

    ``argument_sets``: ``[(learning_rate,), ...]`` or ``[(learning_rate, momentum), ...]``;
    calling with several values shows that the function uses its arguments. The
    layers are not looked at here (``check_architecture`` does that).
    """
    for args in argument_sets:
        model = call_student(builder, *args)
        require_model(model, f"The value returned by {name}{tuple(args)}")
        learning_rate, momentum = (args[0], args[1] if len(args) > 1 else 0.0)
        try:
            _optimizer_failures(model, learning_rate, momentum)
        except GradingFailure as failure:
            raise GradingFailure(
                f"{name}{tuple(args)}: {failure} Make sure your function uses its arguments."
            ) from None


@public_check
def check_built_by(model, builder, *args) -> None:
    """``model`` is what the student's own ``builder(*args)`` builds (same layers and optimizer).

    Comparing with the student's own function keeps a mistake inside that function
    from costing points twice.
    """
    name = getattr(builder, "__name__", "the builder")
    require_model(model, "The model")
    own = call_student(builder, *args)
    require_model(own, f"The value returned by {name}{args}")
    have, want = describe_model(model), describe_model(own)
    if describe_layers(model) != describe_layers(own):
        raise GradingFailure(
            f"This model's layers differ from those that {name}{args} builds. Build it with {name}{args}."
        )
    for key in ("optimizer", "loss"):
        if have[key] != want[key]:
            raise GradingFailure(
                f"This model's {key} is {have[key]}; {name}{args} gives {want[key]}. Build it with {name}{args}."
            )


def matches_run(model, run: str) -> bool:
    """Whether the model has the run's reference architecture and optimizer (no exception)."""
    settings = run_settings(run)
    try:
        _architecture_failures(model, settings["builder"])
        _optimizer_failures(model, settings["learning_rate"], settings["momentum"])
    except GradingFailure:
        return False
    return True
