"""Where things are in the course directory, and how to call nbgrader on it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: The repository root is the nbgrader course root (it holds nbgrader_config.py).
COURSE_ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "hw5"
NOTEBOOKS = ("hw5_part_a_written.ipynb", "hw5_part_b_cnn.ipynb")


def source_dir(root: Path = COURSE_ROOT) -> Path:
    return root / "source" / ASSIGNMENT


def release_dir(root: Path = COURSE_ROOT) -> Path:
    return root / "release" / ASSIGNMENT


def hw5_data():
    """The course's own MNIST loader, ``source/hw5/hw5_data.py``, imported on the host (the
    home of what the notebook, the checks and the grader share: budgets, MNIST's shapes)."""
    if str(source_dir()) not in sys.path:
        sys.path.insert(0, str(source_dir()))
    import hw5_data

    return hw5_data


def load_config(root: Path = COURSE_ROOT):
    """The configuration nbgrader itself would use in the course root, as a traitlets
    Config: ``nbgrader_config.py`` (and ``.json``) from Jupyter's config path, lowest
    priority first (``/etc/jupyter``, the environment's, ``~/.jupyter``, then
    ``JUPYTER_CONFIG_DIR``), and the course's own file last, overriding them. So a
    JupyterHub's ``/etc/jupyter/nbgrader_config.py`` reaches the ``hw5-*`` commands as it
    reaches nbgrader's. The one place configuration is read."""
    from jupyter_core.paths import jupyter_config_path
    from traitlets.config import Config
    from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader

    config = Config()
    folders = [folder for folder in reversed(jupyter_config_path()) if Path(folder).resolve() != Path(root).resolve()]
    for folder in [*folders, str(root)]:
        for loader in (
            PyFileConfigLoader("nbgrader_config.py", path=folder),
            JSONFileConfigLoader("nbgrader_config.json", path=folder),
        ):
            if Path(folder, loader.filename).is_file():
                config.merge(loader.load_config())
    return config


def course_db_url(root: Path = COURSE_ROOT) -> str:
    """The gradebook URL, as ``nbgrader_config.py`` sets it (SQLite unless configured)."""
    return load_config(root).CourseDirectory.db_url


def source_layout(root: Path, assignment: str) -> tuple[dict[str, set[str]], dict[str, str]]:
    """What a submission should hold: notebook name -> its grade_ids, and the support
    files (file name -> host path) that every kernel gets from ``source/<assignment>``."""
    import nbformat

    source = root / "source" / assignment
    notebooks, support = {}, {}
    for path in sorted(source.iterdir()):
        if path.suffix == ".ipynb":
            cells = nbformat.read(path, as_version=4).cells
            notebooks[path.name] = {
                c.metadata["nbgrader"]["grade_id"] for c in cells if "grade_id" in c.metadata.get("nbgrader", {})
            }
        elif path.is_file() and not path.name.startswith(".") and path.suffix != ".pyc" and path.name != "mnist.npz":
            support[path.name] = str(path)
    return notebooks, support


def nbgrader_executable() -> str:
    """The ``nbgrader`` script beside the running interpreter (works without activating a venv)."""
    candidate = Path(sys.executable).with_name("nbgrader")
    return str(candidate) if candidate.exists() else "nbgrader"


def grading_environment(extra: dict | None = None) -> dict:
    """The environment for nbgrader and the kernels it starts.

    The interpreter's directory goes first on PATH so kernels use this venv, and
    TensorFlow's C++ logging is silenced before any kernel imports it.
    """
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.update(extra or {})
    return env


def run_nbgrader(args: list[str], root: Path = COURSE_ROOT, env: dict | None = None, check=True):
    """Run ``nbgrader ARGS`` in the course root; returns the CompletedProcess."""
    return subprocess.run(
        [nbgrader_executable(), *args],
        cwd=root,
        env=grading_environment(env),
        check=check,
        text=True,
        capture_output=True,
    )
