"""The kits: copies of parts of ``graders/`` that a sandbox may import, and where they appear.

Three kits, built by :func:`build_kit` alone: the kernel's (``graders/checks``, no
reference code), the verifier's (``checks``, ``verify`` and the sandbox's capped file
reader) and the sandbox executor's own (:data:`graders.sandbox.run.KIT_FILES`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

#: Where the kernel's kit, the verifier's kit and the data file appear inside a sandbox.
CHECKS_INSIDE = "/opt/hw5-kit"
VERIFIER_KIT_INSIDE = "/opt/hw5-verifier"
DATA_INSIDE = "/opt/hw5-data/mnist.npz"

#: The files of ``graders/sandbox`` in the verifier's kit: the capped, link-refusing
#: ``hostfs.read_capped`` and what it imports.
VERIFIER_SANDBOX_FILES = ("__init__.py", "errors.py", "hostfs.py")


def build_kit(
    target: Path, graders_dir: Path, packages: tuple[str, ...] = (), files: dict[str, tuple[str, ...]] | None = None
) -> Path:
    """A copy of some of ``graders/`` under ``target/graders``: whole ``packages``, the
    named ``files`` of others (package -> file names), and a bare ``__init__.py``;
    readable by the sandboxes' unprivileged uids. Returns ``target``."""
    package = target / "graders"
    shutil.rmtree(package, ignore_errors=True)
    package.mkdir(parents=True)
    parts = [*packages, *(f"{name} ({', '.join(names)})" for name, names in (files or {}).items())]
    (package / "__init__.py").write_text(f'"""Grading kit: {", ".join(parts)} only."""\n')
    for name in packages:
        shutil.copytree(graders_dir / name, package / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name, file_names in (files or {}).items():
        (package / name).mkdir()
        for file_name in file_names:
            shutil.copyfile(graders_dir / name / file_name, package / name / file_name)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def build_checks_kit(target: Path, graders_dir: Path) -> Path:
    """The kernel's kit: ``graders/checks`` and nothing else (no reference code)."""
    return build_kit(target, graders_dir, ("checks",))


def build_verifier_kit(target: Path, graders_dir: Path) -> Path:
    """``graders/checks``, ``graders/verify`` and the sandbox's file reader: the verifier's
    code, which no student code ever ran with."""
    return build_kit(target, graders_dir, ("checks", "verify"), {"sandbox": VERIFIER_SANDBOX_FILES})
