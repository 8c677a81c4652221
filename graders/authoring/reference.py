"""Reference solutions for HW5 Part B, TODO 1-6, as plain importable Python.

This module is the single source of the expected models: the grading checks'
expectations (``graders/checks/expected.json``) are derived from it by
``python -m graders.authoring.expectations``, and a test proves that the source
notebook's solution cells build exactly these models.

It is secret: it is never shown to students and never visible to a sandboxed kernel.
"""

from __future__ import annotations

import keras
from keras import layers
from keras.optimizers import SGD

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10

#: Training settings of every run in the notebook.
BATCH_SIZE = 32
EPOCHS = 10

#: The learning rates and momentum of each named run.
RUNS = {
    "baseline": {"builder": "define_model", "learning_rate": 0.01, "momentum": 0.0},
    "eta_large": {"builder": "define_model", "learning_rate": 1.0, "momentum": 0.0},
    "eta_small": {"builder": "define_model", "learning_rate": 0.00001, "momentum": 0.0},
    "momentum": {"builder": "define_model_with_momentum", "learning_rate": 0.01, "momentum": 0.9},
    "two_conv": {"builder": "define_model_2_conv", "learning_rate": 0.01, "momentum": 0.0},
}


def _compile(model: keras.Model, optimizer) -> keras.Model:
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def define_model(learning_rate: float) -> keras.Model:
    """The given one-convolution CNN: (28, 28, 1) images -> (10,) class probabilities."""
    model = keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE),
            layers.Conv2D(32, (3, 3), strides=(1, 1), padding="valid", activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(100, activation="relu"),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ]
    )
    # float(): Keras 3 rejects an integer learning rate, and the notebook calls define_model(1).
    return _compile(model, SGD(learning_rate=float(learning_rate)))


def define_model_with_momentum(learning_rate: float, momentum: float) -> keras.Model:
    """TODO 3: ``define_model``'s architecture, trained by SGD with momentum."""
    model = define_model(learning_rate)
    return _compile(model, SGD(learning_rate=learning_rate, momentum=momentum))


def define_model_2_conv(learning_rate: float) -> keras.Model:
    """TODO 5: two convolution blocks: (28, 28, 1) images -> (10,) class probabilities."""
    model = keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE),
            layers.Conv2D(32, (3, 3), strides=(1, 1), padding="valid", activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), strides=(1, 1), padding="valid", activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(100, activation="relu"),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ]
    )
    return _compile(model, SGD(learning_rate=learning_rate))


BUILDERS = {
    "define_model": define_model,
    "define_model_with_momentum": define_model_with_momentum,
    "define_model_2_conv": define_model_2_conv,
}


def build_run(run: str) -> keras.Model:
    """The untrained model of one named run (TODO 1, 2, 4, 6 or the baseline)."""
    settings = RUNS[run]
    builder = BUILDERS[settings["builder"]]
    if settings["builder"] == "define_model_with_momentum":
        return builder(settings["learning_rate"], settings["momentum"])
    return builder(settings["learning_rate"])


def train(model: keras.Model, x_train, y_train, x_test, y_test, verbose: int = 0):
    """Train as every run in the notebook does; returns the ``History``.

    ``x_*``: ``(n, 28, 28, 1)`` float32 in [0, 1]; ``y_*``: ``(n, 10)`` one-hot.
    """
    return model.fit(
        x_train,
        y_train,
        batch_size=BATCH_SIZE,
        epochs=EPOCHS,
        validation_data=(x_test, y_test),
        verbose=verbose,
    )
