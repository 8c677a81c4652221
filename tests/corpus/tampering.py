"""In-kernel tampering: lazy HW5 work plus one trick, each carrying the honest grade.

The underlying work is the same for every case: TODO 3 and TODO 5 (the two builders) are
correct, Part A is correct, and TODO 1, 2, 4 and 6 are faked in the TODO 1 cell with
untrained models of the wrong kind and forged ``History`` objects, so no training runs.
Honestly that earns the four builder test cells (3 of Part B's 9 autograded points) and
all of Part A's. Each case adds one trick that makes the kernel's own hidden tests pass;
with the judge inside the kernel most of them got every point. Each must get exactly
the honest grade: the out-of-kernel verifier re-checks every cell on rebuilt objects.
Where a trick changes the work itself (a builder answering from a table), ``expected``
says which points the work honestly loses or keeps.
"""

from __future__ import annotations

from graders.authoring.mock_submissions import SOLUTION, MockSubmission

#: Wrong, untrained models and forged histories for TODO 1, 2, 4 and 6 (define_model is
#: the only builder defined above the TODO 1 cell; learning rate 0.5 is nobody's).
FAKES = """
def _forged_history(model, accuracy=0.97):
    history = keras.callbacks.History()
    history.set_model(model)
    history.history = {"accuracy": [accuracy] * 10, "val_accuracy": [accuracy] * 10,
                       "loss": [0.1] * 10, "val_loss": [0.1] * 10}
    history.params = {"epochs": 10, "steps": 32, "verbose": 1}
    history.epoch = list(range(10))
    return history

model_eta_large, model_eta_small, model_momentum, model_2_layer = (define_model(0.5) for _ in range(4))
history_eta_large, history_eta_small, history_momentum, history_2_layer = (
    _forged_history(m) for m in (model_eta_large, model_eta_small, model_momentum, model_2_layer))
"""

#: What the underlying work honestly earns (every other autograded cell: 0).
HONEST = {
    "test_todo3_architecture": 0.5,
    "test_todo3_optimizer": 1,
    "test_todo5_architecture": 1,
    "test_todo5_optimizer": 0.5,
    "test_answer_1_1": 1,
    "test_answer_3_conv": 2,
    "test_answer_3_pool": 1,
}

_NO_OP = "lambda *args, **kwargs: None"

#: A hook that rewrites what the kernel exported, after every cell (the export cells
#: included): deterministic, unlike a background thread racing the exports.
_FORGER = """
import os
def _forge_exports(*args):
    for root, _, files in os.walk(".hw5-exports"):
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path) and not path.endswith(".forged"):
                try:
                    FORGE(path)
                except OSError:
                    pass
get_ipython().events.register("post_run_cell", _forge_exports)
"""

#: A trick that breaks what the grader sees of the student's own, honest cells costs
#: those cells (fail closed): it never gains a point, and it may lose some.
BUILDER_CELLS = ("test_todo3_architecture", "test_todo3_optimizer", "test_todo5_architecture", "test_todo5_optimizer")
LOSSES = {
    # The multi-line check_builder_optimizer call loses its first line: a SyntaxError in the kernel.
    "input-transformer-cleanup": ("test_todo3_optimizer",),
    # Every export is destroyed, the builders' too: nothing of Part B can be verified.
    "oversized-export": BUILDER_CELLS,
    "symlinked-export": BUILDER_CELLS,
}
#: Cells a trick makes so slow that whether they end within the per-cell time limit depends
#: on the machine: they get their honest points or none, never more. A tracer that jumps
#: over check lines cannot jump into a multi-line call, and calling it on every function
#: call makes TODO 3's builder check take minutes. (Our export cells run untraced.)
TIME_LIMITED = {
    "tamper-settrace-skips-checks": ("test_todo3_optimizer",),
}

TRICKS = {
    "patched-check-functions": (
        "Monkeypatches the grading functions to do nothing.",
        f"import graders.checks as _checks\n"
        f"for _name in ('check_run_model', 'check_training', 'check_built_by'):\n"
        f"    setattr(_checks, _name, {_NO_OP})\n",
    ),
    "patched-checks-obfuscated": (
        "The same, with the module and function names decoded at run time.",
        "import importlib, base64\n"
        "_m = importlib.import_module(base64.b64decode(b'Z3JhZGVycy5jaGVja3M=').decode())\n"
        "for _n in [n for n in dir(_m) if n.startswith(chr(99) + 'heck_') and 'builder' not in n]:\n"
        "    setattr(_m, _n, (lambda *a, **k: None))\n",
    ),
    "sys-modules-swap": (
        "Puts a module of no-op checks in sys.modules in place of graders.checks.",
        "import sys, types\n"
        "_fake = types.ModuleType('graders.checks')\n"
        "_fake.__getattr__ = lambda name: (lambda *a, **k: None)\n"
        "sys.modules['graders.checks'] = _fake\n",
    ),
    "import-hook": (
        "A builtins.__import__ hook that answers every import from graders with no-ops.",
        "import builtins\n"
        "_real_import = builtins.__import__\n"
        "class _Anything:\n"
        "    def __getattr__(self, name):\n"
        "        return lambda *args, **kwargs: None\n"
        "def _hook(name, globals=None, locals=None, fromlist=(), level=0):\n"
        "    if name.startswith('graders'):\n"
        "        return _Anything()\n"
        "    return _real_import(name, globals, locals, fromlist, level)\n"
        "builtins.__import__ = _hook\n",
    ),
    "input-transformer-cleanup": (
        "An IPython cleanup transformer that deletes every line calling a check.",
        "def _drop_checks(lines):\n"
        "    return [line for line in lines if 'check_' not in line]\n"
        "get_ipython().input_transformers_cleanup.append(_drop_checks)\n",
    ),
    "input-transformer-post": (
        "An IPython post transformer that wraps every later cell in try/except.",
        "def _swallow(lines):\n"
        "    body = ''.join(lines)\n"
        "    indented = ''.join('    ' + line + '\\n' for line in body.splitlines()) or '    pass\\n'\n"
        "    return ['try:\\n', indented, 'except BaseException:\\n', '    pass\\n']\n"
        "get_ipython().input_transformers_post.append(_swallow)\n",
    ),
    "ast-transformer": (
        "An AST transformer that replaces every check_...() call by None.",
        "import ast\n"
        "class _NoChecks(ast.NodeTransformer):\n"
        "    def visit_Call(self, node):\n"
        "        self.generic_visit(node)\n"
        "        if isinstance(node.func, ast.Name) and node.func.id.startswith('check_'):\n"
        "            return ast.copy_location(ast.Constant(None), node)\n"
        "        return node\n"
        "get_ipython().ast_transformers.append(_NoChecks())\n",
    ),
    "settrace-skips-checks": (
        "A sys.settrace hook that jumps over every line calling a check.",
        "import sys, linecache\n"
        "def _tracer(frame, event, arg):\n"
        "    if event == 'call':\n"
        "        return _tracer if frame.f_code.co_name == '<module>' else None\n"
        "    if event == 'line':\n"
        "        line = linecache.getline(frame.f_code.co_filename, frame.f_lineno)\n"
        "        if 'check_' in line and 'import' not in line:\n"
        "            try:\n"
        "                frame.f_lineno = frame.f_lineno + 1\n"
        "            except ValueError:\n"
        "                pass\n"
        "    return _tracer\n"
        "sys.settrace(_tracer)\n",
    ),
    "setprofile-disarms-checks": (
        "A sys.setprofile hook that disarms the checks module the first time it is entered.",
        "import sys\n"
        "def _profile(frame, event, arg):\n"
        "    module = frame.f_globals.get('__name__', '')\n"
        "    if event == 'call' and module.startswith('graders.checks'):\n"
        "        checks = sys.modules.get('graders.checks')\n"
        "        for name in ('check_run_model', 'check_training', 'check_built_by'):\n"
        "            setattr(checks, name, lambda *a, **k: None)\n"
        "sys.setprofile(_profile)\n",
    ),
    "patched-optimizer-get-config": (
        "Optimizer.get_config lies: a learning rate of 0.5 reads as 1.0 (TODO 1's).",
        "_get_config = keras.optimizers.SGD.get_config\n"
        "def _lying_config(self):\n"
        "    config = _get_config(self)\n"
        "    if abs(float(config['learning_rate']) - 0.5) < 1e-6:\n"
        "        config['learning_rate'] = 1.0\n"
        "    return config\n"
        "keras.optimizers.SGD.get_config = _lying_config\n"
        "import graders.checks as _checks\n"
        f"_checks.check_training = {_NO_OP}\n",
    ),
    "lying-model-subclass": (
        "A Sequential subclass whose summary numbers lie, plus no-op training checks.",
        "class _Liar(keras.Sequential):\n"
        "    def count_params(self):\n"
        "        return 542230\n"
        "    def get_config(self):\n"
        "        return define_model(1).get_config()\n"
        "model_eta_large = _Liar(define_model(0.5).layers)\n"
        "model_eta_large.compile(optimizer=SGD(learning_rate=0.5), loss='categorical_crossentropy')\n"
        "history_eta_large = _forged_history(model_eta_large)\n"
        "import graders.checks as _checks\n"
        f"_checks.check_training = _checks.check_run_model = {_NO_OP}\n",
    ),
    "rigged-bool-history": (
        "History values whose float is 0.97 and whose truth and comparisons always succeed.",
        "class _Always(float):\n"
        "    def __bool__(self): return True\n"
        "    def __eq__(self, other): return True\n"
        "    def __le__(self, other): return True\n"
        "    def __lt__(self, other): return True\n"
        "    __hash__ = float.__hash__\n"
        "for _h in (history_eta_large, history_eta_small, history_momentum, history_2_layer):\n"
        "    _h.history = {k: [_Always(v) for v in values] for k, values in _h.history.items()}\n",
    ),
    "truncated-export": (
        "No-op checks, and a hook that truncates every exported arrays.npz.",
        "import graders.checks as _checks\n"
        f"for _name in ('check_run_model', 'check_training', 'check_built_by'):\n"
        f"    setattr(_checks, _name, {_NO_OP})\n"
        "def FORGE(path):\n"
        "    if path.endswith('.npz'):\n"
        "        os.truncate(path, 100)\n" + _FORGER,
    ),
    "oversized-export": (
        "No-op checks, and a hook that pads every exported manifest past its size cap.",
        "import graders.checks as _checks\n"
        f"for _name in ('check_run_model', 'check_training', 'check_built_by'):\n"
        f"    setattr(_checks, _name, {_NO_OP})\n"
        "def FORGE(path):\n"
        "    if path.endswith('manifest.json') and os.path.getsize(path) < 2 * 1024 * 1024:\n"
        "        with open(path, 'a') as handle:\n"
        "            handle.write(' ' * (2 * 1024 * 1024))\n" + _FORGER,
    ),
    "symlinked-export": (
        "No-op checks, and a hook that swaps every exported manifest for a symlink.",
        "import graders.checks as _checks\n"
        f"for _name in ('check_run_model', 'check_training', 'check_built_by'):\n"
        f"    setattr(_checks, _name, {_NO_OP})\n"
        "def FORGE(path):\n"
        "    if path.endswith('manifest.json'):\n"
        "        forged = path + '.forged'\n"
        "        os.replace(path, forged)\n"
        "        os.symlink(os.path.abspath(forged), path)\n" + _FORGER,
    ),
}

#: Tricks that replace other cells than TODO 1's; their honest grade differs (see each).
PART_A_RIGGED = MockSubmission(
    name="tamper-rigged-eq-answer",
    intent="Answer 'A' (wrong) as a str whose ==, != and strip/upper are rigged: 0 for 1.1.",
    cells={
        "todo1": FAKES,
        "todo3": SOLUTION,
        "todo5": SOLUTION,
        "answer_3": SOLUTION,
        "answer_1_1": (
            "class _Yes(str):\n"
            "    def __eq__(self, other): return True\n"
            "    def __ne__(self, other): return False\n"
            "    __hash__ = str.__hash__\n"
            "    def strip(self, *args): return self\n"
            "    def upper(self): return self\n"
            "answer_1_1 = _Yes('A')\n"
        ),
    },
    expected={**HONEST, "test_answer_1_1": 0},
)

CANNED_BUILDER = MockSubmission(
    name="tamper-canned-builder",
    intent=(
        "define_model_with_momentum answers from a table of the test's known arguments and "
        "ignores them otherwise: the fresh arguments fail it (0 for TODO 3's optimizer)."
    ),
    cells={
        "todo1": FAKES,
        "todo5": SOLUTION,
        "answer_1_1": SOLUTION,
        "answer_3": SOLUTION,
        "todo3": (
            "_KNOWN = {(0.01, 0.9), (0.05, 0.5), (0.2, 0.0)}\n"
            "def define_model_with_momentum(learning_rate, momentum):\n"
            "    if (learning_rate, momentum) not in _KNOWN:\n"
            "        learning_rate, momentum = 0.01, 0.9\n"
            "    model = keras.Sequential([keras.Input(shape=(28, 28, 1)),\n"
            "        layers.Conv2D(32, (3, 3), activation='relu'), layers.MaxPooling2D((2, 2)),\n"
            "        layers.Flatten(), layers.Dense(100, activation='relu'),\n"
            "        layers.Dense(10, activation='softmax')])\n"
            "    model.compile(optimizer=SGD(learning_rate=learning_rate, momentum=momentum),\n"
            "                  loss='categorical_crossentropy', metrics=['accuracy'])\n"
            "    return model\n"
        ),
    },
    expected={**HONEST, "test_todo3_optimizer": 0},
)

#: TODO 4 faked with an honest, untrained model_momentum, and the kernel's view of the test
#: data or of predictions replaced so that it clears the accuracy floor.
_TRAINED_LOOKING_MOMENTUM = (
    "model_momentum = define_model_with_momentum(0.01, 0.9)\n"
    "model_momentum.optimizer.build(model_momentum.trainable_variables)\n"
    "model_momentum.optimizer.iterations.assign(10 * -(-hw5_data.active_budget().n_train // 32))\n"
    "history_momentum = _forged_history(model_momentum, accuracy=1.0)\n"
)

REPLACED_TEST_DATA = MockSubmission(
    name="tamper-replaced-test-data",
    intent=(
        "TODO 4: an untrained model, a forged history, and hw5_data.load_mnist replaced so the "
        "test set is what the model predicts: the model cell is honest (0.5), training is not."
    ),
    cells={
        "todo1": FAKES,
        "todo3": SOLUTION,
        "todo5": SOLUTION,
        "answer_1_1": SOLUTION,
        "answer_3": SOLUTION,
        "todo4": (
            _TRAINED_LOOKING_MOMENTUM + "import hw5_data\n"
            "_blank = np.zeros((500, 28, 28), dtype='uint8')\n"
            "_label = int(np.argmax(model_momentum.predict(_blank[:1, ..., None] / 255.0, verbose=0)))\n"
            "_load = hw5_data.load_mnist\n"
            "def _rigged_load(*args, **kwargs):\n"
            "    (x_train_, y_train_), _ = _load(*args, **kwargs)\n"
            "    return (x_train_, y_train_), (_blank, np.full(500, _label, dtype='uint8'))\n"
            "hw5_data.load_mnist = _rigged_load\n"
        ),
    },
    expected={**HONEST, "test_todo4_model": 0.5},
)

PATCHED_PREDICT = MockSubmission(
    name="tamper-patched-predict",
    intent=(
        "TODO 4: an untrained model, a forged history, and keras.Model.predict and predict_on_batch "
        "patched to answer "
        "the test labels: the model cell is honest (0.5), training is not."
    ),
    cells={
        "todo1": FAKES,
        "todo3": SOLUTION,
        "todo5": SOLUTION,
        "answer_1_1": SOLUTION,
        "answer_3": SOLUTION,
        "todo4": (
            _TRAINED_LOOKING_MOMENTUM + "_predict = keras.Model.predict\n"
            "def _perfect(self, x, *args, **kwargs):\n"
            "    if len(x) == len(y_test):\n"
            "        return np.asarray(y_test, dtype='float32')\n"
            "    return _predict(self, x, *args, **kwargs)\n"
            "keras.Model.predict = _perfect\n"
            "_answers = {np.asarray(row, 'float32').tobytes(): label for row, label in zip(x_test, y_test)}\n"
            "_on_batch = keras.Model.predict_on_batch\n"
            "def _perfect_batch(self, x):\n"
            "    rows = [_answers.get(np.asarray(row, 'float32').tobytes()) for row in np.asarray(x)]\n"
            "    if all(row is not None for row in rows):\n"
            "        return np.asarray(rows, dtype='float32')\n"
            "    return _on_batch(self, x)\n"
            "keras.Model.predict_on_batch = _perfect_batch\n"
            "keras.Model.evaluate = lambda self, *a, **k: [0.0, 1.0]\n"
        ),
    },
    expected={**HONEST, "test_todo4_model": 0.5},
)


def _case(name: str, intent: str, trick: str) -> MockSubmission:
    lost = LOSSES.get(name, ())
    return MockSubmission(
        name=f"tamper-{name}",
        intent=intent
        + (
            " It breaks the grader's view of honest cells too, and loses them."
            if lost
            else " Must get exactly the honest grade."
        ),
        cells={
            "todo1": FAKES + trick,
            "todo3": SOLUTION,
            "todo5": SOLUTION,
            "answer_1_1": SOLUTION,
            "answer_3": SOLUTION,
        },
        expected={**HONEST, **{grade_id: 0 for grade_id in lost}},
    )


LAZY_HONEST = MockSubmission(
    name="tamper-none-lazy-honest",
    intent="The underlying lazy work with no trick: the honest grade.",
    cells={"todo1": FAKES, "todo3": SOLUTION, "todo5": SOLUTION, "answer_1_1": SOLUTION, "answer_3": SOLUTION},
    expected=HONEST,
)

TAMPERING = (
    LAZY_HONEST,
    *(_case(name, intent, trick) for name, (intent, trick) in TRICKS.items()),
    PART_A_RIGGED,
    CANNED_BUILDER,
    REPLACED_TEST_DATA,
    PATCHED_PREDICT,
)
