"""Autograde submissions with nbgrader, one student per process.

A separate ``nbgrader autograde --student`` process per student means that one
broken submission cannot stop the others (nbgrader aborts a whole batch on some
errors, e.g. a duplicate grade_id).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from graders.course import ASSIGNMENT, COURSE_ROOT, run_nbgrader


@dataclass(frozen=True)
class GradingOutcome:
    student: str
    ok: bool
    seconds: float
    detail: str = ""


def submitted_students(root: Path = COURSE_ROOT, assignment: str = ASSIGNMENT) -> list[str]:
    """Students with a folder for this assignment under ``submitted/``, sorted."""
    base = root / "submitted"
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / assignment).is_dir())


def _last_error(log: str) -> str:
    lines = [line for line in log.splitlines() if "ERROR" in line or "Error" in line]
    lines = lines or log.strip().splitlines()
    return lines[-1][:300] if lines else "unknown error"


def autograde_student(student: str, root: Path = COURSE_ROOT, env: dict | None = None) -> GradingOutcome:
    """``nbgrader autograde hw5 --student STUDENT --force`` in its own process."""
    started = time.monotonic()
    result = run_nbgrader(["autograde", ASSIGNMENT, "--student", student, "--force"], root=root, env=env, check=False)
    seconds = time.monotonic() - started
    log = (result.stdout or "") + (result.stderr or "")
    failed = result.returncode != 0 or "[AutogradeApp | ERROR]" in log
    return GradingOutcome(student, not failed, seconds, _last_error(log) if failed else "")
