"""nbgrader_config.py: the settings the issue asks for, and the stderr filter's pattern."""

from __future__ import annotations

import re

import pytest
from graders.course import COURSE_ROOT, load_config
from graders.sandbox.limits import SandboxLimits


@pytest.fixture(scope="module")
def config():
    return load_config(COURSE_ROOT)


def test_course_settings(config):
    assert config.CourseDirectory.root == str(COURSE_ROOT)
    assert config.OverwriteCells.add_missing_cells is True
    assert config.Execute.timeout >= 300
    assert config.IgnorePattern.enabled is True
    assert "mnist.npz" in config.CourseDirectory.ignore


def test_nbgrader_and_hw5_autograde_allow_a_cell_the_same_time(config):
    """nbgrader validate and hw5-autograde (fast budget) give a cell one time limit."""
    assert config.Execute.timeout == SandboxLimits().cell_timeout_s


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-27 06:20:00.123456: I tensorflow/core/util/port.cc:153] oneDNN custom operations are on.\n",
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "E0000 00:00:1732690000.123456   12345 cuda_dnn.cc:8310] Unable to register cuDNN factory\n",
        "W0000 00:00:1764224400.000000    4242 gpu_device.cc:2344] Cannot dlopen some GPU libraries.\n\n",
    ],
)
def test_tensorflow_log_lines_are_ignored(config, text):
    assert re.search(config.IgnorePattern.pattern, text)


@pytest.mark.parametrize(
    "text",
    [
        "Traceback (most recent call last):\n  ValueError: bad\n",
        "2026-11-27 06:20:00.123456: I tensorflow/core/util/port.cc:153] oneDNN on.\nUserWarning: real warning\n",
        "/tmp/x.py:3: UserWarning: Do not pass an `input_shape`\n",
    ],
)
def test_genuine_stderr_is_kept(config, text):
    """Only outputs made wholly of log lines are dropped: a real error or warning still counts."""
    assert not re.search(config.IgnorePattern.pattern, text)
