"""Kill a rootless sandbox through its pid namespace, and know when all of it is dead.

Without a cgroup there is no list of the run's processes. There is its pid namespace:
bwrap (``--unshare-pid``) starts a pid 1 of its own in it, and the kernel guarantees
that when a namespace's pid 1 exits, every other process in the namespace is SIGKILLed
and reaped *before* pid 1 itself finishes exiting (``zap_pid_ns_processes``). The outer
bwrap waits for that pid 1 and exits only after it. So:

* to kill everything: SIGKILL the namespace's pid 1 (bwrap reports its host pid on
  ``--info-fd`` and waits on ``--block-fd`` until the grader holds a pidfd of it; it
  runs as the grader's uid, so the grader may signal it), then the outer bwrap;
* to know that everything is dead: the outer bwrap has exited *and* that pid 1 has
  exited (watched through a pidfd, so a reused pid number can never be mistaken for it).

A student process cannot leave the namespace (no capabilities, no ``setns``), so
"pid 1 gone" means "nothing of the run alive", which the artifact copy relies on.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time

from .errors import SandboxError

MAX_INFO_BYTES = 64 * 1024


class Pid1:
    """The pid namespace's pid 1 of one rootless run, held as a pidfd (a pidfd names that
    very process, never a later one with the same number)."""

    def __init__(self, pid: int, pidfd: int) -> None:
        self.pid, self.pidfd = pid, pidfd

    def exited(self) -> bool:
        """Whether pid 1 has exited. A pidfd turns readable only once the process is a
        zombie, which for a namespace's pid 1 is after every other process of the
        namespace has been killed and reaped."""
        if self.pidfd is None:
            return True
        ready, _, _ = select.select([self.pidfd], [], [], 0)
        return bool(ready)

    def wait_exited(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for pid 1 to exit; whether it has. The outer bwrap can
        report the command's status a moment before its pid 1 is gone (seconds on a
        loaded machine), and a check made in that moment would see a live namespace."""
        if self.pidfd is None:
            return True
        ready, _, _ = select.select([self.pidfd], [], [], max(0.0, timeout))
        return bool(ready)

    def kill(self) -> None:
        """SIGKILL pid 1: the kernel then kills the rest of the namespace."""
        if self.pidfd is not None:
            try:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def hold_pid1(info_fd: int, block_fd: int, parent: int, timeout: float = 60.0) -> Pid1:
    """Read bwrap's ``--info-fd`` (``{"child-pid": N, ...}``), take a pidfd of pid N (a
    child of the outer bwrap ``parent``), and only then let the sandbox start its
    command by writing to its ``--block-fd``: pid 1 cannot be gone before it is held.
    Closes ``info_fd``, and ``block_fd`` once written. Raises SandboxError when bwrap
    reports no pid 1: ``block_fd`` is left open then (closing it would let bwrap start
    the command), for the caller to kill bwrap first."""

    data = b""
    deadline = time.monotonic() + timeout
    try:
        while len(data) < MAX_INFO_BYTES:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([info_fd], [], [], max(0.0, left))
            if not ready:
                raise SandboxError(f"bwrap reported no pid 1 within {timeout:.0f} s")
            chunk = os.read(info_fd, 4096)
            if not chunk:
                raise SandboxError("bwrap exited before starting the sandbox")
            data += chunk
            try:  # bwrap may keep the fd open: stop at the first whole object
                info, _ = json.JSONDecoder().raw_decode(data.decode("utf-8").lstrip())
            except ValueError:
                continue
            pid = info.get("child-pid") if isinstance(info, dict) else None
            if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
                raise SandboxError(f"no child-pid in bwrap's info: {data[:200]!r}")
            pidfd = os.pidfd_open(pid)  # blocked on block-fd: it is alive
            if parent_pid(pid) != parent:  # checked after opening: the pidfd is the one
                os.close(pidfd)
                raise SandboxError(f"pid {pid} is not a child of bwrap {parent}")
            os.write(block_fd, b"x")
            os.close(block_fd)
            return Pid1(pid, pidfd)
        raise SandboxError("bwrap's info is too long")
    except OSError as exc:
        raise SandboxError(f"cannot hold the sandbox's pid 1: {exc}") from exc
    finally:
        os.close(info_fd)


def parent_pid(pid: int) -> int | None:
    """The parent of ``pid`` (field 4 of /proc/PID/stat), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    # the command name (field 2) may hold spaces or ')': split after its last ')'
    fields = text[text.rfind(")") + 2 :].split()
    return int(fields[1]) if len(fields) > 1 else None
