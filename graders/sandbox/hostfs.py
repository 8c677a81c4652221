"""Small host-side helpers of the sandbox: commands, mounts, permissions, capped reads.

Everything that comes out of a sandbox is hostile: :func:`read_capped` never follows a
symlink and never reads more than its cap; :class:`CappedReader` keeps only the head and
tail of a pipe.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import threading
from pathlib import PurePosixPath

from .errors import SandboxError


def run_command(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise SandboxError(f"{' '.join(cmd)} failed: {proc.stderr.strip() or proc.returncode}")


def mount_tmpfs(target: str, size: int, mode: int, uid: int = 0, gid: int = 0, extra: str = "nosuid,nodev") -> None:
    run_command(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode={mode:o},uid={uid},gid={gid},{extra}", "tmpfs", target]
    )


def reachable_by(path: str, uid: int, gid: int) -> bool:
    """Can ``uid``/``gid`` (no supplementary groups, no capabilities) open ``path``?"""
    real = os.path.realpath(path)
    parts = PurePosixPath(real).parts
    cur = "/"
    try:
        for i, part in enumerate(parts):
            if i:
                cur = os.path.join(cur, part)
            st = os.stat(cur)
            last = i == len(parts) - 1
            if st.st_uid == uid:
                bits = (st.st_mode >> 6) & 7
            elif st.st_gid == gid:
                bits = (st.st_mode >> 3) & 7
            else:
                bits = st.st_mode & 7
            if not last:
                if not bits & 1:
                    return False
            elif stat.S_ISDIR(st.st_mode):
                if (bits & 5) != 5:
                    return False
            elif not bits & 4:
                return False
    except OSError:
        return False
    return True


class CappedReader(threading.Thread):
    """Drain a pipe, keeping the first and last ``cap/2`` bytes."""

    def __init__(self, stream, cap: int) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.half = max(1, cap // 2)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def run(self) -> None:
        fd = self.stream.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.total += len(chunk)
            room = self.half - len(self.head)
            if room > 0:
                self.head += chunk[:room]
                chunk = chunk[room:]
            if chunk:
                self.tail += chunk
                if len(self.tail) > self.half:
                    del self.tail[: len(self.tail) - self.half]

    def text(self) -> str:
        dropped = self.total - len(self.head) - len(self.tail)
        mid = f"\n[... {dropped} bytes dropped ...]\n" if dropped > 0 else ""
        return bytes(self.head).decode("utf-8", "replace") + mid + bytes(self.tail).decode("utf-8", "replace")


def read_capped(path: str, cap: int, *, dir_fd: int | None = None) -> bytes | None:
    """Read a file written by untrusted code: regular file, no symlink, at most ``cap``
    bytes (read to the cap, not to its size: it may grow meanwhile). ``path`` is relative
    to the open folder ``dir_fd`` when given. ``None`` if absent. Raises
    :class:`OverflowError` if larger than ``cap`` and :class:`ValueError` if it is a
    link or not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:  # ELOOP: a symlink
        raise ValueError(f"{os.path.basename(path)}: {exc.strerror}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{os.path.basename(path)} is not a regular file")
        if st.st_size > cap:
            raise OverflowError(f"{os.path.basename(path)} is {st.st_size} bytes > {cap}")
        chunks = []
        left = cap + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > cap:
            raise OverflowError(f"{os.path.basename(path)} is larger than {cap} bytes")
        return data
    finally:
        os.close(fd)


def check_rel_name(name: str) -> str:
    if not isinstance(name, str) or not name or "\0" in name or name.startswith("/"):
        raise SandboxError(f"bad support file name {name!r}")
    p = PurePosixPath(name)
    if any(part in ("..", ".", "") for part in p.parts) or str(p) != name:
        raise SandboxError(f"bad support file name {name!r}")
    return name


def chown_tree(path: str, uid: int, gid: int) -> None:
    os.lchown(path, uid, gid)
    if os.path.isdir(path) and not os.path.islink(path):
        for dirpath, dirnames, filenames in os.walk(path):
            for n in dirnames + filenames:
                os.lchown(os.path.join(dirpath, n), uid, gid)


def remove_tree(path: str) -> None:
    """Remove a rootless run's tree. Its files are this uid's, but the student may have
    taken the permissions off its folders: give them back first (never following links)."""
    if not os.path.lexists(path):
        return
    os.chmod(path, 0o700)
    for dirpath, dirnames, _ in os.walk(path):  # top-down: chmod a folder, then enter it
        for name in dirnames:
            sub = os.path.join(dirpath, name)
            if not os.path.islink(sub):
                try:
                    os.chmod(sub, 0o700)
                except OSError:
                    pass
    shutil.rmtree(path)
