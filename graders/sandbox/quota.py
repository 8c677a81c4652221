"""Keep a rootless run's scratch under its size by watching it (no tmpfs without root).

As root the scratch is a tmpfs of ``scratch_mb``; a rootless grader cannot mount one, so
the scratch is an ordinary folder on the host's disk. :class:`ScratchWatch` walks it a
few times a second and, when it holds more than ``scratch_mb`` (or more entries than a
notebook plausibly needs), calls ``on_exceed`` (the run kills its pid namespace). Each
file is capped by ``RLIMIT_FSIZE`` meanwhile, so the overshoot is bounded by what can be
written between two polls.
"""

from __future__ import annotations

import os
import stat
import threading

POLL_S = 0.25
MAX_ENTRIES = 100_000


def usage(top: str, max_entries: int = MAX_ENTRIES) -> tuple[int, int]:
    """(bytes allocated, entries) under ``top``, without following symlinks; stops
    counting past ``max_entries``."""
    total = entries = 0
    stack = [top]
    while stack and entries <= max_entries:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    entries += 1
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += st.st_blocks * 512
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(entry.path)
        except OSError:
            continue
    return total, entries


class ScratchWatch(threading.Thread):
    """Poll ``top`` until :meth:`stop`; on going over, record why and call ``on_exceed``."""

    def __init__(
        self, top: str, max_bytes: int, on_exceed, *, poll_s: float = POLL_S, max_entries: int = MAX_ENTRIES
    ) -> None:
        super().__init__(daemon=True)
        self.top, self.max_bytes, self.on_exceed = top, max_bytes, on_exceed
        self.poll_s, self.max_entries = poll_s, max_entries
        self.exceeded = ""
        self.peak_bytes = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.poll_s):
            used, entries = usage(self.top, self.max_entries)
            self.peak_bytes = max(self.peak_bytes, used)
            if used > self.max_bytes or entries > self.max_entries:
                self.exceeded = (
                    f"the scratch folder went over its limit ({used} bytes in "
                    f"{entries} entries; limit {self.max_bytes} bytes, "
                    f"{self.max_entries} entries)"
                )
                self.on_exceed()
                return

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(timeout=5)
