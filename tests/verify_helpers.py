"""Helpers for the verifier tests: a simulated student kernel (``__main__``'s globals)."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PART_B = ROOT / "source" / "hw5" / "hw5_part_b_cnn.ipynb"
PART_A = ROOT / "source" / "hw5" / "hw5_part_a_written.ipynb"


def read(path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def tiny_data(n: int = 320, seed: int = 0):
    """``(n, 28, 28, 1)`` float32 images and ``(n, 10)`` one-hot labels (random: no MNIST)."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 28, 28, 1), dtype="float32")
    y = np.eye(10, dtype="float32")[rng.integers(0, 10, n)]
    return x, y


def train_tiny(model, x, y):
    """One epoch, batch 32: ``ceil(n / 32)`` updates."""
    return model.fit(x, y, batch_size=32, epochs=1, validation_data=(x[:64], y[:64]), verbose=0)


def kernel_namespace(monkeypatch, values: dict) -> dict:
    """Put ``values`` into ``__main__``'s globals (undone after the test), as a kernel would hold them."""
    namespace = sys.modules["__main__"].__dict__
    for name, value in values.items():
        monkeypatch.setitem(namespace, name, value)
    return namespace


def reference_kernel(x, y) -> dict:
    """The globals of an honest Part B kernel, built by ``graders.authoring.reference``, trained tiny."""
    from graders.authoring import reference

    values = {name: builder for name, builder in reference.BUILDERS.items()}
    for run, model_name, history_name in (
        ("eta_large", "model_eta_large", "history_eta_large"),
        ("eta_small", "model_eta_small", "history_eta_small"),
        ("momentum", "model_momentum", "history_momentum"),
        ("two_conv", "model_2_layer", "history_2_layer"),
    ):
        model = reference.build_run(run)
        values[model_name] = model
        values[history_name] = train_tiny(model, x, y)
    return values


PART_A_ANSWERS = {
    "answer_1_1": "B",
    "answer_3_conv": np.array([[11, 5, 7, 2], [3, 14, -7, 5], [11, 9, -3, 10], [13, 0, 4, 3]]),
    "answer_3_pool": np.array([[14, 7], [13, 10]]),
}
