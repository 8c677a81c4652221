"""A per-run cgroup: memory + pids limits, OOM report, kill-everything, removal.

Both layouts are handled, detected at run time:

* cgroup v1 (this project's Debian 12 image): one directory per controller,
  ``/sys/fs/cgroup/memory/<parent>/<name>``, ``/sys/fs/cgroup/pids/<parent>/<name>`` and,
  when mounted, ``/sys/fs/cgroup/freezer/<parent>/<name>`` (used to stop a fork bomb
  while it is being killed) and ``/sys/fs/cgroup/cpu/<parent>/<name>`` (a run started
  ahead of its job waits in the background: :meth:`SandboxCgroup.set_background`).
* cgroup v2 (unified): ``/sys/fs/cgroup/<parent>/<name>`` with ``memory.max``,
  ``pids.max``, ``cgroup.kill`` and, where the cpu controller is delegated, ``cpu.weight``.

``<parent>`` is the orchestrator's own cgroup in that hierarchy (so the sandbox stays
inside whatever limits the orchestrator itself runs under) unless
``HW5_SANDBOX_CGROUP_PARENT`` or the ``parent`` argument names another one.

Needs root (or a delegated subtree). Every failure raises :class:`CgroupError`; there
is no "run without limits" mode.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import signal
import time
from pathlib import Path

from .errors import SandboxError

CGROUP_ROOT = Path("/sys/fs/cgroup")
NAME_PREFIX = "hw5sb-"
V1_CONTROLLERS = ("memory", "pids")
V1_OPTIONAL = ("freezer", "cpu")
#: CPU weights (v1 ``cpu.shares``, v2 ``cpu.weight``) of a run in the background (started
#: ahead of its job: it gets a core only while the running jobs leave one idle) and in front.
BACKGROUND_WEIGHT = {"v1": ("cpu.shares", "2", "1024"), "v2": ("cpu.weight", "1", "100")}


class CgroupError(SandboxError):
    """The per-run cgroup could not be created, limited, emptied or removed."""


def detect_version(root: Path = CGROUP_ROOT) -> str | None:
    """``"v1"``, ``"v2"`` or ``None`` (no usable memory+pids controllers)."""
    root = Path(root)
    if (root / "memory" / "memory.limit_in_bytes").exists() and (root / "pids").is_dir():
        return "v1"
    controllers = root / "cgroup.controllers"
    if controllers.exists():
        try:
            names = controllers.read_text().split()
        except OSError:
            return None
        if "memory" in names and "pids" in names:
            return "v2"
    return None


def _own_cgroups() -> dict[str, str]:
    """Map controller name (``""`` for v2) to this process's cgroup path."""
    result: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            result[""] = path
        for c in controllers.split(","):
            if c:
                result[c] = path
    return result


def _read(path: Path) -> str:
    return path.read_text()


def _write(path: Path, value: str) -> None:
    # cgroup files want one write(2) of the whole value
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _keyed(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        text = path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_owner(name: str) -> int | None:
    """The orchestrator pid in a sandbox run's name ``hw5sb-<pid>-...``, found anywhere in
    ``name`` (a cgroup or mount path, or a ``/proc/<pid>/cgroup`` text); None if absent."""
    match = re.search(rf"{NAME_PREFIX}(\d+)-", name)
    return int(match.group(1)) if match else None


class SandboxCgroup:
    """One run's cgroup. Use as a context manager: on exit every process left in it is
    SIGKILLed and the directories are removed (even after an exception)."""

    def __init__(
        self,
        *,
        memory_bytes: int,
        pids_max: int,
        name: str | None = None,
        root: Path = CGROUP_ROOT,
        parent: str | None = None,
    ) -> None:
        self.root = Path(root)
        self.version = detect_version(self.root)
        if self.version is None:
            raise CgroupError(
                f"no usable cgroup memory+pids controllers under {self.root} "
                "(neither v1 memory/ + pids/ nor a v2 unified hierarchy with both)"
            )
        self.name = name or f"{NAME_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        if "/" in self.name or self.name in (".", ".."):
            raise CgroupError(f"bad cgroup name {self.name!r}")
        self.memory_bytes = int(memory_bytes)
        self.pids_max = int(pids_max)
        self._parent_override = parent if parent is not None else os.environ.get("HW5_SANDBOX_CGROUP_PARENT")
        self.dirs: dict[str, Path] = {}  # controller ("" for v2) -> directory
        self.created = False

    # -- layout -------------------------------------------------------------------
    def _parent_dir(self, controller: str) -> Path:
        base = self.root / controller if controller else self.root
        if self._parent_override is not None:
            rel = self._parent_override.strip("/")
        else:
            rel = _own_cgroups().get(controller, "/").strip("/")
        parent = (base / rel) if rel else base
        if ".." in Path(rel).parts:
            raise CgroupError(f"bad cgroup parent {rel!r}")
        return parent

    def parent_dirs(self) -> list[Path]:
        """Directories in which this kind of cgroup is created (for leftover checks)."""
        if self.version == "v2":
            return [self._parent_dir("")]
        out = [self._parent_dir(c) for c in V1_CONTROLLERS]
        out += [self._parent_dir(c) for c in V1_OPTIONAL if (self.root / c).is_dir()]
        return out

    # -- life cycle ---------------------------------------------------------------
    def create(self) -> SandboxCgroup:
        try:
            if self.version == "v1":
                self._create_v1()
            else:
                self._create_v2()
        except BaseException as exc:
            try:
                self.remove()
            except CgroupError:
                pass
            if isinstance(exc, OSError):
                raise CgroupError(f"cannot set up cgroup {self.name}: {exc}") from exc
            raise
        self.created = True
        return self

    def _mkdir(self, controller: str) -> Path:
        parent = self._parent_dir(controller)
        if not parent.is_dir():
            raise CgroupError(f"cgroup parent {parent} does not exist")
        d = parent / self.name
        d.mkdir(mode=0o755)
        self.dirs[controller] = d
        return d

    def _create_v1(self) -> None:
        mem = self._mkdir("memory")
        _write(mem / "memory.limit_in_bytes", str(self.memory_bytes))
        memsw = mem / "memory.memsw.limit_in_bytes"
        if memsw.exists():  # no swap escape where swap accounting is on
            try:
                _write(memsw, str(self.memory_bytes))
            except OSError:
                pass
        got = int(_read(mem / "memory.limit_in_bytes"))
        if got > self.memory_bytes:
            raise CgroupError(f"memory limit not applied ({got} > {self.memory_bytes})")
        pids = self._mkdir("pids")
        _write(pids / "pids.max", str(self.pids_max))
        if _read(pids / "pids.max").strip() != str(self.pids_max):
            raise CgroupError("pids.max not applied")
        for c in V1_OPTIONAL:
            if (self.root / c).is_dir():
                self._mkdir(c)

    def _create_v2(self) -> None:
        parent = self._parent_dir("")
        ctl = parent / "cgroup.subtree_control"
        enabled = set(_read(ctl).split()) if ctl.exists() else set()
        if "cpu" not in enabled and "cpu" in _read(parent / "cgroup.controllers").split():
            try:  # optional: without it a run started ahead is not put in the background
                _write(ctl, "+cpu")
            except OSError:
                pass
        missing = {"memory", "pids"} - enabled
        if missing:
            try:
                _write(ctl, " ".join(f"+{c}" for c in sorted(missing)))
            except OSError as exc:
                raise CgroupError(
                    f"cannot enable {sorted(missing)} in {ctl} ({exc}); run the grader in a "
                    "cgroup whose subtree has memory+pids delegated, or set "
                    "HW5_SANDBOX_CGROUP_PARENT to such a (process-free) cgroup"
                ) from exc
        d = self._mkdir("")
        _write(d / "memory.max", str(self.memory_bytes))
        if (d / "memory.swap.max").exists():
            try:
                _write(d / "memory.swap.max", "0")
            except OSError:
                pass
        _write(d / "pids.max", str(self.pids_max))

    def procs_files(self) -> list[str]:
        """The ``cgroup.procs`` files a new process must write ``0`` to, to join."""
        if not self.created:
            raise CgroupError("cgroup not created")
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for d in self.dirs.values():
            try:
                text = (d / "cgroup.procs").read_text()
            except FileNotFoundError:
                continue
            found.update(int(x) for x in text.split())
        return found

    def kill_all(self, timeout: float = 10.0) -> None:
        """SIGKILL every process in the cgroup and wait until it is empty."""
        if not self.dirs:
            return
        deadline = time.monotonic() + timeout
        if self.version == "v2" and (self.dirs[""] / "cgroup.kill").exists():
            try:
                _write(self.dirs[""] / "cgroup.kill", "1")
            except OSError:
                pass
        freezer = self.dirs.get("freezer")
        while True:
            pids = self.pids()
            if not pids:
                return
            frozen = False
            if freezer is not None:
                try:  # a frozen fork bomb cannot refill the slots we free
                    _write(freezer / "freezer.state", "FROZEN")
                    frozen = True
                    t_end = time.monotonic() + 1.0
                    while (freezer / "freezer.state").read_text().strip() != "FROZEN":
                        if time.monotonic() > t_end:
                            break
                        time.sleep(0.005)
                except OSError:
                    pass
                pids = self.pids()
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if frozen:
                try:
                    _write(freezer / "freezer.state", "THAWED")
                except OSError:
                    pass
            if time.monotonic() > deadline:
                left = self.pids()
                if left:
                    raise CgroupError(f"cgroup {self.name}: processes survive SIGKILL: {sorted(left)}")
                return
            time.sleep(0.02)

    def set_background(self, background: bool) -> bool:
        """Give the run the least CPU weight (``background``) or the usual one. A run in
        the background gets a core only while the others leave it idle. False where the
        cpu controller is not available (the weight is then the usual one throughout)."""
        knob, low, usual = BACKGROUND_WEIGHT[self.version]
        d = self.dirs.get("cpu" if self.version == "v1" else "")
        if d is None or not (d / knob).exists():
            return False
        try:
            _write(d / knob, low if background else usual)
        except OSError:
            return False
        return True

    # -- reports -------------------------------------------------------------------
    def oom_kills(self) -> int:
        if self.version == "v1":
            mem = self.dirs.get("memory")
            if mem is None:
                return 0
            ctl = _keyed(mem / "memory.oom_control")
            return ctl.get("oom_kill", 0) + ctl.get("under_oom", 0)
        d = self.dirs.get("")
        if d is None:
            return 0
        ev = _keyed(d / "memory.events")
        return ev.get("oom_kill", 0) + ev.get("oom_group_kill", 0)

    def peak_memory_bytes(self) -> int | None:
        if self.version == "v1" and "memory" in self.dirs:
            f = self.dirs["memory"] / "memory.max_usage_in_bytes"
        elif self.version == "v2" and "" in self.dirs:
            f = self.dirs[""] / "memory.peak"
        else:
            return None
        try:
            return int(_read(f))
        except (OSError, ValueError):
            return None

    def read_limit(self, what: str) -> str:
        """Read back an applied limit (``"memory"`` or ``"pids"``), for self-tests."""
        if self.version == "v1":
            f = {"memory": self.dirs["memory"] / "memory.limit_in_bytes", "pids": self.dirs["pids"] / "pids.max"}[what]
        else:
            f = self.dirs[""] / {"memory": "memory.max", "pids": "pids.max"}[what]
        return _read(f).strip()

    # -- removal -------------------------------------------------------------------
    def remove(self, timeout: float = 10.0) -> None:
        """Kill whatever is left and remove the directories. Raises if it cannot."""
        errors: list[str] = []
        try:
            self.kill_all(timeout=timeout)
        except CgroupError as exc:
            errors.append(str(exc))
        freezer = self.dirs.get("freezer")
        if freezer is not None:
            try:
                _write(freezer / "freezer.state", "THAWED")
            except OSError:
                pass
        for controller, d in list(self.dirs.items()):
            deadline = time.monotonic() + timeout
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno == errno.EBUSY and time.monotonic() < deadline:
                        try:
                            self.kill_all(timeout=1.0)
                        except CgroupError:
                            pass
                        time.sleep(0.05)
                        continue
                    errors.append(f"rmdir {d}: {exc}")
                    break
            if not d.exists():
                del self.dirs[controller]
        self.created = False
        if errors:
            raise CgroupError("; ".join(errors))

    def __enter__(self) -> SandboxCgroup:
        return self.create()

    def __exit__(self, *exc_info: object) -> None:
        self.remove()


def leftover_cgroups(root: Path = CGROUP_ROOT, owner_pid: int | None = None) -> list[Path]:
    """Every ``hw5sb-*`` cgroup directory under the default parents (for tests/ops);
    only those of orchestrator ``owner_pid`` if given."""
    try:
        probe = SandboxCgroup(memory_bytes=1, pids_max=1, name="probe", root=root)
    except CgroupError:
        return []
    found: list[Path] = []
    for parent in probe.parent_dirs():
        try:
            prefix = NAME_PREFIX if owner_pid is None else f"{NAME_PREFIX}{owner_pid}-"
            found += [p for p in parent.iterdir() if p.name.startswith(prefix) and p.is_dir()]
        except OSError:
            pass
    return sorted(found)


def cleanup_stale_cgroups(root: Path = CGROUP_ROOT) -> list[Path]:
    """Kill and remove ``hw5sb-<pid>-*`` cgroups whose orchestrator pid is gone."""
    removed: list[Path] = []
    for d in leftover_cgroups(root):
        owner = run_owner(d.name)
        if owner is None or owner == os.getpid() or pid_alive(owner):
            continue
        cg = SandboxCgroup(memory_bytes=1, pids_max=1, name=d.name, root=root)
        cg.dirs = {
            c: p
            for c, p in (
                [("", cg._parent_dir("") / d.name)]
                if cg.version == "v2"
                else [
                    (c, cg._parent_dir(c) / d.name)
                    for c in V1_CONTROLLERS + V1_OPTIONAL
                    if (cg._parent_dir(c) / d.name).is_dir()
                ]
            )
        }
        try:
            cg.remove(timeout=5.0)
            removed.append(d)
        except CgroupError:
            pass
    return removed
