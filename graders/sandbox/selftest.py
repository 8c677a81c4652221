"""Prove the sandbox holds before grading anything (fail closed).

:func:`self_test` runs a probe inside the real sandbox (same command builder, cgroup,
RLIMITs and mounts as a notebook run) and checks, from both sides:

* the probe runs as the unprivileged uid with no capabilities and no_new_privs, and
  cannot create user namespaces;
* no network: a TCP port the host listens on (127.0.0.1 and the host's own address)
  cannot be reached, names do not resolve, only ``lo`` exists;
* ``/``, ``/usr``, ``/etc``, the kit and the python prefixes are read-only; only the
  scratch, ``/tmp`` and ``/dev/shm`` are writable, with the configured sizes;
* sentinel paths (the repository, ``source/``, ``gradebook.db``, the reference
  solutions, ``/etc/shadow``, ``/root``, a fresh host file, plus the caller's) are
  absent or unreadable;
* a separate pid namespace; RLIMITs applied; the cgroup limits applied and charged.

Rootless (:mod:`graders.sandbox.rootless`) the same probe runs, as this uid mapped to the
sandbox uid; in place of the cgroup checks it checks the RLIMITs that stand in for them
(RLIMIT_NPROC inside the namespace, RLIMIT_AS), that the scratch is watched, and that
nothing of the run is left once it ended. The report's ``mode`` says which limits hold.

:func:`require_sandbox` raises :class:`SandboxUnavailable` when anything is missing or
any check fails. Nothing in this package falls back to running code unsandboxed.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import bwrap as bw
from . import rootless
from .errors import SandboxError, SandboxUnavailable
from .limits import MiB, SandboxLimits
from .run import SandboxRun, require_host
from .stale import cleanup_stale

REPO_ROOT = Path(bw.REPO_ROOT)

_PROBE = r"""
import ctypes, json, os, resource, socket, sys
cfg = json.loads(sys.argv[1])
r = {"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "egid": os.getegid(),
     "groups": os.getgroups(), "cwd": os.getcwd()}
st = {}
with open("/proc/self/status") as fh:
    for line in fh:
        k, _, v = line.partition(":")
        if k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs"):
            st[k] = v.strip()
r["proc_status"] = st
def connect(host, port):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.settimeout(3)
    try:
        s.connect((host, port))
        return "connected"
    except OSError as e:
        return "%s: %s" % (type(e).__name__, e)
    finally:
        s.close()
r["connect"] = {"%s:%d" % (h, p): connect(h, p) for h, p in cfg["connect"]}
try:
    socket.getaddrinfo(cfg["dns_name"], 443)
    r["dns"] = "resolved"
except OSError as e:
    r["dns"] = "%s: %s" % (type(e).__name__, e)
r["interfaces"] = sorted(n for _, n in socket.if_nameindex())
def write(p):
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.unlink(p)
        return "written"
    except OSError as e:
        return "%s: %s" % (type(e).__name__, e.strerror)
r["writes"] = {p: write(p) for p in cfg["must_fail"] + cfg["must_work"]}
def read(p):
    if not os.path.lexists(p):
        return "absent"
    try:
        if os.path.isdir(p):
            os.listdir(p)
        else:
            with open(p, "rb") as fh:
                fh.read(1)
        return "readable"
    except OSError as e:
        return "unreadable: %s" % e.strerror
r["sentinels"] = {p: read(p) for p in cfg["sentinels"]}
libc = ctypes.CDLL(None, use_errno=True)
rc = libc.unshare(0x10000000)  # CLONE_NEWUSER
r["unshare_user"] = "allowed" if rc == 0 else "denied errno %d" % ctypes.get_errno()
r["pids"] = sorted(int(x) for x in os.listdir("/proc") if x.isdigit())
r["rlimits"] = {n: list(resource.getrlimit(getattr(resource, n)))
                for n in ("RLIMIT_CORE", "RLIMIT_NOFILE", "RLIMIT_FSIZE", "RLIMIT_AS",
                          "RLIMIT_NPROC")}
def size(p):
    s = os.statvfs(p)
    return s.f_blocks * s.f_frsize
r["fs_bytes"] = {p: size(p) for p in cfg["fs"]}
# The result channel, sealed as execute_inside seals it: can another process of this
# uid open the pipe's write end through /proc?
_, wr = os.pipe()
if libc.prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE
    r["channel"] = "prctl failed: errno %d" % ctypes.get_errno()
else:
    import subprocess
    opener = ("import os, sys\ntry:\n    os.open(sys.argv[1], os.O_WRONLY)\n    print('opened')\n"
              "except OSError as e:\n    print('denied: ' + e.strerror)")
    child = subprocess.run([sys.executable, "-I", "-c", opener, "/proc/%d/fd/%d" % (os.getpid(), wr)],
                           capture_output=True, text=True, timeout=30)
    r["channel"] = child.stdout.strip() or ("no answer: " + child.stderr[-300:])
print("PROBE-RESULT " + json.dumps(r))
"""


@dataclass
class SelfTestReport:
    """Outcome of :func:`self_test`: ``ok`` iff every check passed."""

    ok: bool
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    wall_s: float = 0.0
    probe: dict = field(default_factory=dict)
    stderr: str = ""
    mode: str = ""  # how the sandbox runs, and which limits are in force

    @property
    def failures(self) -> list[str]:
        return [f"{name}: {detail}" for name, good, detail in self.checks if not good]

    def summary(self) -> str:
        mode = f"\n  mode: {self.mode}" if self.mode else ""
        if self.ok:
            return f"sandbox self-test passed ({len(self.checks)} checks, {self.wall_s:.1f} s){mode}"
        return "sandbox self-test FAILED:\n  " + "\n  ".join(self.failures) + mode


def default_sentinels() -> list[str]:
    """Host paths the sandbox must never see (the ones that exist or may later)."""
    root = REPO_ROOT
    paths = []
    if (root / "pyproject.toml").is_file() and (root / "graders").is_dir():  # a checkout
        paths += [
            str(root),
            str(root / "source"),
            str(root / "gradebook.db"),
            str(root / "graders" / "authoring" / "reference.py"),
            str(root / "graders"),
            str(root / "submitted"),
            str(root / "autograded"),
            str(root / "release"),
        ]
    paths += [
        "/etc/shadow",
        "/etc/gshadow",
        "/root/.ssh",
        "/root/.bashrc",
        "/root/.profile",
        "/root/.cache",
        "/root/.pyenv/shims",
        "/work",
        "/var/lib",
        "/run/docker.sock",
        "/var/run/docker.sock",
        "/sys/fs/cgroup",
    ]
    # the grading user's own secrets (rootless, the student runs as that very uid)
    home = os.path.expanduser("~")
    if home not in ("", "/"):
        paths += [os.path.join(home, name) for name in (".ssh", ".cache", ".bash_history")]
    extra = os.environ.get("HW5_SANDBOX_SENTINELS", "")
    paths += [p for p in extra.split(os.pathsep) if p]
    return list(dict.fromkeys(paths))


def _host_addresses() -> list[str]:
    addrs = []
    try:  # the address used for outbound traffic (no packet is sent)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.connect(("192.0.2.1", 9))
            addrs.append(s.getsockname()[0])
        finally:
            s.close()
    except OSError:
        pass
    return [a for a in addrs if a and not a.startswith("127.")]


def self_test(limits: SandboxLimits | None = None, sentinels: Iterable[str] | None = None) -> SelfTestReport:
    """Run the probe inside a real sandbox and check every property (never raises for
    a failed property: see :func:`require_sandbox`)."""

    limits = limits or SandboxLimits()
    report = SelfTestReport(ok=False)
    t0 = time.monotonic()
    is_rootless = rootless.is_rootless()

    def check(name: str, good: bool, detail: str = "") -> None:
        report.checks.append((name, bool(good), detail))

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", 0))
    listener.listen(16)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    host_file_dir = tempfile.mkdtemp(prefix="hw5-sentinel-")
    host_file = os.path.join(host_file_dir, "secret.txt")
    with open(host_file, "w") as fh:
        fh.write("host secret\n")
    os.chmod(host_file, 0o644)
    os.chmod(host_file_dir, 0o755)
    exe, prefixes = bw.python_inside()
    cfg = {
        "connect": [["127.0.0.1", port]] + [[a, port] for a in _host_addresses()],
        "dns_name": "pypi.org",
        "must_fail": [
            "/probe",
            "/usr/probe",
            "/etc/probe",
            "/home/probe",
            "/home/student/probe",
            "/sandbox/probe",
            f"{bw.INSIDE_KIT}/probe",
            "/dev/probe",
        ]
        + [f"{inside}/probe" for _, inside in prefixes],
        "must_work": ["/tmp/probe", "/dev/shm/probe", f"{bw.INSIDE_WORK}/probe", f"{bw.INSIDE_HOME}/probe"],
        "sentinels": list(sentinels if sentinels is not None else default_sentinels()) + [host_file, host_file_dir],
        "fs": ["/tmp", "/dev/shm", bw.INSIDE_WORK],
    }
    try:
        with SandboxRun(limits) as run:
            cg = run.cgroup
            if is_rootless:
                report.mode = rootless.describe(limits)
            else:
                report.mode = (
                    f"root: setpriv to uid {limits.uid}, cgroup {cg.version if cg else '?'} "
                    f"memory {limits.memory_mb} MiB + pids {limits.pids}, "
                    f"tmpfs scratch {limits.scratch_mb} MiB"
                )
                check(
                    "cgroup memory limit",
                    cg is not None and int(cg.read_limit("memory")) == limits.memory_bytes,
                    cg.read_limit("memory") if cg else "no cgroup",
                )
                check(
                    "cgroup pids limit",
                    cg is not None and cg.read_limit("pids") == str(limits.pids),
                    cg.read_limit("pids") if cg else "no cgroup",
                )
            env = bw.base_env(limits, os.path.dirname(exe))
            run.start([exe, "-P", "-I", "-c", _PROBE, json.dumps(cfg)], env)
            if is_rootless:
                check(
                    "scratch size watched",
                    run.watch is not None and run.watch.is_alive(),
                    "watching" if run.watch is not None else "no watch thread",
                )
            rc = run.wait(min(60, limits.notebook_timeout_s))
            if is_rootless:
                check(
                    "nothing of the run left alive",
                    not run.processes_left(),
                    f"pid 1 of the namespace: {run.pid1.pid if run.pid1 else None}",
                )
            else:
                peak = cg.peak_memory_bytes() if cg else None
                check("probe charged to the cgroup", bool(peak), f"peak {peak}")
            report.stderr = run.stderr_text()
            out = run.stdout_text()
            check("probe exit status", rc == 0, f"rc={rc} stderr={report.stderr[-500:]!r}")
            try:
                accepted, _ = listener.accept()
                accepted.close()
                check("host port not reached", False, "the host listener accepted a connection")
            except BlockingIOError:
                check("host port not reached", True, f"port {port}")
    except SandboxError as exc:
        check("sandbox starts", False, str(exc))
        out = ""
    finally:
        listener.close()
        try:
            os.unlink(host_file)
            os.rmdir(host_file_dir)
        except OSError:
            pass

    probe = {}
    for line in out.splitlines():
        if line.startswith("PROBE-RESULT "):
            try:
                probe = json.loads(line[len("PROBE-RESULT ") :])
            except ValueError:
                probe = {}
    report.probe = probe
    if not probe:
        check("probe result", False, "no probe result came back")
    else:
        _judge(probe, cfg, limits, check, is_rootless)
    report.wall_s = time.monotonic() - t0
    report.ok = all(good for _, good, _ in report.checks)
    return report


def _judge(p: dict, cfg: dict, limits: SandboxLimits, check, is_rootless: bool = False) -> None:
    check(
        "uid unprivileged", p.get("uid") == p.get("euid") == limits.uid != 0, f"uid={p.get('uid')} euid={p.get('euid')}"
    )
    check(
        "gid unprivileged",
        p.get("gid") == p.get("egid") == limits.gid != 0 and 0 not in p.get("groups", [0]),
        f"gid={p.get('gid')} groups={p.get('groups')}",
    )
    st = p.get("proc_status", {})
    for cap in ("CapEff", "CapPrm", "CapAmb", "CapBnd", "CapInh"):
        try:
            val = int(st.get(cap, "x"), 16)
        except ValueError:
            val = -1
        check(f"{cap} empty", val == 0, st.get(cap, "missing"))
    check("no_new_privs", st.get("NoNewPrivs") == "1", st.get("NoNewPrivs", "missing"))
    for target, outcome in p.get("connect", {}).items():
        check(f"no connect to host {target}", outcome != "connected", outcome)
    check("connect probes ran", len(p.get("connect", {})) == len(cfg["connect"]), "")
    check("DNS fails", p.get("dns") != "resolved", str(p.get("dns")))
    check("only loopback interface", p.get("interfaces") == ["lo"], str(p.get("interfaces")))
    writes = p.get("writes", {})
    for path in cfg["must_fail"]:
        check(f"read-only {path}", writes.get(path, "written") != "written", writes.get(path, ""))
    for path in cfg["must_work"]:
        check(f"writable {path}", writes.get(path) == "written", writes.get(path, ""))
    sent = p.get("sentinels", {})
    for path in cfg["sentinels"]:
        outcome = sent.get(path, "readable")
        check(f"sentinel hidden {path}", outcome != "readable", outcome)
    check("no nested user namespaces", str(p.get("unshare_user", "allowed")) != "allowed", str(p.get("unshare_user")))
    pids = p.get("pids", [])
    check("own pid namespace", 0 < len(pids) <= 4 and max(pids) < 100, str(pids))
    rl = p.get("rlimits", {})
    check("RLIMIT_CORE 0", rl.get("RLIMIT_CORE") == [0, 0], str(rl.get("RLIMIT_CORE")))
    check("RLIMIT_NOFILE", rl.get("RLIMIT_NOFILE") == [limits.nofile, limits.nofile], str(rl.get("RLIMIT_NOFILE")))
    check("RLIMIT_FSIZE", rl.get("RLIMIT_FSIZE") == [limits.fsize_bytes] * 2, str(rl.get("RLIMIT_FSIZE")))
    if is_rootless:  # the rlimits that stand in for the cgroup
        check("RLIMIT_AS", rl.get("RLIMIT_AS") == [rootless.address_space_bytes(limits)] * 2, str(rl.get("RLIMIT_AS")))
        check("RLIMIT_NPROC", rl.get("RLIMIT_NPROC") == [limits.pids] * 2, str(rl.get("RLIMIT_NPROC")))
    elif limits.address_space_mb is not None:
        check("RLIMIT_AS", rl.get("RLIMIT_AS") == [limits.address_space_mb * MiB] * 2, str(rl.get("RLIMIT_AS")))
    fs = p.get("fs_bytes", {})
    sized = [("/tmp", limits.tmp_mb * MiB), ("/dev/shm", limits.shm_mb * MiB)]
    if not is_rootless:  # rootless, the scratch is a watched host folder, not a tmpfs
        sized.append((bw.INSIDE_WORK, limits.scratch_mb * MiB))
    for path, want in sized:
        got = fs.get(path, -1)
        check(f"size of {path}", 0 < got <= want + MiB, f"{got} (limit {want})")
    channel = str(p.get("channel", "missing"))
    check("result channel out of the student's reach", channel.startswith("denied"), channel)


_CACHE: dict[tuple, SelfTestReport] = {}
_LOCK = threading.Lock()


def require_sandbox(
    limits: SandboxLimits | None = None, sentinels: Iterable[str] | None = None, *, refresh: bool = False
) -> SelfTestReport:
    """Raise :class:`SandboxUnavailable` unless the sandbox demonstrably holds.

    Passing reports are cached per process (per limits and sentinels); failures are not.
    """
    limits = limits or SandboxLimits()
    sentinel_list = tuple(sentinels) if sentinels is not None else None
    key = (limits, sentinel_list)
    with _LOCK:
        if not refresh and key in _CACHE:
            return _CACHE[key]
        require_host()
        from .cgroups import detect_version

        if not rootless.is_rootless() and detect_version() is None:
            raise SandboxUnavailable(
                "sandbox unavailable: no cgroup memory+pids controllers under "
                "/sys/fs/cgroup (refusing to run notebooks unsandboxed)"
            )
        cleanup_stale()  # trees and cgroups of orchestrators that died mid-run
        report = self_test(limits, sentinel_list)
        if not report.ok:
            raise SandboxUnavailable("sandbox unavailable (refusing to run notebooks unsandboxed): " + report.summary())
        _CACHE[key] = report
        return report
