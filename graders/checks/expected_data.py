"""Read the expectations and thresholds that the checks compare against.

``expected.json`` is generated from ``graders/authoring/reference.py`` by
``python -m graders.authoring.expectations`` (never edited by hand; a test regenerates it).
``thresholds.json`` comes from the calibration run (``python -m graders.authoring.calibrate``).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXPECTED_PATH = HERE / "expected.json"
THRESHOLDS_PATH = HERE / "thresholds.json"


@functools.cache
def expected() -> dict:
    """Architectures (by builder name), runs (by run name) and training settings."""
    return json.loads(EXPECTED_PATH.read_text())


@functools.cache
def thresholds() -> dict:
    """Calibrated accuracy floors and tolerances, by budget name then run name."""
    return json.loads(THRESHOLDS_PATH.read_text())


def run_settings(run: str) -> dict:
    runs = expected()["runs"]
    if run not in runs:
        raise KeyError(f"Unknown run {run!r}; known runs: {sorted(runs)}")
    return runs[run]
