"""What grading must leave unchanged on the host: folder contents, and no sandbox debris.

A sandbox run is named ``hw5sb-<orchestrator pid>-...`` (its mounts and cgroups); its
processes run as uid 65534. Debris is whatever of a run outlives its orchestrator.
Runs of other live orchestrators (a developer's parallel test run) are not ours to judge.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Collection, Iterator
from pathlib import Path

from graders.sandbox.cgroups import leftover_cgroups, pid_alive, run_owner
from graders.sandbox.limits import VERIFIER_UID, SandboxLimits
from graders.sandbox.stale import leftover_mounts

SANDBOX_UID = SandboxLimits().uid


def tree_hash(folder: Path) -> str:
    """A digest of every path name and file content under ``folder``."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def sandbox_processes() -> Iterator[tuple[int, int | None, str, str]]:
    """(pid, owning orchestrator pid or None, state letter, command) of each process of the
    sandbox's uid (65534) or the verifier's (65533)."""
    uids = f"{SANDBOX_UID},{VERIFIER_UID}"
    listing = subprocess.run(["pgrep", "-u", uids], capture_output=True, text=True).stdout
    for pid in listing.split():
        proc = Path("/proc") / pid
        try:
            cgroups = (proc / "cgroup").read_text()
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # exited meanwhile
        yield int(pid), run_owner(cgroups), state, command


def _orphaned(owner: int | None) -> bool:
    return owner is None or not pid_alive(owner)


def orphaned_sandbox_leftovers() -> set[str]:
    """Mounts, cgroups and uid-65534 processes of sandbox runs whose owner has exited.

    A process that is exiting (a zombie, or dead) is skipped: the kernel moves an exiting
    task to the root cgroups, so for a moment it looks ownerless.
    """
    found = {f"mount {mount}" for mount in leftover_mounts() if _orphaned(run_owner(mount))}
    found |= {f"cgroup {cgroup}" for cgroup in leftover_cgroups() if _orphaned(run_owner(str(cgroup)))}
    found |= {
        f"process {pid} {command[:120]!r}"
        for pid, owner, state, command in sandbox_processes()
        if state not in ("Z", "X", "x") and _orphaned(owner)
    }
    return found


def lasting_leftovers(before: Collection[str], grace_s: float = 10.0) -> list[str]:
    """Leftovers not in ``before`` that are still there after ``grace_s`` seconds (a run
    being torn down at this moment is not a leak; a leaked process or mount stays)."""
    deadline = time.monotonic() + grace_s
    while True:
        new = sorted(orphaned_sandbox_leftovers() - set(before))
        if not new or time.monotonic() > deadline:
            return new
        time.sleep(0.5)
