"""Correct solutions written in styles other than the reference's: every autograded point."""

from graders.authoring.sample_class import CODE_SOLUTIONS
from graders.authoring.mock_submissions import SOLUTION, MockSubmission

_PART_A = {"answer_1_1": SOLUTION, "answer_3": SOLUTION}

KERAS2_STYLE = MockSubmission(
    name="correct-keras2-style",
    intent=(
        "input_shape= on the first layer, model.add(), positional arguments, MaxPool2D, "
        "lr passed positionally, extra prints and an extra plot: full marks."
    ),
    cells={
        "todo1": (
            "model_eta_large = define_model(1)\n"
            "print('training with a large learning rate')\n"
            "history_eta_large = model_eta_large.fit(x_train, y_train, 32, 10, validation_data=(x_test, y_test))\n"
            "print(history_eta_large.history['accuracy'][-1])\n"
        ),
        "todo2": (
            "model_eta_small = define_model(1e-5)\n"
            "history_eta_small = model_eta_small.fit(x_train, y_train, epochs=10, batch_size=32,\n"
            "                                        validation_data=(x_test, y_test), verbose=2)\n"
        ),
        "todo3": (
            "from keras.models import Sequential\n"
            "from keras.layers import Conv2D, MaxPool2D, Flatten, Dense\n"
            "\n"
            "def define_model_with_momentum(learning_rate, momentum):\n"
            "    model = Sequential()\n"
            "    model.add(Conv2D(32, (3, 3), activation='relu', input_shape=(28, 28, 1)))\n"
            "    model.add(MaxPool2D(2, 2))\n"
            "    model.add(Flatten())\n"
            "    model.add(Dense(100, 'relu'))\n"
            "    model.add(Dense(10, 'softmax'))\n"
            "    opt = keras.optimizers.SGD(learning_rate, momentum)\n"
            "    model.compile(opt, 'categorical_crossentropy', metrics=['accuracy'])\n"
            "    print('built a model with momentum', momentum)\n"
            "    return model\n"
        ),
        "todo4": (
            "model_momentum = define_model_with_momentum(0.01, 0.9)\n"
            "history_momentum = model_momentum.fit(x_train, y_train, batch_size=32, epochs=10,\n"
            "                                      validation_data=(x_test, y_test))\n"
            "plt.plot(history_momentum.history['loss'])\n"
            "plt.title('my own extra plot')\n"
            "plt.show()\n"
        ),
        "todo5": (
            "def define_model_2_conv(learning_rate):\n"
            "    model = keras.Sequential([\n"
            "        layers.Conv2D(32, 3, 1, 'valid', activation='relu', input_shape=(28, 28, 1)),\n"
            "        layers.MaxPooling2D(2),\n"
            "        layers.Conv2D(64, 3, 1, 'valid', activation='relu'),\n"
            "        layers.MaxPool2D((2, 2)),\n"
            "        layers.Flatten(),\n"
            "        layers.Dense(100, activation='relu'),\n"
            "        layers.Dense(10, activation='softmax'),\n"
            "    ])\n"
            "    model.compile(optimizer=SGD(learning_rate=learning_rate), loss=keras.losses.CategoricalCrossentropy(),\n"
            "                  metrics=['accuracy'])\n"
            "    return model\n"
        ),
        "todo6": (
            "model_2_layer = define_model_2_conv(0.01)\n"
            "model_2_layer.summary()\n"
            "history_2_layer = model_2_layer.fit(x_train, y_train, batch_size=32, epochs=10,\n"
            "                                    validation_data=(x_test, y_test))\n"
        ),
        **_PART_A,
    },
    after_cells={"todo2": "print('extra cell: both learning-rate runs are done')\n"},
    default_points="full",
)

FUNCTIONAL_STYLE = MockSubmission(
    name="correct-functional-style",
    intent="Functional API, separate activation layers, keyword-only fit, verbose=0: full marks.",
    cells={
        "todo1": SOLUTION,
        "todo2": SOLUTION,
        "todo3": (
            "def define_model_with_momentum(learning_rate, momentum):\n"
            "    inputs = keras.Input((28, 28, 1))\n"
            "    x = layers.Conv2D(filters=32, kernel_size=3)(inputs)\n"
            "    x = layers.Activation('relu')(x)\n"
            "    x = layers.MaxPooling2D(pool_size=2)(x)\n"
            "    x = layers.Flatten()(x)\n"
            "    x = layers.Dense(units=100)(x)\n"
            "    x = layers.ReLU()(x)\n"
            "    outputs = layers.Dense(10, activation=keras.activations.softmax)(x)\n"
            "    model = keras.Model(inputs, outputs)\n"
            "    model.compile(optimizer=SGD(learning_rate=learning_rate, momentum=momentum),\n"
            "                  loss='categorical_crossentropy', metrics=['accuracy'])\n"
            "    return model\n"
        ),
        "todo4": (
            "model_momentum = define_model_with_momentum(learning_rate=0.01, momentum=0.9)\n"
            "history_momentum = model_momentum.fit(x=x_train, y=y_train, batch_size=32, epochs=10,\n"
            "                                      validation_data=(x_test, y_test), verbose=0)\n"
        ),
        "todo5": SOLUTION,
        "todo6": SOLUTION,
        **_PART_A,
    },
    default_points="full",
)

DATA_STYLES = MockSubmission(
    name="correct-data-styles",
    intent=(
        "The training data passed other ways (issue 12): a tf.data.Dataset of the same arrays "
        "with batch 32 (TODO 1), copies (TODO 2), x=/y= keywords (TODO 4), a shuffled copy "
        "(TODO 6): full marks."
    ),
    cells={
        "todo1": (
            "import tensorflow as tf\n"
            "\n"
            "train_ds = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(len(x_train), seed=1).batch(32)\n"
            "model_eta_large = define_model(1)\n"
            "history_eta_large = model_eta_large.fit(train_ds, epochs=10, validation_data=(x_test, y_test))\n"
        ),
        "todo2": (
            "x_copy, y_copy = x_train.copy(), y_train.copy()\n"
            "model_eta_small = define_model(0.00001)\n"
            "history_eta_small = model_eta_small.fit(x_copy, y_copy, batch_size=32, epochs=10,\n"
            "                                        validation_data=(x_test.copy(), y_test.copy()))\n"
        ),
        "todo3": SOLUTION,
        "todo4": (
            "model_momentum = define_model_with_momentum(0.01, 0.9)\n"
            "history_momentum = model_momentum.fit(x=x_train, y=y_train, batch_size=32, epochs=10,\n"
            "                                      validation_data=(x_test, y_test))\n"
        ),
        "todo5": SOLUTION,
        "todo6": (
            "order = np.random.default_rng(0).permutation(len(x_train))\n"
            "x_shuffled, y_shuffled = x_train[order], y_train[order]\n"
            "model_2_layer = define_model_2_conv(0.01)\n"
            "history_2_layer = model_2_layer.fit(x_shuffled, y_shuffled, batch_size=32, epochs=10,\n"
            "                                    validation_data=(x_test, y_test))\n"
        ),
        **_PART_A,
    },
    default_points="full",
)

ALL = (KERAS2_STYLE, FUNCTIONAL_STYLE, DATA_STYLES)
assert set(CODE_SOLUTIONS) >= set(KERAS2_STYLE.cells)
