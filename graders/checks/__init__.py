"""The checks that HW5's hidden tests call, one short call per test.

This package is all that a grading kernel may import from ``graders``: it holds
no reference code, only the derived expectations (``expected.json``) and the
calibrated thresholds (``thresholds.json``).
"""

from graders.checks import recorder  # noqa: F401 (hw5_data.prepare_session switches it on while grading)
from graders.checks.failures import CouldNotCheck, GradingFailure
from graders.checks.model_checks import (
    check_architecture,
    check_builder_optimizer,
    check_built_by,
    check_optimizer,
    check_run_model,
)
from graders.checks.training_checks import check_history, check_training, recompute_accuracy

__all__ = [
    "CouldNotCheck",
    "GradingFailure",
    "check_architecture",
    "check_builder_optimizer",
    "check_built_by",
    "check_history",
    "check_optimizer",
    "check_run_model",
    "check_training",
    "recompute_accuracy",
]
