"""Is an optimizer judged by what it is, not by its name? In the kernel's checks and in the
verifier (export -> strict read -> rebuild and cross-checks), with no MNIST."""

from __future__ import annotations

import keras
import pytest

from graders.authoring import reference
from graders.checks import GradingFailure, check_builder_optimizer, check_optimizer
from graders.checks.describe import describe_model
from graders.checks.kernel_export import export_cell
from graders.checks.optimizer_identity import KERAS_SGD_PATH, class_path, identity_problem
from graders.verify import crosscheck
from graders.verify.export_reader import read_cell_exports
from graders.verify.rebuild import rebuild_model
from tests import verify_helpers as vh


class SGD(keras.optimizers.Adam):
    """Adam under SGD's name, taking SGD's arguments (the trick of issue 17)."""

    def __init__(self, learning_rate=0.01, momentum=0.0, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = momentum

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": False}


class SubclassedSGD(keras.optimizers.SGD):
    """A subclass of Keras's SGD (it could change the update): not Keras's own SGD."""


SubclassedSGD.__name__ = "SGD"


def _model(optimizer):
    model = reference.define_model_with_momentum(0.01, 0.9)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def test_keras_sgd_is_where_the_rule_says():
    assert class_path(keras.optimizers.SGD) == KERAS_SGD_PATH


@pytest.mark.parametrize(
    "optimizer",
    [lambda: SGD(0.01, 0.9), lambda: SubclassedSGD(0.01, momentum=0.9)],
    ids=["adam-named-sgd", "sgd-subclass"],
)
def test_an_optimizer_named_sgd_that_is_not_keras_sgd_fails_in_the_kernel(optimizer):
    model = _model(optimizer())
    assert type(model.optimizer).__name__ == "SGD"
    with pytest.raises(GradingFailure, match="not Keras's own SGD") as failure:
        check_optimizer.__wrapped__(model, 0.01, 0.9)
    assert "keras.optimizers.SGD" in str(failure.value)


def test_a_builder_returning_the_disguise_loses_the_optimizer_point():
    def define_model_2_conv(learning_rate):
        model = reference.define_model_2_conv(learning_rate)
        model.compile(optimizer=SGD(learning_rate), loss="categorical_crossentropy", metrics=["accuracy"])
        return model

    with pytest.raises(GradingFailure, match="not Keras's own SGD"):
        check_builder_optimizer.__wrapped__(define_model_2_conv, "define_model_2_conv", [(0.01,)])
    check_builder_optimizer.__wrapped__(reference.define_model_2_conv, "define_model_2_conv", [(0.01,)])


def test_slots_that_sgd_does_not_keep_fail():
    slots = ["dense_kernel_momentum", "dense_kernel_velocity"]
    assert "velocity" in identity_problem("SGD", KERAS_SGD_PATH, slots, 0.9, 2)
    assert "2 momentum buffers" in identity_problem("SGD", KERAS_SGD_PATH, slots[:1] * 2, 0.0, 2)
    assert identity_problem("SGD", KERAS_SGD_PATH, slots[:1], 0.9, 1) is None
    assert identity_problem("SGD", KERAS_SGD_PATH, [], 0.0, 4) is None
    assert identity_problem("Adam", "keras.src.optimizers.adam.Adam", slots, 0.0, 2) is None  # named Adam elsewhere


def test_trained_sgd_with_and_without_momentum_passes_in_the_kernel():
    data = vh.tiny_data(64)
    for momentum in (0.9, 0.0):
        model = reference.define_model_with_momentum(0.01, momentum)
        vh.train_tiny(model, *data)
        check_optimizer.__wrapped__(model, 0.01, momentum)


def _exported(monkeypatch, tmp_path, model, history=None):
    values = {"model": model} if history is None else {"model": model, "history": history}
    vh.kernel_namespace(monkeypatch, values)
    export_cell({"grade_id": "cell", "names": sorted(values), "calls": []}, str(tmp_path))
    return read_cell_exports(tmp_path / "cell")


def test_the_verifier_judges_a_disguised_optimizer_as_the_kernel_did(monkeypatch, tmp_path):
    """Rebuilt, it is still named SGD and still not Keras's SGD: the unchanged checks, run on
    the rebuilt model, fail it in the kernel's words, and compare equal to the student's own
    builder (check_built_by), as the kernel's did."""
    model = _model(SGD(0.01, 0.9))
    exports = _exported(monkeypatch, tmp_path, model)
    item = exports["manifest"]["items"]["model"]
    assert item["compile"]["optimizer"]["class_path"] == f"{__name__}.SGD"
    rebuilt = rebuild_model(item, exports["arrays"], "model")
    with pytest.raises(GradingFailure) as in_kernel:
        check_optimizer.__wrapped__(model, 0.01, 0.9)
    with pytest.raises(GradingFailure) as outside:
        check_optimizer.__wrapped__(rebuilt, 0.01, 0.9)
    assert str(outside.value) == str(in_kernel.value)
    assert describe_model(rebuilt)["optimizer"] == describe_model(model)["optimizer"]


def test_a_trained_disguise_is_not_held_to_sgd_cross_checks(monkeypatch, tmp_path):
    """Adam's slots under SGD's name are not SGD's: the optimizer check fails it once; the
    training is judged as any other optimizer's (as Adam named Adam would be)."""
    model = _model(SGD(0.01, 0.9))
    history = vh.train_tiny(model, *vh.tiny_data(64))
    crosscheck.crosscheck_items(_exported(monkeypatch, tmp_path, model, history)["manifest"]["items"])


def test_the_verifier_refuses_adam_slots_in_a_trained_model(monkeypatch, tmp_path):
    model = _model(SGD(0.01, 0.9))
    history = vh.train_tiny(model, *vh.tiny_data(64))
    items = _exported(monkeypatch, tmp_path, model, history)["manifest"]["items"]
    items["model"]["compile"]["optimizer"]["class_path"] = KERAS_SGD_PATH  # even with a forged path
    assert any(slot.endswith("_velocity") for slot in items["model"]["optimizer_state"]["slots"])
    with pytest.raises(GradingFailure, match="variables that SGD does not"):
        crosscheck.crosscheck_items(items)


def test_the_verifier_accepts_keras_sgd(monkeypatch, tmp_path):
    model = reference.define_model_with_momentum(0.01, 0.9)
    history = vh.train_tiny(model, *vh.tiny_data(64))
    exports = _exported(monkeypatch, tmp_path, model, history)
    crosscheck.crosscheck_items(exports["manifest"]["items"])
    rebuilt = rebuild_model(exports["manifest"]["items"]["model"], exports["arrays"], "model")
    assert type(rebuilt.optimizer) is keras.optimizers.SGD
