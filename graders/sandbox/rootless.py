"""Rootless mode: when the grader is not root, and which limits hold then.

Not root, the grader cannot drop to another uid, mount the sized scratch tmpfs or create
cgroups (on cgroup v1, or v2 without a delegated subtree). It can still start
``bwrap --unshare-all --unshare-user`` wherever the kernel allows unprivileged user
namespaces: the student's code then runs as the grader's own host uid, mapped to the
sandbox uid inside, with no capabilities, no network and only the allow-listed paths
bound (see :mod:`graders.sandbox.bwrap`). The limits become:

* processes + threads: ``RLIMIT_NPROC``, set *inside* the user namespace (by ``prlimit``
  as the first command there). Since Linux 5.14 the kernel counts RLIMIT_NPROC per
  (user namespace, uid), so this counts the sandbox's own tasks only, not every process
  of the grader's uid (measured: 100 processes of the uid outside, 48 forks inside under
  a limit of 50);
* memory: ``RLIMIT_AS`` per process (at least 4 GiB: TensorFlow aborts below);
* files: ``RLIMIT_FSIZE`` per file, ``RLIMIT_NOFILE``, ``RLIMIT_CORE`` 0; the scratch,
  an ordinary host folder, is kept under its size by :mod:`graders.sandbox.quota`;
* time: the notebook's wall-clock limit, by killing the pid namespace
  (:mod:`graders.sandbox.pidns`).

Root mode is unchanged: ``setpriv`` to the sandbox uid, cgroup memory + pids limits and a
sized tmpfs scratch.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

from .limits import MIN_ADDRESS_SPACE_MB, MiB, SandboxLimits

#: Where the kernel says whether unprivileged users may create user namespaces.
USERNS_SYSCTLS = (
    ("/proc/sys/user/max_user_namespaces", "0", "user namespaces are disabled (sysctl user.max_user_namespaces=0)"),
    (
        "/proc/sys/kernel/unprivileged_userns_clone",
        "0",
        "unprivileged user namespaces are disabled (sysctl kernel.unprivileged_userns_clone=0)",
    ),
    (
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
        "1",
        "AppArmor restricts unprivileged user namespaces (sysctl kernel.apparmor_restrict_unprivileged_userns=1)",
    ),
)


def is_rootless() -> bool:
    """True when the grader runs without root, so the sandbox must be rootless."""
    return os.geteuid() != 0


@functools.cache
def userns_problem(bwrap: str) -> str | None:
    """Why this user cannot start bwrap in its own user namespace, or None when it can
    (the sysctls first, for a message that names the fix; then a real try)."""
    for path, bad, why in USERNS_SYSCTLS:
        try:
            if Path(path).read_text().strip() == bad:
                return why
        except OSError:
            pass
    try:
        proc = subprocess.run(
            [
                bwrap,
                "--unshare-user",
                "--unshare-net",
                "--ro-bind",
                "/usr",
                "/usr",
                "--symlink",
                "usr/bin",
                "/bin",
                "--symlink",
                "usr/lib",
                "/lib",
                "--symlink",
                "usr/lib64",
                "/lib64",
                "--",
                "/usr/bin/true",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot run {bwrap}: {exc}"
    if proc.returncode != 0:
        return f"bwrap cannot create a user namespace here: {proc.stderr.strip()[-300:]}"
    return None


def address_space_bytes(limits: SandboxLimits) -> int:
    """RLIMIT_AS in rootless mode: the configured one, else the memory limit (never below
    the 4 GiB that TensorFlow needs to start its threads)."""
    mb = limits.address_space_mb or max(limits.memory_mb, MIN_ADDRESS_SPACE_MB)
    return mb * MiB


def inside_prefix(limits: SandboxLimits, prlimit: str = "/usr/bin/prlimit") -> list[str]:
    """The command that starts the sandbox's argv inside the user namespace with its
    process limit (RLIMIT_NPROC must be set there to count only the sandbox's tasks)."""
    return [prlimit, f"--nproc={limits.pids}:{limits.pids}", "--"]


def why_no_cgroup(root: Path = Path("/sys/fs/cgroup")) -> str:
    """Why rootless runs use rlimits, not a cgroup, on this machine."""
    if not (root / "cgroup.controllers").exists():
        return "cgroup v1 here, so no delegated subtree"
    return "cgroup v2 here, but delegated subtrees (systemd-run --user --scope) are not used yet"


def describe(limits: SandboxLimits) -> str:
    """One line: which limits are in force in rootless mode (for the self-test and logs)."""
    return (
        f"rootless (bubblewrap user namespace; no cgroup: {why_no_cgroup()}): processes+threads "
        f"RLIMIT_NPROC={limits.pids} inside the namespace; memory RLIMIT_AS="
        f"{address_space_bytes(limits) // MiB} MiB per process; scratch "
        f"{limits.scratch_mb} MiB by polling; RLIMIT_FSIZE={limits.fsize_bytes // MiB} MiB "
        f"per file; wall clock {limits.notebook_timeout_s} s by killing the pid namespace"
    )
