"""Kill a rootless sandbox through its pid namespace, and know when all of it is dead.

Without a cgroup there is no list of the run's processes. There is its pid namespace:
bwrap (``--unshare-pid``) starts a pid 1 of its own in it, and the kernel guarantees
that when a namespace's pid 1 exits, every other process in the namespace is SIGKILLed
and reaped *before* pid 1 itself finishes exiting (``zap_pid_ns_processes``). The outer
bwrap waits for that pid 1 and exits only after it. So:

* to kill everything: SIGKILL the namespace's pid 1 (bwrap reports its host pid on
  ``--info-fd``; it runs as the grader's uid, so the grader may signal it), then the
  outer bwrap;
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
import threading


class InfoReader(threading.Thread):
    """Read bwrap's ``--info-fd`` JSON (``{"child-pid": N, ...}``) from ``fd`` (closed at
    the end) and hold a pidfd of that pid 1, checked to be a child of the outer bwrap
    ``parent``: a pidfd names that very process, never a later one with the same number."""

    MAX_BYTES = 64 * 1024

    def __init__(self, fd: int, parent: int) -> None:
        super().__init__(daemon=True)
        self.fd = fd
        self.parent = parent
        self.child_pid: int | None = None
        self.pidfd: int | None = None
        self.error = ""

    def run(self) -> None:
        data = b""
        try:
            while len(data) < self.MAX_BYTES:
                chunk = os.read(self.fd, 4096)
                if not chunk:
                    break
                data += chunk
                try:  # bwrap may keep the fd open: stop at the first whole object
                    info, _ = json.JSONDecoder().raw_decode(data.decode("utf-8").lstrip())
                except ValueError:
                    continue
                pid = info.get("child-pid") if isinstance(info, dict) else None
                if isinstance(pid, int) and not isinstance(pid, bool) and pid > 1:
                    self._open(pid)
                else:
                    self.error = f"no child-pid in bwrap's info: {data[:200]!r}"
                return
            self.error = "bwrap wrote no info (it failed before starting the sandbox)"
        except OSError as exc:
            self.error = f"reading bwrap's info: {exc}"
        finally:
            os.close(self.fd)

    def _open(self, pid: int) -> None:
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            self.error = f"the sandbox's pid 1 ({pid}) was gone before it could be watched"
            return
        if parent_pid(pid) != self.parent:  # checked after opening: the pidfd is the one
            os.close(pidfd)
            self.error = f"pid {pid} is not a child of bwrap {self.parent}"
            return
        self.child_pid, self.pidfd = pid, pidfd

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def parent_pid(pid: int) -> int | None:
    """The parent of ``pid`` (field 4 of /proc/PID/stat), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    # the command name (field 2) may hold spaces or ')': split after its last ')'
    fields = text[text.rfind(")") + 2:].split()
    return int(fields[1]) if len(fields) > 1 else None


def exited(pidfd: int) -> bool:
    """Whether the process of ``pidfd`` has exited. A pidfd turns readable only once the
    process is a zombie, which for a namespace's pid 1 is after every other process of
    the namespace has been killed and reaped."""
    ready, _, _ = select.select([pidfd], [], [], 0)
    return bool(ready)


def kill_namespace(pidfd: int | None) -> None:
    """SIGKILL the namespace's pid 1 (the kernel then kills the rest of the namespace)."""
    if pidfd is not None:
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass
