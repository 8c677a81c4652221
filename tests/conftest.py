"""Shared test setup: import paths, the local MNIST copy, quiet TensorFlow."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "source" / "hw5"
for path in (ROOT, SOURCE):  # graders.*, and the notebook's own hw5_data loader
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Nothing in the tests may download: use the configured copy, or the shared one
# beside the checkout (developers and CI have it there).
_SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist.npz"
if "HW5_MNIST_PATH" not in os.environ and _SHARED_MNIST.is_file():
    os.environ["HW5_MNIST_PATH"] = str(_SHARED_MNIST)


def pytest_collection_modifyitems(config, items):
    """Tests that need MNIST are skipped, with the reason, when no local copy is configured."""
    if os.environ.get("HW5_MNIST_PATH"):
        return
    skip = pytest.mark.skip(reason="no local MNIST: set HW5_MNIST_PATH (tests never download)")
    for item in items:
        if "needs_mnist" in item.keywords:
            item.add_marker(skip)
