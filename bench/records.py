"""The bench scripts' records: each measured run is appended, with where and when it was
measured, to a JSON list (oldest first) in ``bench/results/``."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def provenance() -> dict:
    """When, at which commit and on what machine a run was measured."""
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True)
    return {
        "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit.stdout.strip(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }


def append_run(path: Path, result: dict) -> None:
    """Add ``result`` to the list in ``path`` (created when missing), and say so."""
    runs = json.loads(path.read_text()) if path.exists() else []
    path.write_text(json.dumps([*runs, result], indent=2) + "\n")
    print("recorded in", path.relative_to(REPO))
