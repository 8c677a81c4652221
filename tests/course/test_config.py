"""nbgrader_config.py: the settings the issue asks for, and the stderr filter's pattern."""

from __future__ import annotations

import re
import shutil

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


# -- configuration read the way nbgrader reads it ------------------------------------------------


def test_jupyter_config_directories_come_first_and_the_course_file_overrides_them(tmp_path, monkeypatch):
    from graders.course import load_config

    system = tmp_path / "jupyter-config"
    system.mkdir()
    (system / "nbgrader_config.py").write_text(
        "c = get_config()\nc.LimitOutput.max_lines = 7\nc.CourseDirectory.course_id = 'from-the-hub'\n"
    )
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(system))
    config = load_config()
    assert config.LimitOutput.max_lines == 7  # the hub's setting, which the course leaves alone
    assert config.CourseDirectory.course_id == "hw5-cnn"  # the course's own file wins, as in nbgrader


@pytest.mark.batch
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_a_setting_in_a_jupyter_config_directory_reaches_hw5_autograde(tmp_path, monkeypatch):
    import nbformat
    from toy_course import grade_toy, toy_course_with

    system = tmp_path / "jupyter-config"
    system.mkdir()
    (system / "nbgrader_config.py").write_text("c = get_config()\nc.LimitOutput.max_lines = 3\n")
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(system))
    chatty = "for line in range(40):\n    print('line', line)\n\ndef add(a, b):\n    return a + b\n"
    root = toy_course_with(tmp_path / "course", {"alice": (chatty,)})
    code, reports = grade_toy(root)
    assert code == 0 and reports["alice"]["score"] == 2.0
    notebook = nbformat.read(root / "autograded" / "alice" / "toy" / "toy.ipynb", as_version=4)
    solution = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "solution")
    text = "".join(output.get("text", "") for output in solution.outputs)
    assert "... Output truncated ..." in text and "line 39" not in text
