"""Grade a set of mock submissions end to end in a throw-away course."""

from __future__ import annotations

import json
from pathlib import Path

from graders import grade_class
from graders.release import make_scratch_course


def grade_mocks(base: Path, mocks, workers: int | None = None) -> tuple[Path, dict[str, dict]]:
    """A scratch course in ``base`` with ``mocks`` submitted and graded by hw5-autograde
    (sandboxed). Returns the course root and the per-student reports."""
    root = make_scratch_course(base)
    for mock in mocks:
        mock.write(root / "submitted", root=root)
    report = root / "report.json"
    options = ["--workers", str(workers)] if workers else []
    grade_class.main(["hw5", "--course", str(root), "--report", str(report), *options])
    return root, {entry["student"]: entry for entry in json.loads(report.read_text())}
