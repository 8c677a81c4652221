"""Fixtures shared by the checks' in-process tests."""

from __future__ import annotations

import pytest

import hw5_data
from checks.tiny_budget import TINY
from graders.checks import recorder, training_checks


@pytest.fixture
def tiny_grading_budget(monkeypatch):
    """Grade as nbgrader would, with :data:`TINY` as the fast budget; the checks' data
    caches and the recorder start empty and are left so."""
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    monkeypatch.delenv("HW5_GRADING_BUDGET", raising=False)
    monkeypatch.setitem(hw5_data.BUDGETS, "fast", TINY)
    training_checks.forget_test_data()
    recorder.budget_rows.cache_clear()
    yield TINY
    training_checks.forget_test_data()
    recorder.budget_rows.cache_clear()
    recorder.uninstall()
