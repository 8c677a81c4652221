"""Build the ``setpriv ... bwrap ...`` command line of one sandboxed run.

Shape (see shared/design/security.md, "What works here"): the host drops to an
unprivileged uid with ``setpriv`` (no capabilities, empty bounding set, no_new_privs)
and only then starts ``bwrap --unshare-all``, so the sandbox holds no capability over
anything of the host's. Only an allow-list of host paths is bound, read-only, at the
same paths; the scratch and output directories are bound read-write; ``/tmp``,
``/dev/shm`` and ``/run`` are fresh sized tmpfs; ``/`` is remounted read-only.

Rootless (the grader is not root; :mod:`graders.sandbox.rootless`) the same bwrap runs
without ``setpriv``: its own user namespace maps the grader's uid to the sandbox uid
(``--uid``/``--gid``), ``--cap-drop ALL``, ``--info-fd``/``--block-fd`` hand its pid 1 to
the host before the command starts, and ``prlimit`` sets RLIMIT_NPROC inside.

Every host path handed to :func:`build_command` must already be reachable by the
unprivileged uid (bwrap resolves bind sources after dropping privileges); the runner
mirrors unreachable ones (for example the pyenv base under ``/root``) first.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from .errors import SandboxError
from .limits import MiB, SandboxLimits
from .rootless import inside_prefix

# fixed paths inside the sandbox
INSIDE_WORK = "/home/student/work"  # per-run scratch tmpfs, the kernel's cwd
INSIDE_KIT = "/sandbox/kit"  # a copy of graders/sandbox (PYTHONPATH of execute_inside only)
INSIDE_HOME = "/tmp/home"  # HOME and every cache / config dir (inside the /tmp tmpfs)
RUN_TMPFS_BYTES = 1 * MiB

#: the checkout this package runs from (never visible inside)
REPO_ROOT = PurePosixPath(os.path.realpath(__file__)).parents[2]

#: top-level host entries that are bound (or re-created as symlinks) read-only
SYSTEM_TOP = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")

#: host /etc entries bound read-only when present (passwd, group, hosts and
#: nsswitch.conf are generated instead: the sandbox never sees the host's user list)
ETC_ALLOW = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "alternatives",
    "mime.types",
    "fonts",
)
ETC_GENERATED = ("passwd", "group", "hosts", "nsswitch.conf")

#: inside paths a caller's bind may not cover or sit under
_RESERVED_INSIDE = (
    "/proc",
    "/dev",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/etc",
    "/run",
    "/sandbox/kit",
    INSIDE_HOME,
)

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class BwrapError(SandboxError):
    """bwrap/setpriv missing or unusable, or a bad bind/env request."""


@dataclass(frozen=True)
class Bind:
    """A bind mount: ``source`` (host path reachable by the sandbox uid) -> ``dest``."""

    source: str
    dest: str
    writable: bool = False


@dataclass
class SandboxSpec:
    """Everything :func:`build_command` needs for one run."""

    limits: SandboxLimits
    work_dir: str  # host side of INSIDE_WORK (the scratch tmpfs)
    kit_dir: str  # host side of INSIDE_KIT
    etc_dir: str  # host dir holding the generated passwd/group/hosts/nsswitch.conf
    command: list[str]  # argv run inside
    python_binds: list[Bind] = field(default_factory=list)  # sys.prefix, sys.base_prefix
    extra_binds: list[Bind] = field(default_factory=list)  # the caller's read-only binds
    env: dict[str, str] = field(default_factory=dict)  # the complete inside environment
    chdir: str = INSIDE_WORK
    info_fd: int | None = None  # rootless mode: bwrap's --info-fd (None: root mode)
    block_fd: int | None = None  # rootless mode: bwrap's --block-fd


def find_tool(name: str) -> str:
    path = shutil.which(name, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if not path:
        hint = " (apt-get install -y bubblewrap)" if name == "bwrap" else ""
        raise BwrapError(f"{name} not found{hint}")
    return path


@functools.cache
def bwrap_version(bwrap: str) -> tuple[int, ...]:
    try:
        out = subprocess.run([bwrap, "--version"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise BwrapError(f"cannot run {bwrap} --version: {exc}") from exc
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    if not m:
        raise BwrapError(f"unrecognised bwrap version: {out!r}")
    return tuple(int(x) for x in m.groups() if x is not None)


def check_inside_path(dest: str) -> str:
    """Validate a caller-chosen inside path: absolute, normalised, not reserved."""
    if not isinstance(dest, str) or not dest.startswith("/"):
        raise BwrapError(f"inside path must be absolute: {dest!r}")
    p = PurePosixPath(dest)
    if ".." in p.parts or str(p) != dest.rstrip("/") or dest == "/":
        raise BwrapError(f"inside path must be normalised and not '/': {dest!r}")
    for r in _RESERVED_INSIDE + (INSIDE_WORK,):
        if dest == r or (r != INSIDE_WORK and dest.startswith(r + "/")):
            raise BwrapError(f"inside path {dest!r} is reserved")
        if r.startswith(dest + "/"):
            raise BwrapError(f"inside path {dest!r} would cover reserved {r!r}")
    return dest


def check_env(env: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in env.items():
        if not isinstance(k, str) or not _ENV_NAME.match(k):
            raise BwrapError(f"bad environment variable name {k!r}")
        if not isinstance(v, str) or "\0" in v:
            raise BwrapError(f"bad value for environment variable {k}")
        out[k] = v
    return out


def base_env(limits: SandboxLimits, python_bin_dir: str) -> dict[str, str]:
    """The fixed part of the inside environment (the caller's extras go on top)."""
    h = INSIDE_HOME
    env = {
        "PATH": f"{python_bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": h,
        "USER": "student",
        "LOGNAME": "student",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": "/tmp",
        "SHELL": "/bin/sh",
        "XDG_CACHE_HOME": f"{h}/.cache",
        "XDG_CONFIG_HOME": f"{h}/.config",
        "XDG_DATA_HOME": f"{h}/.local/share",
        "XDG_RUNTIME_DIR": f"{h}/.runtime",
        "KERAS_HOME": f"{h}/.keras",
        "IPYTHONDIR": f"{h}/.ipython",
        "MPLCONFIGDIR": f"{h}/.config/matplotlib",
        # Jupyter's inline backend: plt.show() puts the student's plots into the graded
        # notebook and so into the feedback (agg would draw nothing)
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "JUPYTER_CONFIG_DIR": f"{h}/.jupyter",
        "JUPYTER_DATA_DIR": f"{h}/.local/share/jupyter",
        "JUPYTER_RUNTIME_DIR": f"{h}/.local/share/jupyter/runtime",
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "NBGRADER_EXECUTION": "autograde",
    }
    env.update(limits.thread_env())
    return env


def _system_args() -> list[str]:
    args: list[str] = []
    for top in SYSTEM_TOP:
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    return args


def _etc_args(etc_dir: str) -> list[str]:
    args: list[str] = ["--dir", "/etc"]
    for name in ETC_GENERATED:
        src = os.path.join(etc_dir, name)
        if not os.path.isfile(src):
            raise BwrapError(f"generated {src} missing")
        args += ["--ro-bind", src, f"/etc/{name}"]
    for name in ETC_ALLOW:
        host = f"/etc/{name}"
        if os.path.islink(host):
            args += ["--symlink", os.readlink(host), host]
        elif os.path.exists(host):
            args += ["--ro-bind", host, host]
    return args


def write_etc(etc_dir: str, limits: SandboxLimits) -> None:
    """Generate the sandbox's passwd/group/hosts/nsswitch.conf in ``etc_dir``."""
    files = {
        "passwd": (
            f"root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
            f"student:x:{limits.uid}:{limits.gid}:student:{INSIDE_HOME}:/bin/sh\n"
        ),
        "group": f"root:x:0:\nstudent:x:{limits.gid}:\n",
        "hosts": "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost\n",
        "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
    }
    os.makedirs(etc_dir, mode=0o755, exist_ok=True)
    for name, text in files.items():
        path = os.path.join(etc_dir, name)
        with open(path, "w") as fh:
            fh.write(text)
        os.chmod(path, 0o644)


def build_command(spec: SandboxSpec, *, bwrap: str | None = None, setpriv: str | None = None) -> list[str]:
    """The full argv for ``subprocess.Popen``: ``setpriv ... bwrap ... -- command`` as
    root; ``bwrap --uid ... --info-fd N ... -- prlimit ... command`` rootless
    (``spec.info_fd`` set; see :mod:`graders.sandbox.rootless`)."""
    lim = spec.limits
    bwrap = bwrap or find_tool("bwrap")
    if not spec.command:
        raise BwrapError("empty command")
    version = bwrap_version(bwrap)
    command = list(spec.command)

    if spec.info_fd is None:  # root: drop to the sandbox uid before bwrap starts
        setpriv = setpriv or find_tool("setpriv")
        argv = [
            setpriv,
            f"--reuid={lim.uid}",
            f"--regid={lim.gid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            bwrap,
            "--unshare-all",
            "--unshare-user",  # user, ipc, pid, net (own lo only), uts, cgroup
        ]
    else:  # rootless: bwrap's own user namespace maps this uid to the sandbox uid
        argv = [
            bwrap,
            "--unshare-all",
            "--unshare-user",
            "--uid",
            str(lim.uid),
            "--gid",
            str(lim.gid),
            "--cap-drop",
            "ALL",
            "--info-fd",
            str(spec.info_fd),  # the namespace's pid 1, for pidns
        ]
        if spec.block_fd is not None:  # wait until the grader holds that pid 1
            argv += ["--block-fd", str(spec.block_fd)]
        command = inside_prefix(lim, find_tool("prlimit")) + command
    if version >= (0, 8):
        argv += ["--disable-userns"]  # no nested user namespaces for the student
    argv += [
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "sandbox",
        "--clearenv",
    ]
    argv += _system_args()
    argv += _etc_args(spec.etc_dir)
    for b in spec.python_binds:
        argv += ["--ro-bind", b.source, b.dest]
    argv += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        str(lim.tmp_mb * MiB),
        "--tmpfs",
        "/tmp",
        "--size",
        str(lim.shm_mb * MiB),
        "--tmpfs",
        "/dev/shm",
        "--size",
        str(RUN_TMPFS_BYTES),
        "--tmpfs",
        "/run",
        "--dir",
        INSIDE_HOME,
        "--bind",
        spec.work_dir,
        INSIDE_WORK,
        "--ro-bind",
        spec.kit_dir,
        INSIDE_KIT,
    ]
    for b in spec.extra_binds:
        check_inside_path(b.dest)
        argv += ["--bind" if b.writable else "--ro-bind", b.source, b.dest]
    argv += [
        "--remount-ro",
        "/dev",  # bwrap's /dev tmpfs is otherwise writable and unsized
        "--remount-ro",
        "/",  # the sandbox root tmpfs: nothing writable outside the mounts
        "--chdir",
        spec.chdir,
    ]
    for k, v in check_env(spec.env).items():
        argv += ["--setenv", k, v]
    argv += ["--"] + command
    return argv


#: Where a virtualenv is bound inside. Never at its own path: a venv usually lives in
#: the checkout (``.venv``), and binding it there would make the repository's directory
#: (and so its name) appear inside; a venv under ``/tmp`` would be hidden by the sandbox's
#: own ``/tmp``.
REMAPPED_PYTHON = "/opt/sandbox-python"
_REPLACED_TOPS = ("/tmp", "/run", "/proc", "/dev", "/etc")


def _under(path: str, tops) -> bool:
    return any(path == t or path.startswith(t.rstrip("/") + "/") for t in tops)


def python_inside() -> tuple[str, list[tuple[str, str]]]:
    """The interpreter to run inside, and the (host, inside) binds of the prefixes it needs.

    A virtualenv prefix is bound under :data:`REMAPPED_PYTHON` (a venv finds its
    ``pyvenv.cfg`` next to the interpreter it is started as, so it works from there).
    A base installation must stay at its own path (the venv's ``python`` links to it), so
    one that lies in the repository or under a path the sandbox replaces is refused.
    """
    prefixes: list[str] = []
    for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        rp = os.path.realpath(p)
        if p not in prefixes:
            prefixes.append(p)
        if rp != p and rp not in prefixes:
            prefixes.append(rp)
    exe = sys.executable
    # the venv's python is a symlink into the base prefix: that must be bound as well
    real = os.path.realpath(exe)
    if not any(real == q or real.startswith(q.rstrip("/") + "/") for q in prefixes):
        raise BwrapError(f"{exe} resolves to {real}, outside {prefixes}")
    # drop prefixes nested in another one (one bind covers them)
    prefixes.sort(key=len)
    kept: list[str] = []
    for p in prefixes:
        if not any(p == k or p.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(p)
    bases = {os.path.realpath(q) for q in (sys.base_prefix, sys.base_exec_prefix)}
    repo = str(REPO_ROOT)
    result: list[tuple[str, str]] = []
    for p in kept:
        is_base = os.path.realpath(p) in bases
        if is_base and _under(p, SYSTEM_TOP):
            continue  # already bound with /usr
        inside = p
        if not is_base:
            inside = f"{REMAPPED_PYTHON}/{len(result)}"
        elif _under(p, _REPLACED_TOPS) or _under(p, (repo,)):
            raise BwrapError(
                f"base python prefix {p} lies where the sandbox cannot bind it "
                f"at its own path (under {repo} or {', '.join(_REPLACED_TOPS)}); "
                "use a Python installed elsewhere, or a virtualenv made from it"
            )
        result.append((p, inside))
    for host, inside in sorted(result, key=lambda pair: -len(pair[0])):
        if exe == host or exe.startswith(host.rstrip("/") + "/"):
            exe = inside + exe[len(host.rstrip("/")) :]
            break
    return exe, result
