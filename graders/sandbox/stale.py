"""Leftovers of sandbox runs whose orchestrator died (SIGKILL, power loss): find and clean."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from .cgroups import cleanup_stale_cgroups, pid_alive, run_owner
from .hostfs import remove_tree
from .rootless import is_rootless
from .run import RUN_PREFIX


def leftover_mounts(owner_pid: int | None = None) -> list[str]:
    """Mount points of sandbox runs still mounted (for tests and operations); only
    those of orchestrator ``owner_pid`` if given."""
    out = []
    tag = f"/{RUN_PREFIX}" if owner_pid is None else f"/{RUN_PREFIX}{owner_pid}-"
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) > 1 and tag in parts[1]:
            out.append(parts[1])
    return out


def cleanup_stale(base_dir: str | None = None) -> list[str]:
    """Unmount and remove the trees (and cgroups) of runs whose orchestrator process
    died without cleaning up (SIGKILL, power loss). Live runs are left alone."""
    base = base_dir or os.environ.get("HW5_SANDBOX_BASE") or tempfile.gettempdir()
    cleaned: list[str] = []
    try:
        names = os.listdir(base)
    except OSError:
        names = []
    for name in names:
        pid = run_owner(name) if name.startswith(RUN_PREFIX) else None
        if pid is None:
            continue
        if pid == os.getpid() or pid_alive(pid):
            continue  # the owner lives
        path = os.path.join(base, name)
        if any(mp == path or mp.startswith(path + "/") for mp in leftover_mounts()):
            subprocess.run(["umount", "-R", "-l", path], capture_output=True, timeout=60)
        try:
            os.rmdir(path)
            cleaned.append(path)
        except OSError:
            # a rootless run's tree is a plain folder with its files still in it
            try:
                if (
                    not any(mp == path or mp.startswith(path + "/") for mp in leftover_mounts())
                    and os.lstat(path).st_uid == os.geteuid()
                ):
                    remove_tree(path)
                    cleaned.append(path)
            except OSError:
                pass
    if not is_rootless():  # rootless runs have no cgroups (and may not touch root's)
        cleaned += [str(p) for p in cleanup_stale_cgroups()]
    return cleaned
