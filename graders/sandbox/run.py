"""One sandboxed run's host-side resources: a private tmpfs tree, a cgroup, the process.

``with SandboxRun(limits) as run: run.add_file(...); run.start(argv, env); run.wait(t)``.
Per run it mounts a private, size-capped tmpfs tree under ``$TMPDIR/hw5sb-<pid>-*``
(mode 0711, private propagation) holding the scratch tmpfs (the kernel's cwd, owned by
the sandbox uid), a copy of the executor kit, generated ``/etc`` files, and read-only
"mirrors" of host paths the sandbox uid could not reach; creates a per-run cgroup
(memory + pids); starts ``setpriv ... bwrap ...`` with the child joining the cgroup and
setting RLIMITs; kills the whole cgroup at the time limit. Leaving the block kills
everything, removes the cgroup and unmounts the tree.

Rootless (the grader is not root, :mod:`graders.sandbox.rootless`): the tree is an
ordinary folder (mode 0700) and the scratch a folder in it, watched for size
(:mod:`graders.sandbox.quota`); there is no uid switch and no cgroup: ``bwrap`` maps this
uid to the sandbox uid in its own user namespace, the limits are RLIMITs, and the run is
killed, and known to be dead, through its pid namespace (:mod:`graders.sandbox.pidns`).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from graders.grading.kits import build_kit

from . import bwrap as bw
from . import pidns, rootless
from .cgroups import NAME_PREFIX, CgroupError, SandboxCgroup
from .errors import SandboxError, SandboxUnavailable
from .hostfs import CappedReader, check_rel_name, chown_tree, mount_tmpfs, reachable_by, remove_tree, run_command
from .limits import PID1_EXIT_WAIT_S, MiB, SandboxLimits
from .quota import ScratchWatch

RUN_PREFIX = NAME_PREFIX  # trees and cgroups share it: cgroups.run_owner reads both
ROOT_TMPFS_BYTES = 16 * MiB
#: The executor kit copied into every sandbox: it runs with nbformat and nbclient only.
KIT_FILES = ("__init__.py", "errors.py", "limits.py", "channel.py", "outputs.py", "execute_inside.py")
HOST_TOOLS = ("bwrap", "setpriv", "mount", "umount")
ROOTLESS_TOOLS = ("bwrap", "prlimit")


def require_host() -> None:
    """Raise :class:`SandboxUnavailable` unless this process can build a sandbox: the host
    tools, and either root (cgroups, tmpfs mounts) or, rootless, unprivileged user
    namespaces that bwrap can use."""
    for tool in ROOTLESS_TOOLS if rootless.is_rootless() else HOST_TOOLS:
        try:
            bw.find_tool(tool)
        except bw.BwrapError as exc:
            raise SandboxUnavailable(f"sandbox unavailable: {exc} (refusing to run notebooks unsandboxed)") from exc
    if rootless.is_rootless():
        problem = rootless.userns_problem(bw.find_tool("bwrap"))
        if problem:
            raise SandboxUnavailable(
                f"sandbox unavailable: not root, and {problem}. Run the grader as root, or "
                "allow unprivileged user namespaces (refusing to run notebooks unsandboxed)"
            )


class SandboxRun:
    """The host-side resources of one sandboxed run (context manager).

    ``with SandboxRun(limits) as run: run.add_file(...); run.start(cmd, env); run.wait()``.
    Leaving the block kills everything, removes the cgroup and unmounts the tree.
    """

    def __init__(self, limits: SandboxLimits, *, base_dir: str | None = None) -> None:
        self.limits = limits
        self.rootless = rootless.is_rootless()
        self.pid1: pidns.Pid1 | None = None  # rootless: the pid namespace's pid 1
        self.watch: ScratchWatch | None = None  # rootless: the scratch's size
        self.limit_exceeded = ""  # rootless: why the run was killed early (scratch size)
        self.base_dir = base_dir or os.environ.get("HW5_SANDBOX_BASE") or tempfile.gettempdir()
        self.root: str | None = None
        self.mounted = False
        self.cgroup: SandboxCgroup | None = None
        self.proc: subprocess.Popen | None = None
        self.readers: list[CappedReader] = []
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
    def __enter__(self) -> SandboxRun:
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def _setup(self) -> None:
        require_host()
        if self.rootless:
            self._setup_rootless()
            return
        lim = self.limits
        self.root = tempfile.mkdtemp(prefix=f"{RUN_PREFIX}{os.getpid()}-", dir=self.base_dir)
        mount_tmpfs(self.root, ROOT_TMPFS_BYTES, 0o711, extra="nosuid,nodev,noexec")
        self.mounted = True
        run_command(["mount", "--make-private", self.root])
        for d, mode in (("work", 0o755), ("kit", 0o755), ("etc", 0o755), ("mnt", 0o755)):
            os.mkdir(self.host(d), mode)
            os.chmod(self.host(d), mode)
        mount_tmpfs(self.host("work"), lim.scratch_mb * MiB, 0o700, lim.uid, lim.gid)
        self._build_kit()
        bw.write_etc(self.host("etc"), lim)
        _, prefixes = bw.python_inside()
        for host, inside in prefixes:
            self.python_binds.append(bw.Bind(self.mirror(host), inside))
        try:
            self.cgroup = SandboxCgroup(memory_bytes=lim.memory_bytes, pids_max=lim.pids, name=self.run_id).create()
        except CgroupError as exc:
            raise SandboxUnavailable(f"cgroup: {exc}") from exc

    def _setup_rootless(self) -> None:
        """The same tree as root's, as plain folders of this uid (nothing to mount)."""
        self.root = tempfile.mkdtemp(prefix=f"{RUN_PREFIX}{os.getpid()}-", dir=self.base_dir)
        for d, mode in (("work", 0o700), ("kit", 0o755), ("etc", 0o755), ("mnt", 0o755)):
            os.mkdir(self.host(d), mode)
        self._build_kit()
        bw.write_etc(self.host("etc"), self.limits)
        _, prefixes = bw.python_inside()
        for host, inside in prefixes:
            self.python_binds.append(bw.Bind(self.mirror(host), inside))

    def _build_kit(self) -> None:
        build_kit(Path(self.host("kit")), Path(__file__).resolve().parent.parent, files={"sandbox": KIT_FILES})

    def mirror(self, host_path: str | os.PathLike) -> str:
        """A host path the sandbox uid can reach with the content of ``host_path``:
        the path itself, or a read-only bind mount of it inside the private tree."""
        path = os.path.realpath(os.fspath(host_path))
        if not os.path.exists(path):
            raise SandboxError(f"bind source {host_path} does not exist")
        if self.rootless:  # bwrap binds as this uid: what it cannot read, it cannot bind
            mode = os.R_OK | (os.X_OK if os.path.isdir(path) else 0)
            if not os.access(path, mode):
                raise SandboxError(
                    f"{host_path} is not readable by uid {os.getuid()}: a "
                    "rootless grader can bind only what it can read"
                )
            return path
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
        run_command(["mount", "--bind", path, target])
        run_command(["mount", "-o", "remount,bind,ro,nosuid,nodev", target])
        if not reachable_by(target, self.limits.uid, self.limits.gid):
            raise SandboxError(
                f"{host_path} is not readable by uid {self.limits.uid} "
                "even when mirrored (its own permissions forbid it)"
            )
        return target

    def add_ro_bind(self, host_path: str | os.PathLike, inside: str) -> None:
        bw.check_inside_path(inside)
        self.extra_binds.append(bw.Bind(self.mirror(host_path), inside))

    def add_file(self, inside_name: str, data: bytes | None = None, *, source: str | os.PathLike | None = None) -> str:
        """Copy bytes or a host file/directory into the scratch as ``inside_name``."""
        check_rel_name(inside_name)
        dest = self.host("work", inside_name)
        parent = os.path.dirname(dest)
        os.makedirs(parent, mode=0o755, exist_ok=True)
        top = self.host("work")
        cur = parent
        while cur != top and cur.startswith(top) and not self.rootless:
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
            raise SandboxError(
                f"cannot copy {inside_name} into the scratch ({self.limits.scratch_mb} MiB): {exc}"
            ) from exc
        if not self.rootless:  # rootless: this uid is the sandbox uid inside already
            chown_tree(dest, self.limits.uid, self.limits.gid)
        return f"{bw.INSIDE_WORK}/{inside_name}"

    # -- process ---------------------------------------------------------------------
    def _preexec(self):
        procs_files = self.cgroup.procs_files() if self.cgroup is not None else []
        lim = self.limits
        rlimits = [
            (resource.RLIMIT_CORE, (0, 0)),
            (resource.RLIMIT_NOFILE, (lim.nofile, lim.nofile)),
            (resource.RLIMIT_FSIZE, (lim.fsize_bytes, lim.fsize_bytes)),
        ]
        if self.rootless:  # no memory cgroup: every process is capped instead
            n = rootless.address_space_bytes(lim)
            rlimits.append((resource.RLIMIT_AS, (n, n)))
        elif lim.address_space_mb is not None:
            n = lim.address_space_mb * MiB
            rlimits.append((resource.RLIMIT_AS, (n, n)))

        def preexec() -> None:  # runs in the child between fork and exec
            for f in procs_files:
                fd = os.open(f, os.O_WRONLY)
                try:
                    os.write(fd, b"0")
                finally:
                    os.close(fd)
            for res, value in rlimits:
                resource.setrlimit(res, value)

        return preexec

    def command(
        self, inside_argv: list[str], env: Mapping[str, str], info_fd: int | None = None, block_fd: int | None = None
    ) -> list[str]:
        spec = bw.SandboxSpec(
            limits=self.limits,
            work_dir=self.host("work"),
            kit_dir=self.host("kit"),
            etc_dir=self.host("etc"),
            command=list(inside_argv),
            python_binds=self.python_binds,
            extra_binds=self.extra_binds,
            env=dict(env),
            info_fd=info_fd,
            block_fd=block_fd,
        )
        return bw.build_command(spec)

    def set_background(self, background: bool) -> bool:
        """Run in the background (the least CPU weight: a core only while the running jobs
        leave one idle) or in front. A run started ahead of its job waits in the
        background; nothing changes rootless (no cgroup). Whether the weight was set."""
        return self.cgroup is not None and self.cgroup.set_background(background)

    def start(self, inside_argv: list[str], env: Mapping[str, str], pass_fds: tuple[int, ...] = ()) -> None:
        """Start the sandbox; ``pass_fds`` are kept open in it at the same numbers."""
        if self.proc is not None:
            raise SandboxError("a SandboxRun runs one command")
        info_read = info_write = block_read = block_write = None
        if self.rootless:  # bwrap reports its pid 1, then waits until we hold it
            info_read, info_write = os.pipe()
            block_read, block_write = os.pipe()
            pass_fds = tuple(pass_fds) + (info_write, block_read)
        argv = self.command(inside_argv, env, info_write, block_read)
        self.started_at = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                close_fds=True,
                pass_fds=pass_fds,
                start_new_session=True,
                cwd="/",
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
                preexec_fn=self._preexec(),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            for fd in (info_read, block_write):
                if fd is not None:
                    os.close(fd)
            raise SandboxUnavailable(f"cannot start the sandbox: {exc}") from exc
        finally:
            for fd in (info_write, block_read):  # bwrap holds these ends alone
                if fd is not None:
                    os.close(fd)
        if info_read is not None and block_write is not None:
            try:
                self.pid1 = pidns.hold_pid1(info_read, block_write, self.proc.pid)
            except SandboxError:
                self.proc.kill()  # before it may run: it still waits on the block fd
                self.proc.wait()
                os.close(block_write)
                raise
            self.watch = ScratchWatch(self.host("work"), self.limits.scratch_mb * MiB, self._scratch_full)
            self.watch.start()
        for stream in (self.proc.stdout, self.proc.stderr):
            r = CappedReader(stream, self.limits.max_log_bytes)
            r.start()
            self.readers.append(r)

    def _scratch_full(self) -> None:
        """Rootless: the scratch went over its size (called by the watch thread)."""
        self.limit_exceeded = self.watch.exceeded if self.watch else "scratch over its size"
        if self.pid1 is not None:
            self.pid1.kill()

    def wait(self, timeout: float, since: float | None = None) -> int | None:
        """Wait for the sandbox; ``timeout`` s after its start (or after ``since``, a
        ``time.monotonic()``: a process that waited for its input) kill everything in the
        cgroup (or, rootless, the pid namespace). Returns the exit status (``None`` if it
        had to be killed)."""
        assert self.proc is not None and self.started_at is not None
        remaining = max(0.0, (since or self.started_at) + timeout - time.monotonic())
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
        if self.rootless:  # bwrap has exited: its namespace is empty, or made so now
            self._kill()
            if self.pid1 is not None:
                self.pid1.wait_exited(PID1_EXIT_WAIT_S)
            if self.watch is not None:
                self.watch.stop()
        for r in self.readers:
            r.join(timeout=5)
        return rc

    def processes_left(self) -> bool:
        """Whether any process of the run may still be alive (True when that cannot be
        proved: the caller then refuses to read what the run wrote)."""
        if self.cgroup is not None:
            return bool(self.cgroup.pids())
        if not self.rootless or self.proc is None:
            return self.proc is not None
        if self.proc.poll() is None or self.pid1 is None:
            return True
        return not self.pid1.exited()

    def _kill(self) -> None:
        if self.cgroup is not None:
            try:
                self.cgroup.kill_all()
            except CgroupError:
                pass
        if self.pid1 is not None and self.proc is not None:
            # the namespace's pid 1 first: the outer bwrap then exits once it is reaped
            self.pid1.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
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
        if self.watch is not None:
            self.watch.stop()
        if self.pid1 is not None:
            self.pid1.close()
        if self.root is not None and self.rootless:
            try:
                remove_tree(self.root)
            except OSError as exc:
                errors.append(f"remove {self.root}: {exc}")
        elif self.root is not None:
            if self.mounted:
                proc = subprocess.run(["umount", "-R", self.root], capture_output=True, text=True, timeout=60)
                if proc.returncode != 0:
                    lazy = subprocess.run(["umount", "-R", "-l", self.root], capture_output=True, text=True, timeout=60)
                    if lazy.returncode != 0:
                        errors.append(f"umount {self.root}: {proc.stderr.strip()}")
                if not any(
                    self.root == line.split()[1]
                    for line in Path("/proc/mounts").read_text().splitlines()
                    if len(line.split()) > 1
                ):
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
