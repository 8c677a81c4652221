"""Realistic student mistakes, one per submission, each with the exact points it must get.

Every mutant starts from the reference (all solutions filled in) and changes one thing.
``expected`` lists the test cells that must lose points; every other cell keeps full
marks, which is how the corpus shows that a mistake costs points in its own TODO(s)
and nowhere else.
"""

from __future__ import annotations

from graders.authoring.mock_submissions import SOLUTION, MockSubmission, edited
from graders.authoring.sample_class import CODE_SOLUTIONS

_ALL = {grade_id: SOLUTION for grade_id in CODE_SOLUTIONS}


def mutant(name: str, intent: str, loses: tuple[str, ...], **cells) -> MockSubmission:
    """The reference with ``cells`` replaced; zero points in ``loses``, full marks elsewhere."""
    return MockSubmission(
        name=name,
        intent=intent,
        cells={**_ALL, **cells},
        expected={grade_id: 0 for grade_id in loses},
        default_points="full",
    )


def _fit(model: str, history: str, **overrides) -> str:
    arguments = {
        "x": "x_train",
        "y": "y_train",
        "batch_size": "32",
        "epochs": "10",
        "validation_data": "(x_test, y_test)",
        **overrides,
    }
    x, y = arguments.pop("x"), arguments.pop("y")
    keywords = ", ".join(f"{key}={value}" for key, value in arguments.items())
    return f"{history} = {model}.fit({x}, {y}, {keywords})\n"


MUTANTS = (
    mutant(
        "dense100-softmax-output",
        "TODO 3 keeps the original bug: Dense(100, softmax) output; TODO 4 then cannot train.",
        ("test_todo3_architecture", "test_todo4_model", "test_todo4_training"),
        todo3=edited('layers.Dense(10, activation="softmax")', 'layers.Dense(100, activation="softmax")'),
    ),
    mutant(
        "learning-rates-swapped",
        "TODO 1 uses 0.00001 and TODO 2 uses 1.",
        ("test_todo1_model", "test_todo2_model"),
        todo1=edited("define_model(1)", "define_model(0.00001)"),
        todo2=edited("define_model(0.00001)", "define_model(1)"),
    ),
    mutant(
        "momentum-omitted",
        "TODO 3 compiles SGD without its momentum argument.",
        ("test_todo3_optimizer",),
        todo3=edited("SGD(learning_rate=learning_rate, momentum=momentum)", "SGD(learning_rate=learning_rate)"),
    ),
    mutant(
        "momentum-0.99",
        "TODO 4 builds its model with momentum 0.99 instead of 0.9.",
        ("test_todo4_model",),
        todo4=edited("define_model_with_momentum(0.01, 0.9)", "define_model_with_momentum(0.01, 0.99)"),
    ),
    mutant(
        "momentum-ignores-arguments",
        "TODO 3 hard-codes learning rate 0.01 and momentum 0.9.",
        ("test_todo3_optimizer",),
        todo3=edited("SGD(learning_rate=learning_rate, momentum=momentum)", "SGD(learning_rate=0.01, momentum=0.9)"),
    ),
    mutant(
        "todo4-without-momentum",
        "TODO 4 trains define_model(0.01) instead of the momentum model.",
        ("test_todo4_model",),
        todo4=edited("define_model_with_momentum(0.01, 0.9)", "define_model(0.01)"),
    ),
    mutant(
        "second-conv-32-filters",
        "TODO 5's second convolution has 32 filters instead of 64.",
        ("test_todo5_architecture",),
        todo5=edited("layers.Conv2D(64,", "layers.Conv2D(32,"),
    ),
    mutant(
        "same-padding",
        "TODO 5's convolutions use padding='same'.",
        ("test_todo5_architecture",),
        todo5=edited('padding="valid"', 'padding="same"', count=2),
    ),
    mutant(
        "missing-second-pooling",
        "TODO 5 leaves out the second MaxPooling2D.",
        ("test_todo5_architecture",),
        todo5=edited(
            'activation="relu"),\n            layers.MaxPooling2D((2, 2)),\n            layers.Flatten()',
            'activation="relu"),\n            layers.Flatten()',
        ),
    ),
    mutant(
        "pooling-before-convolution",
        "TODO 3 pools before its convolution.",
        ("test_todo3_architecture",),
        todo3=edited(
            'layers.Conv2D(32, (3, 3), strides=(1, 1), padding="valid", activation="relu"),\n'
            "            layers.MaxPooling2D((2, 2)),",
            "layers.MaxPooling2D((2, 2)),\n"
            '            layers.Conv2D(32, (3, 3), strides=(1, 1), padding="valid", activation="relu"),',
        ),
    ),
    mutant(
        "relu-output",
        "TODO 5's output layer uses ReLU instead of softmax.",
        ("test_todo5_architecture",),
        todo5=edited('layers.Dense(10, activation="softmax")', 'layers.Dense(10, activation="relu")'),
    ),
    mutant(
        "no-output-activation",
        "TODO 3's output layer has no activation.",
        ("test_todo3_architecture",),
        todo3=edited('layers.Dense(10, activation="softmax")', "layers.Dense(10)"),
    ),
    mutant(
        "sigmoid-hidden-layer",
        "TODO 5's hidden Dense layer uses sigmoid.",
        ("test_todo5_architecture",),
        todo5=edited('layers.Dense(100, activation="relu")', 'layers.Dense(100, activation="sigmoid")'),
    ),
    mutant(
        "one-epoch",
        "TODO 6 trains for one epoch.",
        ("test_todo6_training",),
        todo6=edited("epochs=10", "epochs=1"),
    ),
    mutant(
        "batch-size-1024",
        "TODO 4 trains with batch_size=1024.",
        ("test_todo4_training",),
        todo4=edited("batch_size=32", "batch_size=1024"),
    ),
    mutant(
        "trained-on-test-set",
        "TODO 1 fits on the test images.",
        ("test_todo1_training",),
        todo1="model_eta_large = define_model(1)\n"
        + _fit("model_eta_large", "history_eta_large", x="x_test", y="y_test"),
    ),
    mutant(
        "wrong-model-assigned",
        "TODO 6 trains one model but assigns a fresh, untrained one to model_2_layer.",
        ("test_todo6_training",),
        todo6=(
            "trained = define_model_2_conv(0.01)\n"
            + _fit("trained", "history_2_layer")
            + "model_2_layer = define_model_2_conv(0.01)\n"
        ),
    ),
    mutant(
        "two-conv-ignores-learning-rate",
        "TODO 5 hard-codes SGD(learning_rate=0.01).",
        ("test_todo5_optimizer",),
        todo5=edited("SGD(learning_rate=learning_rate)", "SGD(learning_rate=0.01)"),
    ),
    mutant(
        "keras2-lr-keyword",
        "TODO 3 passes lr=, which Keras 3 rejects; TODO 4 then has no model.",
        ("test_todo3_architecture", "test_todo3_optimizer", "test_todo4_model", "test_todo4_training"),
        todo3=edited("SGD(learning_rate=learning_rate, momentum=momentum)", "SGD(lr=learning_rate, momentum=momentum)"),
    ),
    mutant(
        "adam-optimizer",
        "TODO 5 compiles with Adam.",
        ("test_todo5_optimizer",),
        todo5=edited(
            "optimizer=SGD(learning_rate=learning_rate)", "optimizer=keras.optimizers.Adam(learning_rate=learning_rate)"
        ),
    ),
    mutant(
        "fit-called-twice",
        "TODO 2 calls fit twice on the same model (20 epochs of updates).",
        ("test_todo2_training",),
        todo2="model_eta_small = define_model(0.00001)\n"
        + _fit("model_eta_small", "_first")
        + _fit("model_eta_small", "history_eta_small"),
    ),
    mutant(
        "validation-on-training-data",
        "TODO 4 validates on the training data instead of the test data.",
        ("test_todo4_training",),
        todo4="model_momentum = define_model_with_momentum(0.01, 0.9)\n"
        + _fit("model_momentum", "history_momentum", validation_data="(x_train, y_train)"),
    ),
    mutant(
        "faked-history",
        "TODO 6 overwrites the recorded validation accuracy with better numbers.",
        ("test_todo6_training",),
        todo6=edited(
            "validation_data=(x_test, y_test)\n)",
            'validation_data=(x_test, y_test)\n)\nhistory_2_layer.history["val_accuracy"] = [0.99] * 10',
        ),
    ),
    # Training on the wrong data (issue 12): the data passed to fit is fingerprinted.
    mutant(
        "subset-larger-than-fast-budget",
        "TODO 4 trains on x_train[:10000], a sixth of the real data; under the fast budget the "
        "slice is all of x_train, so only the fingerprint's record of the slice shows it.",
        ("test_todo4_training",),
        todo4="model_momentum = define_model_with_momentum(0.01, 0.9)\n"
        + _fit("model_momentum", "history_momentum", x="x_train[:10000]", y="y_train[:10000]"),
    ),
    mutant(
        "one-class-removed",
        "TODO 6 trains without the images of the digit 3.",
        ("test_todo6_training",),
        todo6="model_2_layer = define_model_2_conv(0.01)\n"
        "keep = y_train.argmax(axis=1) != 3\n"
        + _fit("model_2_layer", "history_2_layer", x="x_train[keep]", y="y_train[keep]"),
    ),
    mutant(
        "labels-shifted-by-one",
        "TODO 1 trains on labels shifted by one row: each image carries its neighbour's label.",
        ("test_todo1_training",),
        todo1="model_eta_large = define_model(1)\n"
        + _fit("model_eta_large", "history_eta_large", y="np.roll(y_train, 1, axis=0)"),
    ),
    mutant(
        "validation-on-another-test-slice",
        "TODO 2 validates on the second half of the test set only.",
        ("test_todo2_training",),
        todo2="model_eta_small = define_model(0.00001)\n"
        + _fit(
            "model_eta_small",
            "history_eta_small",
            validation_data="(x_test[len(x_test) // 2:], y_test[len(y_test) // 2:])",
        ),
    ),
    mutant(
        "part-a-wrong-choice-and-flipped-kernel",
        "Part A: a wrong letter for 1.1, and a true convolution (flipped kernel) for Problem 3.",
        ("test_answer_1_1", "test_answer_3_conv"),
        answer_1_1='answer_1_1 = "A"\n',
        answer_3=(
            "answer_3_conv = np.array([[float(np.sum(image[i:i + 3, j:j + 3] * kernel[::-1, ::-1]))\n"
            "                           for j in range(4)] for i in range(4)])\n"
            "answer_3_pool = answer_3_conv.reshape(2, 2, 2, 2).max(axis=(1, 3))\n"
        ),
    ),
)

assert len({m.name for m in MUTANTS}) == len(MUTANTS) >= 20
