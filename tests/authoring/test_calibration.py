"""Thresholds come from the committed calibration, and sit inside the measured gaps."""

from __future__ import annotations

import json

import pytest

from graders.authoring.calibrate import CALIBRATION_DIR, summarize
from graders.checks.expected_data import thresholds


def _record(run, variant, accuracy, gap=0.0):
    return {"run": run, "variant": variant, "test_accuracy": accuracy, "agreement_gap": gap}


def test_the_threshold_is_the_middle_of_the_gap_with_its_margins():
    records = [
        _record("baseline", "reference", 0.80),
        _record("baseline", "reference", 0.90),
        _record("baseline", "shuffled-labels", 0.12),
        _record("baseline", "untrained", 0.10),
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


def test_the_full_budget_agreement_sorts_agreeing_differing_and_pending(monkeypatch, tmp_path):
    """tests/corpus/agreement.py: a submission agrees only if every test cell's full-budget
    points equal its fast-budget verdicts; one not graded under the full budget is pending."""
    from corpus import agreement
    from graders.gradebook import CellGrade

    reference, keras2, dense100 = agreement.REFERENCE, agreement.CORRECT_STYLES[0], agreement.MUTANTS[0]
    monkeypatch.setattr(agreement, "CORPUS", (reference, keras2, dense100))
    maxima = {"test_todo4_model": 0.5, "test_todo4_training": 1.0}
    monkeypatch.setattr(agreement, "autograded_max_points", lambda course: maxima)

    def grade(grade_id, score):
        return CellGrade(
            grade_id=grade_id,
            notebook="hw5_part_b_cnn",
            score=score,
            max_score=maxima[grade_id],
            autograded=True,
            needs_manual_grade=False,
        )

    full = {
        reference.name: [grade("test_todo4_model", 0.5), grade("test_todo4_training", 1.0)],
        dense100.name: [grade("test_todo4_model", 0.5), grade("test_todo4_training", 1.0)],
        keras2.name: [grade("test_todo4_model", 0.5), grade("test_todo4_training", 1.0)],
    }
    monkeypatch.setattr(agreement, "student_grades", lambda db_url, student: full[student])
    monkeypatch.setattr(agreement, "graded_under_full_budget", lambda course, student: student != keras2.name)
    monkeypatch.setattr(agreement, "course_db_url", lambda course: "sqlite://")
    expected_dense100 = dense100.expected_points(maxima)
    result = agreement.compare(tmp_path)
    assert result["agree"] == [reference.name]
    assert result["pending"] == [keras2.name]
    assert result["disagree"] == {
        dense100.name: {
            cell: [expected_dense100[cell], maxima[cell]] for cell in maxima if expected_dense100[cell] != maxima[cell]
        }
    }
    assert result["disagree"][dense100.name]  # the Dense(100) mutant must lose points in TODO 4
