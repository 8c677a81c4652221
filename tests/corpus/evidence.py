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
- forged training, which only the training evidence refutes (``graders.checks.evidence``):
  a History and update count written by hand for models never trained (TODO 1 and 2); the
  trained baseline's weights copied into TODO 4's model, with filled momentum buffers and
  the baseline's history; a model trained at another learning rate whose recorded
  evidence is then rewritten to claim the graded one (TODO 1). Each loses exactly its
  training point.
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


def _history_by_hand(model: str, history: str) -> str:
    """``model`` is built, never trained; its History and update count are written to agree."""
    return f"""{model}.optimizer.build({model}.trainable_variables)
_steps = -(-hw5_data.active_budget().n_train // 32)
{model}.optimizer.iterations.assign(10 * _steps)
_loss, _accuracy = {model}.evaluate(x_test, y_test, verbose=0)
{history} = keras.callbacks.History()
{history}.set_model({model})
{history}.history = {{key: [value] * 10 for key, value in
                     {{"loss": _loss, "accuracy": _accuracy, "val_loss": _loss, "val_accuracy": _accuracy}}.items()}}
{history}.params = {{"verbose": 1, "epochs": 10, "steps": _steps}}
{history}.epoch = list(range(10))
"""


FORGED = (
    mutant(
        "evidence-history-by-hand",
        "TODO 1 and 2 build their models but never train them; History and update count are written by hand.",
        ("test_todo1_training", "test_todo2_training"),
        todo1="model_eta_large = define_model(1)\n" + _history_by_hand("model_eta_large", "history_eta_large"),
        todo2="model_eta_small = define_model(0.00001)\n" + _history_by_hand("model_eta_small", "history_eta_small"),
    ),
    mutant(
        "evidence-copied-weights",
        "TODO 4 copies the trained baseline's weights, fills the momentum buffers and reuses its history.",
        ("test_todo4_training",),
        todo4="""model_momentum = define_model_with_momentum(0.01, 0.9)
model_momentum.set_weights(model.get_weights())
model_momentum.optimizer.build(model_momentum.trainable_variables)
model_momentum.optimizer.iterations.assign(model.optimizer.iterations)
for _slot in model_momentum.optimizer.variables[2:]:
    _slot.assign(keras.random.normal(_slot.shape, stddev=1e-3))
history_momentum = keras.callbacks.History()
history_momentum.set_model(model_momentum)
history_momentum.history = dict(history.history)
history_momentum.params = dict(history.params)
history_momentum.epoch = list(history.epoch)
""",
    ),
    mutant(
        "evidence-rewritten-record",
        "TODO 1 trains at learning rate 0.01, then sets 1 and rewrites the recorded training to claim it.",
        ("test_todo1_training",),
        todo1="""model_eta_large = define_model(0.01)
history_eta_large = model_eta_large.fit(
    x_train, y_train, batch_size=32, epochs=10, validation_data=(x_test, y_test)
)
model_eta_large.optimizer.learning_rate = 1.0
for _segment in getattr(model_eta_large, "_hw5_evidence", ()):
    _segment["optimizer"]["config"]["learning_rate"] = 1.0
""",
    ),
)

EVIDENCE = (DISGUISED_OPTIMIZER, *SUBSETS, HONEST_VARIANTS, *FORGED)
