"""The grading data loaded ahead (graders.checks.preload): a sandbox readied before its job
fills the caches that the first check would fill, and a failure is left to the checks."""

from __future__ import annotations

import pytest

import hw5_data
from checks.tiny_budget import TINY
from graders.checks import data_checks, recorder, training_checks
from graders.checks.preload import load_grading_data

pytestmark = [pytest.mark.needs_mnist, pytest.mark.usefixtures("tiny_grading_budget")]


def test_the_first_checks_read_what_was_loaded_ahead():
    assert load_grading_data()
    loaded = {
        "fingerprints": data_checks.budget_fingerprints.cache_info().hits,
        "budget rows": recorder.budget_rows.cache_info().hits,
        "test data": training_checks._test_data.cache_info().hits,
    }
    # what the recorder's first fit and the first recomputed accuracy call
    data_checks.budget_fingerprints(hw5_data.BUDGETS["full"])
    recorder.budget_rows(hw5_data.active_budget())
    images, labels = training_checks._test_data("fast")
    assert data_checks.budget_fingerprints.cache_info().hits == loaded["fingerprints"] + 1
    assert recorder.budget_rows.cache_info().hits == loaded["budget rows"] + 1
    assert training_checks._test_data.cache_info().hits == loaded["test data"] + 1
    assert images.shape == (TINY.n_test, 28, 28, 1) and labels.shape == (TINY.n_test,)


def test_a_failure_is_left_for_the_checks_to_report(monkeypatch):
    monkeypatch.setenv("HW5_GRADING_BUDGET", "no-such-budget")
    assert load_grading_data() is False  # no exception: the checks meet it and say what it is
    assert training_checks._test_data.cache_info().currsize == 0
