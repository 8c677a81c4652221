"""Issue 17's corpus: training points rest on evidence, not on the kernel's word.

Each case is the reference with one change, graded under the fast budget; each must get
exactly the grade its work deserves, with no flag needed for it. The cases:
- a disguised optimizer: a class named SGD that is Adam underneath. Its grade is that of
  the same work with Adam named Adam: TODO 5's optimizer point is lost, TODO 6 (built by
  the student's own builder, trained with updates and history that agree) keeps its own.
- subsets that the old budget hid (the notebook held 1,000 rows, so a sixth of 60,000 was
  all of them): a tensor slice, an ``np.asarray`` slice, a random index, ``np.split``;
  and training on train and test concatenated. Each loses its own training point.
- honest variations: ``shuffle=False``, a ``tf.data`` pipeline, float64 inputs, tensors.
"""

from __future__ import annotations

from corpus.mutants import mutant
from graders.authoring.mock_submissions import edited

#: Inside define_model_2_conv, so that the other builders keep Keras's SGD.
_DISGUISED_SGD = '''    class SGD(keras.optimizers.Adam):
        """Adam, under SGD's name and taking SGD's arguments."""

        def __init__(self, learning_rate=0.01, momentum=0.0, **kwargs):
            super().__init__(learning_rate=learning_rate, **kwargs)
            self.momentum = momentum

        def get_config(self):
            return {**super().get_config(), "momentum": self.momentum, "nesterov": False}

'''

DISGUISED_OPTIMIZER = mutant(
    "evidence-disguised-optimizer",
    "TODO 5 compiles with a class named SGD that is Adam: 0 for TODO 5's optimizer, and only that.",
    ("test_todo5_optimizer",),
    todo5=edited("    model = keras.Sequential(", _DISGUISED_SGD + "    model = keras.Sequential("),
)

_FIT = "x_train, y_train, batch_size=32"

SUBSETS = (
    mutant(
        "evidence-tensor-slice",
        "TODO 1 trains on a tensor's slice, convert_to_tensor(x_train)[:10000].",
        ("test_todo1_training",),
        todo1=edited(_FIT, "keras.ops.convert_to_tensor(x_train)[:10000], y_train[:10000], batch_size=32"),
    ),
    mutant(
        "evidence-asarray-slice",
        "TODO 2 trains on np.asarray(x_train)[:12000].",
        ("test_todo2_training",),
        todo2=edited(_FIT, "np.asarray(x_train)[:12000], np.asarray(y_train)[:12000], batch_size=32"),
    ),
    mutant(
        "evidence-random-index",
        "TODO 4 trains on a random index of 10,000 rows.",
        ("test_todo4_training",),
        todo4=edited(
            "history_momentum = model_momentum.fit(\n    " + _FIT,
            "_pick = np.random.default_rng(0).choice(len(x_train), 10000, replace=False)\n"
            "history_momentum = model_momentum.fit(\n    x_train[_pick], y_train[_pick], batch_size=32",
        ),
    ),
    mutant(
        "evidence-np-split",
        "TODO 6 trains on np.split(x_train, 6)[0].",
        ("test_todo6_training",),
        todo6=edited(_FIT, "np.split(x_train, 6)[0], np.split(y_train, 6)[0], batch_size=32"),
    ),
    mutant(
        "evidence-train-and-test",
        "TODO 4 trains on x_train and x_test concatenated.",
        ("test_todo4_training",),
        todo4=edited(_FIT, "np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test]), batch_size=32"),
    ),
)

HONEST_VARIANTS = mutant(
    "evidence-honest-variants",
    "shuffle=False (TODO 1), a tf.data pipeline (TODO 2), float64 inputs (TODO 4), tensors (TODO 6): full marks.",
    (),
    todo1=edited(_FIT, "x_train, y_train, shuffle=False, batch_size=32"),
    todo2=edited(
        "history_eta_small = model_eta_small.fit(\n    x_train, y_train, batch_size=32, epochs=10,",
        "import tensorflow as tf\n\nhistory_eta_small = model_eta_small.fit(\n"
        "    tf.data.Dataset.from_tensor_slices((x_train, y_train)).batch(32), epochs=10,",
    ),
    todo4=edited(_FIT, "x_train.astype('float64'), y_train, batch_size=32"),
    todo6=edited(_FIT, "keras.ops.convert_to_tensor(x_train), keras.ops.convert_to_tensor(y_train), batch_size=32"),
)

EVIDENCE = (DISGUISED_OPTIMIZER, *SUBSETS, HONEST_VARIANTS)
