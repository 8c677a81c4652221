"""The structure checks, against models built in-process (no notebook, no training).

Each mistake is a model a student could plausibly write; each correct style is one
the checks must accept.
"""

from __future__ import annotations

import keras
import pytest
from keras import layers
from keras.optimizers import SGD, Adam

from graders.authoring import reference
from graders.checks import (
    GradingFailure,
    check_architecture,
    check_builder_optimizer,
    check_built_by,
    check_optimizer,
    check_run_model,
)
from graders.checks.describe import describe_model


def compiled(model, optimizer=None):
    model.compile(
        optimizer=optimizer or SGD(learning_rate=0.01),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def sequential(*stack, input_layer=True):
    return keras.Sequential(([keras.Input(shape=(28, 28, 1))] if input_layer else []) + list(stack))


def one_conv(output=None, hidden_activation="relu", optimizer=None):
    return compiled(
        sequential(
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(100, activation=hidden_activation),
            output or layers.Dense(10, activation="softmax"),
        ),
        optimizer,
    )


def two_conv(second_filters=64, padding="valid", second_pool=True, hidden="relu"):
    stack = [
        layers.Conv2D(32, (3, 3), activation="relu", padding=padding),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(second_filters, (3, 3), activation="relu", padding=padding),
    ]
    if second_pool:
        stack.append(layers.MaxPooling2D((2, 2)))
    stack += [layers.Flatten(), layers.Dense(100, activation=hidden), layers.Dense(10, activation="softmax")]
    return compiled(sequential(*stack))


def failure(check, *args) -> str:
    with pytest.raises(GradingFailure) as raised:
        check(*args)
    return str(raised.value)


# --- correct solutions, in several styles, pass --------------------------------


def test_reference_models_pass_their_own_checks():
    check_architecture(reference.define_model(0.01), "define_model")
    check_architecture(reference.define_model_2_conv(0.01), "define_model_2_conv")
    check_run_model(reference.build_run("eta_large"), "eta_large")
    check_run_model(reference.build_run("momentum"), "momentum")
    check_builder_optimizer(reference.define_model_with_momentum, "define_model_with_momentum", [(0.05, 0.5)])


def test_input_shape_on_first_layer_positional_args_and_maxpool2d_alias_pass():
    model = compiled(
        keras.Sequential(
            [
                layers.Conv2D(32, 3, 1, "valid", activation="relu", input_shape=(28, 28, 1)),
                layers.MaxPool2D(2),
                layers.Conv2D(64, 3, activation="relu"),
                layers.MaxPool2D(pool_size=(2, 2)),
                layers.Flatten(),
                layers.Dense(100, "relu"),
                layers.Dense(10, "softmax"),
            ]
        )
    )
    check_architecture(model, "define_model_2_conv")


def test_functional_api_and_separate_activation_layers_pass():
    inputs = keras.Input(shape=(28, 28, 1))
    x = layers.Conv2D(32, (3, 3))(inputs)
    x = layers.ReLU()(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(100)(x)
    x = layers.Activation("relu")(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    check_architecture(compiled(keras.Model(inputs, outputs)), "define_model")


def test_activation_functions_given_as_tensorflow_functions_pass():
    import tensorflow as tf

    model = compiled(
        sequential(
            layers.Conv2D(32, (3, 3), activation=tf.nn.relu),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(100, activation=keras.activations.relu),
            layers.Dense(10, activation=tf.nn.softmax),
        )
    )
    check_architecture(model, "define_model")


def test_expected_sizes_match_the_homework_table():
    """The derived expectations agree with the sizes computed by hand in the spec."""
    one = describe_model(reference.define_model(0.01))
    two = describe_model(reference.define_model_2_conv(0.01))
    assert one["total_params"] == 542_230
    assert two["total_params"] == 179_926
    assert [layer["output_shape"] for layer in two["layers"]] == [
        [26, 26, 32],
        [13, 13, 32],
        [11, 11, 64],
        [5, 5, 64],
        [1600],
        [100],
        [10],
    ]


# --- mistakes fail, with a message that names them -------------------------------


@pytest.mark.parametrize(
    "model, builder, phrase",
    [
        (lambda: one_conv(output=layers.Dense(100, activation="softmax")), "define_model", "units=100"),
        (lambda: one_conv(output=layers.Dense(10, activation="relu")), "define_model", "activation='relu'"),
        (lambda: one_conv(output=layers.Dense(10)), "define_model", "activation='linear'"),
        (lambda: one_conv(hidden_activation="sigmoid"), "define_model", "activation='sigmoid'"),
        (lambda: two_conv(second_filters=32), "define_model_2_conv", "filters=32"),
        (lambda: two_conv(padding="same"), "define_model_2_conv", "padding='same'"),
        (lambda: two_conv(second_pool=False), "define_model_2_conv", "layers in this order"),
        (lambda: one_conv(), "define_model_2_conv", "layers in this order"),
    ],
)
def test_architecture_mistakes_fail_with_a_named_reason(model, builder, phrase):
    assert phrase in failure(check_architecture, model(), builder)


def test_pooling_before_convolution_fails():
    model = compiled(
        sequential(
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.Flatten(),
            layers.Dense(100, activation="relu"),
            layers.Dense(10, activation="softmax"),
        )
    )
    assert "MaxPooling2D -> Conv2D" in failure(check_architecture, model, "define_model")


def test_missing_input_shape_fails_with_a_hint():
    model = compiled(
        sequential(
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(100, activation="relu"),
            layers.Dense(10, activation="softmax"),
            input_layer=False,
        )
    )
    assert "keras.Input(shape=(28, 28, 1))" in failure(check_architecture, model, "define_model")


@pytest.mark.parametrize(
    "optimizer, phrase",
    [
        (Adam(learning_rate=0.01), "compiled with Adam"),
        (SGD(learning_rate=0.01), "momentum is 0.0; expected 0.9"),
        (SGD(learning_rate=0.01, momentum=0.99), "momentum is 0.99"),
        (SGD(learning_rate=0.1, momentum=0.9), "learning rate is 0.1"),
    ],
)
def test_optimizer_mistakes_fail(optimizer, phrase):
    assert phrase in failure(check_optimizer, one_conv(optimizer=optimizer), 0.01, 0.9)


def test_wrong_loss_fails():
    model = one_conv()
    model.compile(optimizer=SGD(learning_rate=0.01), loss="mse")
    assert "categorical_crossentropy" in failure(check_optimizer, model, 0.01, 0.0)


def test_swapped_learning_rates_fail_the_run_check():
    assert "expected 1.0" in failure(check_run_model, reference.define_model(0.00001), "eta_large")
    assert "expected 1e-05" in failure(check_run_model, reference.define_model(1.0), "eta_small")


def test_a_builder_that_ignores_its_arguments_fails():
    def define_model_with_momentum(learning_rate, momentum):
        return reference.define_model_with_momentum(0.01, 0.9)

    message = failure(
        check_builder_optimizer, define_model_with_momentum, "define_model_with_momentum", [(0.01, 0.9), (0.05, 0.5)]
    )
    assert "(0.05, 0.5)" in message and "uses its arguments" in message


def test_a_builder_that_raises_reports_the_call():
    def define_model_with_momentum(learning_rate, momentum):
        return SGD(lr=learning_rate)  # the Keras 2 keyword

    message = failure(check_builder_optimizer, define_model_with_momentum, "define_model_with_momentum", [(0.01, 0.9)])
    assert "define_model_with_momentum(0.01, 0.9) raised" in message


def test_built_by_compares_with_the_students_own_function():
    def define_model_2_conv(learning_rate):  # a wrong builder, but used consistently
        return two_conv(second_filters=32)

    check_built_by(define_model_2_conv(0.01), define_model_2_conv, 0.01)
    message = failure(check_built_by, reference.define_model(0.01), define_model_2_conv, 0.01)
    assert "Build it with define_model_2_conv(0.01,)" in message


def test_a_non_model_is_rejected_with_its_type():
    assert "it is a str" in failure(check_architecture, "model", "define_model")


def test_failures_hide_the_check_internals():
    """The feedback traceback must not show the check's code: the failure is re-raised
    from the wrapper with no chained context."""
    with pytest.raises(GradingFailure) as raised:
        check_architecture(one_conv(output=layers.Dense(100, activation="softmax")), "define_model")
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert raised.traceback[-1].name == "wrapper"


def test_checks_write_nothing_to_stderr(capfd):
    """Any stderr output zeroes a test cell: a student's input_shape= warning must stay silent."""

    def define_model_2_conv(learning_rate):
        model = keras.Sequential(
            [
                layers.Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)),
                layers.MaxPooling2D(2),
                layers.Conv2D(64, 3, activation="relu"),
                layers.MaxPooling2D(2),
                layers.Flatten(),
                layers.Dense(100, activation="relu"),
                layers.Dense(10, activation="softmax"),
            ]
        )
        return compiled(model, SGD(learning_rate=learning_rate))

    check_builder_optimizer(define_model_2_conv, "define_model_2_conv", [(0.01,), (0.05,)])
    assert capfd.readouterr().err == ""


def test_activation_functions_read_as_the_activation_they_compute():
    """Issue 16: tf.nn.softmax (named softmax_v2), keras.ops.relu and a lambda computing relu
    are the homework's activations; a lambda computing something else is not."""
    import tensorflow as tf

    from graders.checks.describe import identify_activation

    model = one_conv(
        output=layers.Dense(10, activation=tf.nn.softmax), hidden_activation=lambda x: keras.ops.maximum(x, 0.0)
    )
    check_architecture(model, "define_model")
    assert identify_activation(keras.ops.relu) == "relu"
    assert identify_activation(lambda x: x * 2.0) is None
    message = failure(
        check_architecture, one_conv(hidden_activation=lambda x: keras.ops.maximum(x, 0.0) * 2.0), "define_model"
    )
    assert "activation='<lambda>'" in message
