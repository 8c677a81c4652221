"""Thresholds come from the committed calibration, and sit inside the measured gaps."""

from __future__ import annotations

import json

import pytest

from graders.calibrate import CALIBRATION_DIR, summarize
from graders.checks.expectations import thresholds


def _record(run, variant, accuracy, gap=0.0):
    return {"run": run, "variant": variant, "test_accuracy": accuracy, "agreement_gap": gap}


def test_the_threshold_is_the_middle_of_the_gap_with_its_margins():
    records = [
        _record("baseline", "reference", 0.80), _record("baseline", "reference", 0.90),
        _record("baseline", "shuffled-labels", 0.12), _record("baseline", "untrained", 0.10),
        _record("momentum", "reference", 0.85, gap=0.0),
        _record("momentum", "validation-on-training-data", 0.85, gap=0.10),
    ]
    summary = summarize(records)
    baseline = summary["floors"]["baseline"]
    assert baseline["threshold"] == 0.46  # (0.80 + 0.12) / 2, rounded down
    assert baseline["margin_below_reference"] == pytest.approx(0.34)
    assert baseline["margin_above_mutant"] == pytest.approx(0.34)
    assert summary["agreement"]["tolerance"] == 0.05


def test_a_missing_gap_is_reported_as_such():
    records = [_record("baseline", "reference", 0.30), _record("baseline", "shuffled-labels", 0.40)]
    assert summarize(records)["floors"]["baseline"]["gap"] is False


@pytest.mark.parametrize("budget", ["fast"])
def test_committed_thresholds_equal_the_committed_calibration(budget):
    saved = json.loads((CALIBRATION_DIR / f"calibration-{budget}.json").read_text())
    assert len(saved["seeds"]) >= 5
    summary = summarize(saved["records"])
    limits = thresholds()
    for run, entry in summary["floors"].items():
        assert limits["budgets"][budget][run]["min_test_accuracy"] == entry["threshold"], run
        if entry["threshold"] is not None:
            assert entry["gap"] and entry["margin_below_reference"] > 0 and entry["margin_above_mutant"] > 0
    assert limits["history_agreement"] == summary["agreement"]["tolerance"]
    assert summary["agreement"]["gap"]
