"""Correct solutions written in styles other than the reference's: every autograded point."""

from graders.authoring.mock_submissions import SOLUTION, MockSubmission
from graders.authoring.sample_class import CODE_SOLUTIONS

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


# -- issue 16: honest but unusual Keras styles -------------------------------------------------
# Each builds exactly the homework's models in a way Keras allows and the reference does not
# use. Each must get full marks (or "needs a person", never "suspected tampering"). TODO 4 and
# TODO 6 train what the builders return, so the trained models are unusual too.

_COMPILE = (
    "    model.compile(optimizer=SGD(learning_rate=learning_rate{momentum}),\n"
    "                  loss='categorical_crossentropy', metrics=['accuracy'])\n"
    "    return model\n"
)
_COMPILE_3 = _COMPILE.format(momentum=", momentum=momentum")
_COMPILE_5 = _COMPILE.format(momentum="")


def _unusual(name: str, intent: str, todo3: str | None = None, todo5: str | None = None, **extra) -> MockSubmission:
    """A correct submission whose TODO 3 and/or TODO 5 are written in an unusual style."""
    return MockSubmission(
        name=f"unusual-{name}",
        intent=intent + ": full marks.",
        cells={
            "todo1": SOLUTION,
            "todo2": SOLUTION,
            "todo3": todo3 or SOLUTION,
            "todo4": SOLUTION,
            "todo5": todo5 or SOLUTION,
            "todo6": SOLUTION,
            **_PART_A,
            **extra,
        },
        default_points="full",
    )


SUBCLASSED_MODEL = _unusual(
    "subclassed-model",
    "TODO 5 as a keras.Model subclass: layers made in __init__, chained in call, built with "
    "model.build((None, 28, 28, 1)) (issue 16's first case)",
    todo5=(
        "class TwoConv(keras.Model):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv1 = layers.Conv2D(32, (3, 3), activation='relu')\n"
        "        self.pool1 = layers.MaxPooling2D((2, 2))\n"
        "        self.conv2 = layers.Conv2D(64, (3, 3), activation='relu')\n"
        "        self.pool2 = layers.MaxPooling2D((2, 2))\n"
        "        self.flatten = layers.Flatten()\n"
        "        self.hidden = layers.Dense(100, activation='relu')\n"
        "        self.out = layers.Dense(10, activation='softmax')\n"
        "\n"
        "    def call(self, x):\n"
        "        x = self.pool1(self.conv1(x))\n"
        "        x = self.pool2(self.conv2(x))\n"
        "        return self.out(self.hidden(self.flatten(x)))\n"
        "\n"
        "def define_model_2_conv(learning_rate):\n"
        "    model = TwoConv()\n"
        "    model.build((None, 28, 28, 1))\n" + _COMPILE_5
    ),
)

SUBCLASSED_MODEL_LIST = _unusual(
    "subclassed-model-list",
    "TODO 3 as a keras.Model subclass holding its layers in a list, looped over in call, "
    "built by calling it on one blank image",
    todo3=(
        "class OneConv(keras.Model):\n"
        "    def __init__(self, **kwargs):\n"
        "        super().__init__(**kwargs)\n"
        "        self.stack = [layers.Conv2D(32, 3, activation='relu'), layers.MaxPooling2D(2),\n"
        "                      layers.Flatten(), layers.Dense(100, activation='relu'),\n"
        "                      layers.Dense(10, activation='softmax')]\n"
        "\n"
        "    def call(self, inputs):\n"
        "        for layer in self.stack:\n"
        "            inputs = layer(inputs)\n"
        "        return inputs\n"
        "\n"
        "def define_model_with_momentum(learning_rate, momentum):\n"
        "    model = OneConv(name='one_conv')\n"
        "    model(np.zeros((1, 28, 28, 1), dtype='float32'))\n" + _COMPILE_3
    ),
)

TF_ACTIVATIONS = _unusual(
    "tf-activation-functions",
    "Activations passed as TensorFlow functions (tf.nn.relu, tf.nn.softmax, which Keras "
    "serializes as softmax_v2) in TODO 3 and TODO 5 (issue 16's second case)",
    todo3=(
        "import tensorflow as tf\n"
        "\n"
        "def define_model_with_momentum(learning_rate, momentum):\n"
        "    model = keras.Sequential([\n"
        "        keras.Input(shape=(28, 28, 1)),\n"
        "        layers.Conv2D(32, (3, 3), activation=tf.nn.relu),\n"
        "        layers.MaxPooling2D((2, 2)),\n"
        "        layers.Flatten(),\n"
        "        layers.Dense(100, activation=tf.nn.relu),\n"
        "        layers.Dense(10, activation=tf.nn.softmax),\n"
        "    ])\n" + _COMPILE_3
    ),
    todo5=(
        "def define_model_2_conv(learning_rate):\n"
        "    model = keras.Sequential([\n"
        "        keras.Input(shape=(28, 28, 1)),\n"
        "        layers.Conv2D(32, (3, 3), activation=tf.nn.relu),\n"
        "        layers.MaxPooling2D((2, 2)),\n"
        "        layers.Conv2D(64, (3, 3), activation=tf.nn.relu),\n"
        "        layers.MaxPooling2D((2, 2)),\n"
        "        layers.Flatten(),\n"
        "        layers.Dense(100, activation=tf.nn.relu),\n"
        "        layers.Dense(10, activation=tf.nn.softmax),\n"
        "    ])\n" + _COMPILE_5
    ),
)

KERAS_ACTIVATIONS = _unusual(
    "keras-activation-functions",
    "Activations passed as Keras functions (keras.activations.relu, keras.ops.relu, "
    "keras.activations.softmax) and as lambdas",
    todo3=(
        "def define_model_with_momentum(learning_rate, momentum):\n"
        "    model = keras.Sequential([\n"
        "        keras.Input(shape=(28, 28, 1)),\n"
        "        layers.Conv2D(32, (3, 3), activation=keras.activations.relu),\n"
        "        layers.MaxPooling2D((2, 2)),\n"
        "        layers.Flatten(),\n"
        "        layers.Dense(100, activation=keras.ops.relu),\n"
        "        layers.Dense(10, activation=keras.activations.softmax),\n"
        "    ])\n" + _COMPILE_3
    ),
    todo5=(
        "def define_model_2_conv(learning_rate):\n"
        "    model = keras.Sequential([\n"
        "        keras.Input(shape=(28, 28, 1)),\n"
        "        layers.Conv2D(32, (3, 3), activation=lambda x: keras.ops.maximum(x, 0.0)),\n"
        "        layers.MaxPooling2D((2, 2)),\n"
        "        layers.Conv2D(64, (3, 3), activation=lambda x: keras.activations.relu(x)),\n"
        "        layers.MaxPooling2D((2, 2)),\n"
        "        layers.Flatten(),\n"
        "        layers.Dense(100, activation='relu'),\n"
        "        layers.Dense(10, activation=lambda z: keras.ops.softmax(z, axis=-1)),\n"
        "    ])\n" + _COMPILE_5
    ),
)

LAYER_SUBCLASSES = _unusual(
    "layer-subclasses",
    "Subclasses of Conv2D, MaxPooling2D and Dense that fix the homework's settings",
    todo3=(
        "class Conv3x3(layers.Conv2D):\n"
        "    def __init__(self, filters, **kwargs):\n"
        "        super().__init__(filters, (3, 3), activation='relu', **kwargs)\n"
        "\n"
        "class Pool2(layers.MaxPooling2D):\n"
        "    def __init__(self, **kwargs):\n"
        "        super().__init__((2, 2), **kwargs)\n"
        "\n"
        "class Classifier(layers.Dense):\n"
        "    def __init__(self, **kwargs):\n"
        "        super().__init__(10, activation='softmax', **kwargs)\n"
        "\n"
        "def define_model_with_momentum(learning_rate, momentum):\n"
        "    model = keras.Sequential([keras.Input(shape=(28, 28, 1)), Conv3x3(32), Pool2(), layers.Flatten(),\n"
        "                              layers.Dense(100, activation='relu'), Classifier()])\n" + _COMPILE_3
    ),
    todo5=(
        "def define_model_2_conv(learning_rate):\n"
        "    model = keras.Sequential([keras.Input(shape=(28, 28, 1)), Conv3x3(32), Pool2(), Conv3x3(64), Pool2(),\n"
        "                              layers.Flatten(), layers.Dense(100, activation='relu'), Classifier()])\n"
        + _COMPILE_5
    ),
)

NESTED_SEQUENTIAL = _unusual(
    "nested-sequential",
    "A feature-extractor Sequential nested in the model's Sequential (TODO 5), and a classifier head nested (TODO 3)",
    todo3=(
        "def define_model_with_momentum(learning_rate, momentum):\n"
        "    head = keras.Sequential([layers.Flatten(), layers.Dense(100, activation='relu'),\n"
        "                             layers.Dense(10, activation='softmax')], name='head')\n"
        "    model = keras.Sequential([keras.Input(shape=(28, 28, 1)),\n"
        "                              layers.Conv2D(32, (3, 3), activation='relu'),\n"
        "                              layers.MaxPooling2D((2, 2)), head])\n" + _COMPILE_3
    ),
    todo5=(
        "def define_model_2_conv(learning_rate):\n"
        "    features = keras.Sequential([\n"
        "        layers.Conv2D(32, (3, 3), activation='relu'), layers.MaxPooling2D((2, 2)),\n"
        "        layers.Conv2D(64, (3, 3), activation='relu'), layers.MaxPooling2D((2, 2)),\n"
        "    ], name='features')\n"
        "    model = keras.Sequential([keras.Input(shape=(28, 28, 1)), features, layers.Flatten(),\n"
        "                              layers.Dense(100, activation='relu'), layers.Dense(10, activation='softmax')])\n"
        + _COMPILE_5
    ),
)

BUILD_NOT_INPUT = _unusual(
    "build-instead-of-input",
    "Sequential models without keras.Input, built with model.build((None, 28, 28, 1))",
    todo3=(
        "def define_model_with_momentum(learning_rate, momentum):\n"
        "    model = keras.Sequential([layers.Conv2D(32, (3, 3), activation='relu'), layers.MaxPooling2D((2, 2)),\n"
        "                              layers.Flatten(), layers.Dense(100, activation='relu'),\n"
        "                              layers.Dense(10, activation='softmax')])\n"
        "    model.build((None, 28, 28, 1))\n" + _COMPILE_3
    ),
    todo5=(
        "def define_model_2_conv(learning_rate):\n"
        "    model = keras.Sequential([layers.Conv2D(32, (3, 3), activation='relu'), layers.MaxPooling2D((2, 2)),\n"
        "                              layers.Conv2D(64, (3, 3), activation='relu'), layers.MaxPooling2D((2, 2)),\n"
        "                              layers.Flatten(), layers.Dense(100, activation='relu'),\n"
        "                              layers.Dense(10, activation='softmax')])\n"
        "    model.build(input_shape=(None, 28, 28, 1))\n" + _COMPILE_5
    ),
)

ADD_AFTER_CONSTRUCTION = _unusual(
    "add-after-construction",
    "An empty named Sequential, keras.Input and every layer added with model.add in a loop",
    todo3=(
        "def define_model_with_momentum(learning_rate, momentum):\n"
        "    model = keras.Sequential(name='momentum_cnn')\n"
        "    model.add(keras.Input(shape=(28, 28, 1)))\n"
        "    for layer in (layers.Conv2D(32, (3, 3), activation='relu'), layers.MaxPooling2D((2, 2)),\n"
        "                  layers.Flatten(), layers.Dense(100, activation='relu'),\n"
        "                  layers.Dense(10, activation='softmax')):\n"
        "        model.add(layer)\n" + _COMPILE_3
    ),
    todo5=(
        "def define_model_2_conv(learning_rate):\n"
        "    model = keras.Sequential()\n"
        "    model.add(keras.Input(shape=(28, 28, 1)))\n"
        "    for filters in (32, 64):\n"
        "        model.add(layers.Conv2D(filters, (3, 3), activation='relu'))\n"
        "        model.add(layers.MaxPooling2D((2, 2)))\n"
        "    model.add(layers.Flatten())\n"
        "    model.add(layers.Dense(100, activation='relu'))\n"
        "    model.add(layers.Dense(10, activation='softmax'))\n" + _COMPILE_5
    ),
)

SHARED_HELPER = _unusual(
    "shared-helper-layers",
    "A helper that makes each convolution block, shared by TODO 3 and TODO 5, and one "
    "Flatten layer instance shared by every model",
    todo3=(
        "FLATTEN = layers.Flatten()  # no weights: one instance serves every model\n"
        "\n"
        "def conv_block(filters):\n"
        "    return [layers.Conv2D(filters, (3, 3), activation='relu'), layers.MaxPooling2D((2, 2))]\n"
        "\n"
        "def classifier():\n"
        "    return [FLATTEN, layers.Dense(100, activation='relu'), layers.Dense(10, activation='softmax')]\n"
        "\n"
        "def define_model_with_momentum(learning_rate, momentum):\n"
        "    model = keras.Sequential([keras.Input(shape=(28, 28, 1)), *conv_block(32), *classifier()])\n" + _COMPILE_3
    ),
    todo5=(
        "def define_model_2_conv(learning_rate):\n"
        "    model = keras.Sequential([keras.Input(shape=(28, 28, 1)), *conv_block(32), *conv_block(64),\n"
        "                              *classifier()])\n" + _COMPILE_5
    ),
)

FUNCTIONAL_NESTED_BLOCK = _unusual(
    "functional-nested-block",
    "The functional API calling a Sequential convolution block as one layer, with keyword inputs=/outputs=",
    todo5=(
        "def define_model_2_conv(learning_rate):\n"
        "    block = keras.Sequential([layers.Conv2D(32, (3, 3), activation='relu'), layers.MaxPooling2D((2, 2)),\n"
        "                              layers.Conv2D(64, (3, 3), activation='relu'), layers.MaxPooling2D((2, 2))])\n"
        "    inputs = keras.Input(shape=(28, 28, 1))\n"
        "    x = layers.Flatten()(block(inputs))\n"
        "    x = layers.Dense(100, activation='relu')(x)\n"
        "    model = keras.Model(inputs=inputs, outputs=layers.Dense(10, activation='softmax')(x))\n" + _COMPILE_5
    ),
)

SUBCLASSED_IN_FUNCTIONAL = _unusual(
    "subclassed-in-functional",
    "A subclassed keras.Model (the whole chain) called on keras.Input inside a functional model",
    todo3=(
        "class Chain(keras.Model):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = layers.Conv2D(32, (3, 3), activation='relu')\n"
        "        self.pool = layers.MaxPooling2D((2, 2))\n"
        "        self.flat = layers.Flatten()\n"
        "        self.hidden = layers.Dense(100, activation='relu')\n"
        "        self.out = layers.Dense(10, activation='softmax')\n"
        "\n"
        "    def call(self, x):\n"
        "        return self.out(self.hidden(self.flat(self.pool(self.conv(x)))))\n"
        "\n"
        "def define_model_with_momentum(learning_rate, momentum):\n"
        "    inputs = keras.Input((28, 28, 1))\n"
        "    model = keras.Model(inputs, Chain()(inputs))\n" + _COMPILE_3
    ),
)

ACTIVATION_LAYERS = _unusual(
    "activation-layers-as-functions",
    "Linear Conv2D and Dense layers followed by Activation(tf.nn.relu), ReLU() and Softmax() layers",
    todo5=(
        "import tensorflow as tf\n"
        "\n"
        "def define_model_2_conv(learning_rate):\n"
        "    model = keras.Sequential([\n"
        "        keras.Input(shape=(28, 28, 1)),\n"
        "        layers.Conv2D(32, (3, 3)), layers.Activation(tf.nn.relu), layers.MaxPooling2D((2, 2)),\n"
        "        layers.Conv2D(64, (3, 3)), layers.ReLU(), layers.MaxPooling2D((2, 2)),\n"
        "        layers.Flatten(),\n"
        "        layers.Dense(100), layers.Activation('relu'),\n"
        "        layers.Dense(10), layers.Softmax(),\n"
        "    ])\n" + _COMPILE_5
    ),
)

TF_KERAS_NAMESPACE = _unusual(
    "tf-keras-namespace",
    "Layers, Input and SGD taken from tensorflow.keras (Keras 3 under TensorFlow's name), "
    "the optimizer as keras.optimizers.SGD with keywords",
    todo3=(
        "from tensorflow import keras as tfk\n"
        "\n"
        "def define_model_with_momentum(learning_rate, momentum):\n"
        "    model = tfk.models.Sequential([\n"
        "        tfk.layers.InputLayer(shape=(28, 28, 1)),\n"
        "        tfk.layers.Conv2D(filters=32, kernel_size=(3, 3), strides=(1, 1), padding='valid',\n"
        "                          activation='relu', kernel_initializer='he_uniform'),\n"
        "        tfk.layers.MaxPool2D(pool_size=(2, 2)),\n"
        "        tfk.layers.Flatten(),\n"
        "        tfk.layers.Dense(units=100, activation='relu', kernel_initializer='he_uniform'),\n"
        "        tfk.layers.Dense(units=10, activation='softmax'),\n"
        "    ])\n"
        "    model.compile(optimizer=tfk.optimizers.SGD(learning_rate=learning_rate, momentum=momentum),\n"
        "                  loss=tfk.losses.categorical_crossentropy, metrics=['accuracy'])\n"
        "    return model\n"
    ),
)

#: Issue 16's corpus: honest, unusual styles (each full marks, none "suspected tampering").
UNUSUAL_STYLES = (
    SUBCLASSED_MODEL,
    SUBCLASSED_MODEL_LIST,
    TF_ACTIVATIONS,
    KERAS_ACTIVATIONS,
    LAYER_SUBCLASSES,
    NESTED_SEQUENTIAL,
    BUILD_NOT_INPUT,
    ADD_AFTER_CONSTRUCTION,
    SHARED_HELPER,
    FUNCTIONAL_NESTED_BLOCK,
    SUBCLASSED_IN_FUNCTIONAL,
    ACTIVATION_LAYERS,
    TF_KERAS_NAMESPACE,
)
