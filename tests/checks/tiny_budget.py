"""The tiny grading budget of the checks' in-process tests: 200 training and 100 test images
(seconds, not minutes). ``tests/checks/conftest.py:tiny_grading_budget`` grades with it."""

from __future__ import annotations

import hw5_data

TINY = hw5_data.Budget("fast", n_train=200, n_test=100)
