"""Host side: run one untrusted notebook in the sandbox and read the result back.

:func:`execute_notebook` is the API. Per run it

1. mounts a private, size-capped tmpfs tree under ``$TMPDIR/hw5sb-<pid>-*`` (mode 0711,
   private propagation) holding the scratch tmpfs (the kernel's cwd, owned by the
   sandbox uid), a copy of this package (the "kit" that runs
   :mod:`execute_inside`), generated ``/etc`` files, and read-only host
   bind mounts "mirroring" paths the sandbox uid could not reach (the pyenv base
   under ``/root``);
2. copies the notebook and an allow-list of support files into the scratch;
3. creates a per-run cgroup (memory + pids), starts ``setpriv ... bwrap ...`` with the
   child joining the cgroup and setting RLIMITs (preexec), captures stdout/stderr
   (capped), and kills the whole cgroup at the notebook time limit;
4. reads the result from a pipe whose write end only the executor holds
   (:mod:`graders.sandbox.channel`; nothing is read back from a file the student's
   code could write), size-capped, and copies only outputs and execution counts, checked
   against the nbformat schema, onto the notebook it sent in;
5. always, in a ``finally``: kills everything left in the cgroup, removes it, unmounts
   the tree and removes its directory.

There is no unsandboxed path: when anything needed is missing this raises
:class:`SandboxUnavailable` / :class:`SandboxError`.
"""

from __future__ import annotations

import copy
import os
import re
import resource
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping

from . import bwrap as bw
from .cgroups import NAME_PREFIX, CgroupError, SandboxCgroup, pid_alive, run_owner
from .channel import FrameReader
from .errors import SandboxError, SandboxUnavailable
from .limits import MiB, SandboxLimits

# statuses of ExecutionResult
OK = "ok"
TIMEOUT = "timeout"
OOM = "oom"
KERNEL_DIED = "kernel_died"
CRASHED = "crashed"
OUTPUT_TOO_LARGE = "output_too_large"
INVALID_OUTPUT = "invalid_output"
INVALID_INPUT = "invalid_input"
STATUSES = (OK, TIMEOUT, OOM, KERNEL_DIED, CRASHED, OUTPUT_TOO_LARGE, INVALID_OUTPUT,
            INVALID_INPUT)

RUN_PREFIX = NAME_PREFIX  # trees and cgroups share it: run_owner reads both
ROOT_TMPFS_BYTES = 16 * MiB
MAX_STATUS_BYTES = 64 * 1024
_KIT_FILES = ("__init__.py", "errors.py", "limits.py", "channel.py", "execute_inside.py")
_SAFE_NB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,120}\.ipynb$")


@dataclass
class ExecutionResult:
    """What came back from one sandboxed run.

    ``notebook`` is the notebook that was sent in with the outputs and execution counts
    the sandbox reported (or ``None``). Cells that did not run to completion carry an
    error output. Everything in it is a claim of untrusted code.
    """

    notebook: Any | None
    status: str
    detail: str
    wall_s: float
    peak_memory_bytes: int | None = None
    oom_kills: int = 0
    returncode: int | None = None
    cell_timeouts: list[int] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    run_id: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OK


# ----------------------------------------------------------------------------------
# small host helpers
# ----------------------------------------------------------------------------------
def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise SandboxError(f"{' '.join(cmd)} failed: {proc.stderr.strip() or proc.returncode}")


def _mount_tmpfs(target: str, size: int, mode: int, uid: int = 0, gid: int = 0,
                 extra: str = "nosuid,nodev") -> None:
    _run(["mount", "-t", "tmpfs", "-o",
          f"size={size},mode={mode:o},uid={uid},gid={gid},{extra}", "tmpfs", target])


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


class _CappedReader(threading.Thread):
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
        return (bytes(self.head).decode("utf-8", "replace") + mid
                + bytes(self.tail).decode("utf-8", "replace"))


def read_capped(path: str, cap: int) -> bytes | None:
    """Read a file written by the sandbox: regular file, no symlink, at most ``cap``
    bytes. ``None`` if absent. Raises :class:`OverflowError` if larger than ``cap`` and
    :class:`ValueError` if not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
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


def _check_rel_name(name: str) -> str:
    if not isinstance(name, str) or not name or "\0" in name or name.startswith("/"):
        raise SandboxError(f"bad support file name {name!r}")
    p = PurePosixPath(name)
    if any(part in ("..", ".", "") for part in p.parts) or str(p) != name:
        raise SandboxError(f"bad support file name {name!r}")
    return name


def _chown_tree(path: str, uid: int, gid: int) -> None:
    os.lchown(path, uid, gid)
    if os.path.isdir(path) and not os.path.islink(path):
        for dirpath, dirnames, filenames in os.walk(path):
            for n in dirnames + filenames:
                os.lchown(os.path.join(dirpath, n), uid, gid)


# ----------------------------------------------------------------------------------
# one run
# ----------------------------------------------------------------------------------
class SandboxRun:
    """The host-side resources of one sandboxed run (context manager).

    ``with SandboxRun(limits) as run: run.add_file(...); run.start(cmd, env); run.wait()``.
    Leaving the block kills everything, removes the cgroup and unmounts the tree.
    """

    def __init__(self, limits: SandboxLimits, *, base_dir: str | None = None) -> None:
        self.limits = limits
        self.base_dir = base_dir or os.environ.get("HW5_SANDBOX_BASE") or tempfile.gettempdir()
        self.root: str | None = None
        self.mounted = False
        self.cgroup: SandboxCgroup | None = None
        self.proc: subprocess.Popen | None = None
        self.readers: list[_CappedReader] = []
        self.python_binds: list[bw.Bind] = []
        self.extra_binds: list[bw.Bind] = []
        self._mirrors = 0
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.timed_out = False

    # -- paths -----------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        return os.path.basename(self.root or "")

    def host(self, *parts: str) -> str:
        assert self.root is not None
        return os.path.join(self.root, *parts)

    # -- setup -----------------------------------------------------------------------
    def __enter__(self) -> "SandboxRun":
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def _setup(self) -> None:
        if os.geteuid() != 0:
            raise SandboxUnavailable(
                "the sandbox orchestrator must run as root (cgroups, tmpfs mounts)")
        for tool in ("bwrap", "setpriv", "mount", "umount"):
            try:
                bw.find_tool(tool)
            except bw.BwrapError as exc:
                raise SandboxUnavailable(str(exc)) from exc
        lim = self.limits
        self.root = tempfile.mkdtemp(prefix=f"{RUN_PREFIX}{os.getpid()}-", dir=self.base_dir)
        _mount_tmpfs(self.root, ROOT_TMPFS_BYTES, 0o711, extra="nosuid,nodev,noexec")
        self.mounted = True
        _run(["mount", "--make-private", self.root])
        for d, mode in (("work", 0o755), ("kit", 0o755), ("etc", 0o755), ("mnt", 0o755)):
            os.mkdir(self.host(d), mode)
            os.chmod(self.host(d), mode)
        _mount_tmpfs(self.host("work"), lim.scratch_mb * MiB, 0o700, lim.uid, lim.gid)
        self._build_kit()
        bw.write_etc(self.host("etc"), lim)
        _, prefixes = bw.python_inside()
        for host, inside in prefixes:
            self.python_binds.append(bw.Bind(self.mirror(host), inside))
        try:
            self.cgroup = SandboxCgroup(
                memory_bytes=lim.memory_bytes, pids_max=lim.pids,
                name=self.run_id).create()
        except CgroupError as exc:
            raise SandboxUnavailable(f"cgroup: {exc}") from exc

    def _build_kit(self) -> None:
        src = Path(__file__).resolve().parent
        pkg = self.host("kit", "graders", "sandbox")
        os.makedirs(pkg, mode=0o755)
        os.chmod(self.host("kit", "graders"), 0o755)
        with open(self.host("kit", "graders", "__init__.py"), "w") as fh:
            fh.write('"""Sandbox kit: only graders.sandbox (execute_inside) is here."""\n')
        for name in _KIT_FILES:
            shutil.copyfile(src / name, os.path.join(pkg, name))
        for dirpath, dirnames, filenames in os.walk(self.host("kit")):
            os.chmod(dirpath, 0o755)
            for n in filenames:
                os.chmod(os.path.join(dirpath, n), 0o644)

    def mirror(self, host_path: str | os.PathLike) -> str:
        """A host path the sandbox uid can reach with the content of ``host_path``:
        the path itself, or a read-only bind mount of it inside the private tree."""
        path = os.path.realpath(os.fspath(host_path))
        if not os.path.exists(path):
            raise SandboxError(f"bind source {host_path} does not exist")
        if reachable_by(path, self.limits.uid, self.limits.gid):
            return path
        self._mirrors += 1
        target = self.host("mnt", str(self._mirrors))
        if os.path.isdir(path):
            os.mkdir(target, 0o755)
        else:
            with open(target, "w"):
                pass
            os.chmod(target, 0o644)
        _run(["mount", "--bind", path, target])
        _run(["mount", "-o", "remount,bind,ro,nosuid,nodev", target])
        if not reachable_by(target, self.limits.uid, self.limits.gid):
            raise SandboxError(f"{host_path} is not readable by uid {self.limits.uid} "
                               "even when mirrored (its own permissions forbid it)")
        return target

    def add_ro_bind(self, host_path: str | os.PathLike, inside: str) -> None:
        bw.check_inside_path(inside)
        self.extra_binds.append(bw.Bind(self.mirror(host_path), inside))

    def add_file(self, inside_name: str, data: bytes | None = None, *,
                 source: str | os.PathLike | None = None) -> str:
        """Copy bytes or a host file/directory into the scratch as ``inside_name``."""
        _check_rel_name(inside_name)
        dest = self.host("work", inside_name)
        parent = os.path.dirname(dest)
        os.makedirs(parent, mode=0o755, exist_ok=True)
        top = self.host("work")
        cur = parent
        while cur != top and cur.startswith(top):
            os.lchown(cur, self.limits.uid, self.limits.gid)
            cur = os.path.dirname(cur)
        if os.path.lexists(dest):
            raise SandboxError(f"{inside_name} given twice")
        try:
            if data is not None:
                with open(dest, "wb") as fh:
                    fh.write(data)
            elif source is not None and os.path.isdir(source):
                shutil.copytree(source, dest, symlinks=False)
            elif source is not None:
                shutil.copyfile(source, dest)
            else:
                raise SandboxError("add_file needs data or source")
        except OSError as exc:
            raise SandboxError(f"cannot copy {inside_name} into the scratch "
                               f"({self.limits.scratch_mb} MiB): {exc}") from exc
        _chown_tree(dest, self.limits.uid, self.limits.gid)
        return f"{bw.INSIDE_WORK}/{inside_name}"

    # -- process ---------------------------------------------------------------------
    def _preexec(self):
        procs_files = self.cgroup.procs_files()  # type: ignore[union-attr]
        lim = self.limits
        rlimits = [
            (resource.RLIMIT_CORE, (0, 0)),
            (resource.RLIMIT_NOFILE, (lim.nofile, lim.nofile)),
            (resource.RLIMIT_FSIZE, (lim.fsize_bytes, lim.fsize_bytes)),
        ]
        if lim.address_space_mb is not None:
            n = lim.address_space_mb * MiB
            rlimits.append((resource.RLIMIT_AS, (n, n)))

        def preexec() -> None:  # runs in the child between fork and exec, as root
            for f in procs_files:
                fd = os.open(f, os.O_WRONLY)
                try:
                    os.write(fd, b"0")
                finally:
                    os.close(fd)
            for res, value in rlimits:
                resource.setrlimit(res, value)

        return preexec

    def command(self, inside_argv: list[str], env: Mapping[str, str]) -> list[str]:
        spec = bw.SandboxSpec(
            limits=self.limits, work_dir=self.host("work"),
            kit_dir=self.host("kit"), etc_dir=self.host("etc"), command=list(inside_argv),
            python_binds=self.python_binds, extra_binds=self.extra_binds, env=dict(env),
        )
        return bw.build_command(spec)

    def start(self, inside_argv: list[str], env: Mapping[str, str],
              pass_fds: tuple[int, ...] = ()) -> None:
        """Start the sandbox; ``pass_fds`` are kept open in it at the same numbers."""
        if self.proc is not None:
            raise SandboxError("a SandboxRun runs one command")
        argv = self.command(inside_argv, env)
        self.started_at = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, close_fds=True, pass_fds=pass_fds,
                start_new_session=True, cwd="/",
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
                preexec_fn=self._preexec(),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise SandboxUnavailable(f"cannot start the sandbox: {exc}") from exc
        for stream in (self.proc.stdout, self.proc.stderr):
            r = _CappedReader(stream, self.limits.max_log_bytes)
            r.start()
            self.readers.append(r)

    def wait(self, timeout: float) -> int | None:
        """Wait for the sandbox; past ``timeout`` s kill everything in the cgroup.
        Returns the exit status (``None`` if it had to be killed)."""
        assert self.proc is not None and self.started_at is not None
        remaining = max(0.0, self.started_at + timeout - time.monotonic())
        try:
            rc = self.proc.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            self.timed_out = True
            self._kill()
            rc = None
        self.ended_at = time.monotonic()
        # whatever the student left behind (daemons, setsid'd children) dies now
        if self.cgroup is not None:
            try:
                self.cgroup.kill_all()
            except CgroupError as exc:
                raise SandboxError(str(exc)) from exc
        for r in self.readers:
            r.join(timeout=5)
        return rc

    def _kill(self) -> None:
        if self.cgroup is not None:
            try:
                self.cgroup.kill_all()
            except CgroupError:
                pass
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    @property
    def wall_s(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.ended_at or time.monotonic()) - self.started_at

    def stdout_text(self) -> str:
        return self.readers[0].text() if self.readers else ""

    def stderr_text(self) -> str:
        return self.readers[1].text() if len(self.readers) > 1 else ""

    # -- teardown --------------------------------------------------------------------
    def close(self) -> None:
        errors: list[str] = []
        try:
            self._kill()
        except Exception as exc:  # noqa: BLE001
            errors.append(f"kill: {exc}")
        if self.cgroup is not None:
            try:
                self.cgroup.remove()
                self.cgroup = None
            except CgroupError as exc:
                errors.append(f"cgroup: {exc}")
        if self.proc is not None:
            for s in (self.proc.stdout, self.proc.stderr):
                try:
                    if s is not None:
                        s.close()
                except OSError:
                    pass
        for r in self.readers:
            r.join(timeout=1)
        if self.root is not None:
            if self.mounted:
                proc = subprocess.run(["umount", "-R", self.root], capture_output=True,
                                      text=True, timeout=60)
                if proc.returncode != 0:
                    lazy = subprocess.run(["umount", "-R", "-l", self.root],
                                          capture_output=True, text=True, timeout=60)
                    if lazy.returncode != 0:
                        errors.append(f"umount {self.root}: {proc.stderr.strip()}")
                if not any(self.root == line.split()[1]
                           for line in Path("/proc/mounts").read_text().splitlines()
                           if len(line.split()) > 1):
                    self.mounted = False
            if not self.mounted:
                try:
                    os.rmdir(self.root)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    errors.append(f"rmdir {self.root}: {exc}")
        if errors:
            raise SandboxError("sandbox teardown failed: " + "; ".join(errors))


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
    from .cgroups import cleanup_stale_cgroups

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
            pass
    cleaned += [str(p) for p in cleanup_stale_cgroups()]
    return cleaned


# ----------------------------------------------------------------------------------
# notebook execution
# ----------------------------------------------------------------------------------
def _load_input(notebook, limits: SandboxLimits, notebook_name: str | None):
    """(node, name) or raises ValueError with a per-student message."""
    import nbformat

    if isinstance(notebook, (str, os.PathLike)):
        path = os.fspath(notebook)
        try:
            raw = read_capped(path, limits.max_output_bytes)
        except OverflowError as exc:
            raise ValueError(f"notebook too large: {exc}") from exc
        if raw is None:
            raise ValueError(f"notebook {path} does not exist")
        name = notebook_name or os.path.basename(path)
        try:
            node = nbformat.reads(raw.decode("utf-8"), as_version=4)
        except Exception as exc:  # noqa: BLE001 - invalid JSON, not a notebook, ...
            raise ValueError(f"not a readable notebook: {type(exc).__name__}: {exc}") from exc
    else:
        node = copy.deepcopy(notebook)
        name = notebook_name or "submission.ipynb"
        if not isinstance(node, dict) or "cells" not in node:
            raise ValueError("not a notebook node")
        try:  # normalise (multi-line sources as lists, ...) exactly like a file read
            node = nbformat.reads(nbformat.writes(nbformat.from_dict(node)), as_version=4)
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"not a valid notebook node: {type(exc).__name__}: {exc}") from exc
    if node.get("nbformat") != 4:
        raise ValueError("not an nbformat 4 notebook")
    try:
        nbformat.validate(node)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"notebook fails the nbformat schema: {str(exc)[:500]}") from exc
    if not _SAFE_NB_NAME.match(name):
        name = "submission.ipynb"
    return node, name


def _merge_outputs(sent, cells: dict) -> Any:
    """The notebook that was sent in, with the outputs and execution counts of the
    ``cell`` frames (index -> frame) put on its code cells; cells without a frame keep
    no outputs. Raises ValueError when a frame names no code cell or is malformed."""
    import nbformat

    result = copy.deepcopy(sent)
    for cell in result.cells:
        if cell.cell_type == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    for i, frame in cells.items():
        if not (isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(result.cells)):
            raise ValueError(f"a cell frame names cell {i!r}, which the notebook does not have")
        mine = result.cells[i]
        if mine.cell_type != "code":
            raise ValueError(f"cell {i}: a frame for a {mine.cell_type} cell")
        outputs = frame.get("outputs", [])
        count = frame.get("execution_count")
        if not isinstance(outputs, list) or not (count is None or (
                isinstance(count, int) and not isinstance(count, bool) and count >= 0)):
            raise ValueError(f"cell {i}: bad outputs / execution_count")
        mine["outputs"] = nbformat.from_dict(outputs)
        mine["execution_count"] = count
    nbformat.validate(result)
    return result


def _mark_unfinished(nb, status: str) -> None:
    import nbformat

    for cell in nb.cells:
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        if cell.get("execution_count") is None and not any(
                o.get("output_type") == "error" for o in cell.outputs):
            cell.outputs.append(nbformat.v4.new_output(
                "error", ename="CellNotExecuted",
                evalue=f"did not run to completion (sandbox status: {status})",
                traceback=[f"CellNotExecuted: sandbox status {status}"]))


def execute_notebook(
    notebook,
    *,
    support_files: Mapping[str, str | os.PathLike] | None = None,
    ro_binds: Iterable[tuple[str | os.PathLike, str]] = (),
    env: Mapping[str, str] | None = None,
    limits: SandboxLimits | None = None,
    notebook_name: str | None = None,
    kernel_name: str = "python3",
    verify: bool = True,
) -> ExecutionResult:
    """Execute one untrusted notebook in a fresh sandbox and return the result.

    ``notebook``: a path (read without following a final symlink, size-capped) or an
    nbformat node. ``support_files``: inside name (relative to the kernel's cwd
    ``/home/student/work``) -> host file or directory, copied into the scratch.
    ``ro_binds``: (host path, absolute inside path) bound read-only. ``env``: extra
    environment for the kernel (``PYTHONPATH`` goes to the kernel only).
    ``verify``: run :func:`graders.sandbox.selftest.require_sandbox` first (cached
    per process) - raises :class:`SandboxUnavailable` if the sandbox does not hold.

    Raises :class:`SandboxError` for host-side failures (never returns an
    unsandboxed result); every failure of the notebook itself is a status.
    """
    limits = limits or SandboxLimits()
    if verify:
        from .selftest import require_sandbox

        require_sandbox(limits)
    t0 = time.monotonic()
    try:
        sent, name = _load_input(notebook, limits, notebook_name)
    except ValueError as exc:
        return ExecutionResult(None, INVALID_INPUT, str(exc)[:2000], time.monotonic() - t0)
    import nbformat

    user_env = bw.check_env(dict(env or {}))
    kernel_pythonpath = user_env.pop("PYTHONPATH", "")
    exe, _ = bw.python_inside()
    inside_env = bw.base_env(limits, os.path.dirname(exe))
    inside_env.update(user_env)
    inside_env["PYTHONPATH"] = bw.INSIDE_KIT

    with SandboxRun(limits) as run:
        inside_nb = run.add_file(name, nbformat.writes(sent).encode("utf-8"))
        for inside_name, host in (support_files or {}).items():
            if inside_name == name:
                raise SandboxError(f"support file {inside_name!r} clashes with the notebook")
            run.add_file(inside_name, source=host)
        for host, inside in ro_binds:
            run.add_ro_bind(host, inside)
        read_end, write_end = os.pipe()  # the result channel (graders.sandbox.channel)
        argv = [
            exe, "-P", "-m", "graders.sandbox.execute_inside", inside_nb,
            "--result-fd", str(write_end),
            "--cell-timeout", str(limits.cell_timeout_s),
            "--kernel", kernel_name,
            "--max-output-bytes", str(limits.max_output_bytes),
            "--max-cell-output-bytes", str(limits.max_cell_output_bytes),
            "--kernel-pythonpath", kernel_pythonpath,
        ]
        try:
            run.start(argv, inside_env, pass_fds=(write_end,))
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)  # the sandboxed executor holds the only write end
        # Per-cell frames repeat what the final notebook holds: twice the output cap.
        reader = FrameReader(read_end, 2 * limits.max_output_bytes + MAX_STATUS_BYTES)
        reader.start()
        rc = run.wait(limits.notebook_timeout_s)
        reader.join(timeout=30)  # everything in the sandbox is dead: the pipe is at its end
        cg = run.cgroup
        oom = cg.oom_kills() if cg else 0
        peak = cg.peak_memory_bytes() if cg else None
        result = ExecutionResult(
            None, CRASHED, "", run.wall_s, peak_memory_bytes=peak, oom_kills=oom,
            returncode=rc, stdout=run.stdout_text(), stderr=run.stderr_text(),
            run_id=run.run_id)
        return _read_result(result, reader, sent, limits, timed_out=run.timed_out)


def _read_result(result: ExecutionResult, reader: FrameReader, sent, limits: SandboxLimits,
                 *, timed_out: bool) -> ExecutionResult:
    """Fill ``result`` from the frames the executor sent: its status, then the sent
    notebook with the outputs and execution counts of the cells that ran."""
    if reader.is_alive():
        result.status = CRASHED
        result.detail = "the result channel did not close"
        return result
    if reader.overflow:
        result.status = OUTPUT_TOO_LARGE
        result.detail = f"the executed notebook's outputs came to more than {reader.cap} bytes"
        return result
    cells: dict[int, dict] = {}
    doc = None
    for frame in reader.frames:
        if frame["kind"] == "cell":
            cells[frame.get("index")] = frame
        elif frame["kind"] == "status":
            doc = frame

    # -- the status ----------------------------------------------------------------------
    inside_status = None
    inside_detail = ""
    if doc is not None and doc.get("status") in ("ok", "kernel_died", "timeout", "error"):
        inside_status = doc["status"]
        inside_detail = str(doc.get("detail", ""))[:2000]
        ct = doc.get("cell_timeouts", [])
        if isinstance(ct, list):
            result.cell_timeouts = [int(x) for x in ct[:1000]
                                    if isinstance(x, int) and not isinstance(x, bool)]
        truncated = doc.get("truncated", [])
        if isinstance(truncated, list) and truncated and inside_status == "ok":
            inside_status = "truncated"
            inside_detail = f"outputs of cells {truncated[:50]} were truncated"
    rc, oom = result.returncode, result.oom_kills

    if timed_out:
        result.status = TIMEOUT
        result.detail = (f"notebook exceeded {limits.notebook_timeout_s} s wall time; "
                         "everything in the sandbox was killed")
    elif oom and inside_status != "ok":
        result.status = OOM
        result.detail = (f"out of memory (limit {limits.memory_mb} MiB, "
                         f"{oom} process(es) OOM-killed)")
    elif inside_status == "ok" and rc == 0:
        result.status = OK
    elif inside_status == "truncated" and rc == 0:
        result.status = OUTPUT_TOO_LARGE
        result.detail = inside_detail
    elif inside_status == "kernel_died":
        result.status = KERNEL_DIED
        result.detail = inside_detail
    elif inside_status == "timeout":
        result.status = TIMEOUT
        result.detail = inside_detail
    else:
        result.status = CRASHED
        result.detail = (inside_detail or "the sandboxed executor did not finish") + (
            f" (exit status {rc})" if rc is not None else "")

    # -- the notebook --------------------------------------------------------------------
    if reader.error:
        result.status = INVALID_OUTPUT
        result.detail = f"result channel: {reader.error}"
        return result
    try:
        merged = _merge_outputs(sent, cells)
    except Exception as exc:  # noqa: BLE001 - every validation error of the claimed outputs
        result.status = INVALID_OUTPUT
        result.detail = f"executed notebook rejected: {type(exc).__name__}: {str(exc)[:500]}"
        return result
    if result.status != OK:
        _mark_unfinished(merged, result.status)
    result.notebook = merged
    return result
