"""End-to-end tests of the notebook sandbox (graders/sandbox): real bwrap, cgroups,
tmpfs mounts, tiny plain-Python notebooks. Needs root and bubblewrap
(``apt-get install -y bubblewrap``); skipped otherwise.

After every test: no ``hw5sb-*`` cgroup and no ``hw5sb-*`` mount is left.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

if shutil.which("bwrap") is None:
    pytest.skip("bubblewrap (bwrap) is not installed: apt-get install -y bubblewrap", allow_module_level=True)
if os.geteuid() != 0:
    pytest.skip("the sandbox needs root (cgroups, tmpfs mounts)", allow_module_level=True)

import nbformat  # noqa: E402

from graders.sandbox import SandboxLimits, execute_notebook, require_sandbox  # noqa: E402
from graders.sandbox.cgroups import leftover_cgroups  # noqa: E402
from graders.sandbox.stale import leftover_mounts  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

#: small and quick: tests must not depend on the production sizes
LIMITS = SandboxLimits(
    memory_mb=512,
    pids=96,
    tmp_mb=16,
    shm_mb=8,
    scratch_mb=16,
    cell_timeout_s=4,
    notebook_timeout_s=60,
    max_output_bytes=4 * 1024 * 1024,
    max_cell_output_bytes=512 * 1024,
)


def make_nb(*sources: str):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


def text_of(cell) -> str:
    parts = []
    for o in cell.outputs:
        if o.output_type == "stream":
            parts.append(o.text)
        elif o.output_type == "error":
            parts.append(f"{o.ename}: {o.evalue}")
        elif "data" in o:
            parts.append(str(o.data.get("text/plain", "")))
    return "".join(parts)


def errors_of(cell) -> list[str]:
    return [o.ename for o in cell.outputs if o.output_type == "error"]


#: a sleep argument unique to this pytest process (others may run these tests at once)
SLEEP_ARG = f"1000.{os.getpid()}"


def sleepers() -> list[int]:
    found = []
    want = [b"sleep", SLEEP_ARG.encode(), b""]
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                argv = (d / "cmdline").read_bytes().split(b"\0")
                if [os.path.basename(argv[0])] + argv[1:] == want:
                    found.append(int(d.name))
            except OSError:
                pass
    return found


@pytest.fixture(autouse=True)
def no_leftovers():
    yield
    assert leftover_cgroups(owner_pid=os.getpid()) == []
    assert leftover_mounts(owner_pid=os.getpid()) == []


@pytest.fixture(scope="module", autouse=True)
def sandbox_ready():
    report = require_sandbox(LIMITS)
    assert report.ok, report.summary()


def run(nb, limits=LIMITS, **kw):
    return execute_notebook(nb, limits=limits, **kw)


# ---------------------------------------------------------------------------------
def test_self_test_passes():
    report = require_sandbox(LIMITS, refresh=True)
    assert report.ok, report.summary()
    names = {n for n, _, _ in report.checks}
    assert {"uid unprivileged", "CapEff empty", "DNS fails", "read-only /probe"} <= names


def test_cgroup_limits_kill_and_removal():
    import subprocess

    from graders.sandbox.cgroups import SandboxCgroup

    with SandboxCgroup(memory_bytes=64 << 20, pids_max=20) as cg:
        files = cg.procs_files()

        def join():
            for f in files:
                with open(f, "w") as fh:
                    fh.write("0")

        p = subprocess.Popen(
            ["sh", "-c", f"sleep {SLEEP_ARG} & sleep {SLEEP_ARG} & wait"], preexec_fn=join, start_new_session=True
        )
        deadline = time.monotonic() + 5
        while len(cg.pids()) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(cg.pids()) == 3
        assert cg.read_limit("pids") == "20" and int(cg.read_limit("memory")) == 64 << 20
        cg.kill_all()
        assert cg.pids() == set()
        assert p.wait(timeout=5) == -9
    assert sleepers() == [] and leftover_cgroups(owner_pid=os.getpid()) == []


def test_ok_notebook_returns_outputs(tmp_path):
    nb = make_nb(
        "import os\nprint(os.getuid(), os.getcwd(), os.environ['NBGRADER_EXECUTION'])",
        "x = 21\nx * 2",
        "print(open('helper.txt').read().strip(), open('/data/d.txt').read().strip())",
        "import sys; print('kit' in ' '.join(sys.path), os.environ.get('HW5_X'))",
    )
    # forged outputs in the submission never survive
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="FORGED")]
    (tmp_path / "helper.txt").write_text("support-file\n")
    data = tmp_path / "d.txt"
    data.write_text("bound-data\n")
    res = run(
        nb,
        support_files={"helper.txt": tmp_path / "helper.txt"},
        ro_binds=[(data, "/data/d.txt")],
        env={"HW5_X": "extra"},
    )
    assert res.status == "ok", (res.detail, res.stderr)
    cells = res.notebook.cells
    assert text_of(cells[0]).split() == ["65534", "/home/student/work", "autograde"]
    assert text_of(cells[1]) == "42" and "FORGED" not in str(cells[1].outputs)
    assert text_of(cells[2]).split() == ["support-file", "bound-data"]
    # the kit of execute_inside is not on the kernel's path; caller env arrives
    assert text_of(cells[3]).split() == ["False", "extra"]
    assert [c.execution_count for c in cells] == [1, 2, 3, 4]
    assert res.peak_memory_bytes and res.wall_s > 0


def test_a_shown_plot_reaches_the_executed_notebook():
    """The student's plots must survive grading, so that the feedback shows them."""
    res = run(
        make_nb(
            "import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0])\nplt.show()",
            "import matplotlib\nprint(matplotlib.get_backend())",
        ),
        limits=replace(LIMITS, cell_timeout_s=30),
    )
    assert res.status == "ok", (res.detail, res.stderr)
    pngs = [o.data["image/png"] for o in res.notebook.cells[0].outputs if "image/png" in o.get("data", {})]
    assert len(pngs) == 1 and pngs[0].startswith("iVBORw0KGgo")  # base64 of the PNG signature
    assert "inline" in text_of(res.notebook.cells[1])


def test_host_secrets_unreadable(tmp_path):
    secret = tmp_path / "sentinel.txt"
    secret.write_text("TOP SECRET")
    secret.chmod(0o644)
    tmp_path.chmod(0o755)
    paths = [
        str(secret),
        str(REPO / "graders" / "reference.py"),
        str(REPO / "source"),
        str(REPO / "gradebook.db"),
        str(REPO),
        "/etc/shadow",
        "/root/.bashrc",
    ]
    probe = "\n".join(
        [
            "import os",
            f"for p in {paths!r}:",
            "    try:",
            "        print(p, 'READ', open(p).read()[:20] if os.path.isfile(p) else os.listdir(p))",
            "    except OSError as e:",
            "        print(p, 'DENIED', type(e).__name__)",
            "print(sorted(os.listdir('/')))",
        ]
    )
    res = run(make_nb(probe))
    assert res.status == "ok", res.detail
    out = text_of(res.notebook.cells[0])
    assert "READ" not in out and "TOP SECRET" not in out
    assert out.count("DENIED") == len(paths)
    assert "'work'" not in out


def test_writes_outside_scratch_fail():
    probe = "\n".join(
        [
            "import os",
            "for p in ['/x', '/usr/x', '/etc/x', '/home/student/x', '/sandbox/kit/x', '/dev/x',",
            "          '/opt/hw5/venv/x', os.__file__]:",
            "    try:",
            "        open(p, 'a').write('x'); print(p, 'WROTE')",
            "    except OSError as e:",
            "        print(p, 'DENIED')",
            "open('ok.txt', 'w').write('fine'); print('scratch ok')",
        ]
    )
    res = run(make_nb(probe))
    out = text_of(res.notebook.cells[0])
    assert res.status == "ok", res.detail
    assert "WROTE" not in out and out.count("DENIED") == 8 and "scratch ok" in out


def test_network_to_host_fails():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        res = run(
            make_nb(
                "import socket\ns = socket.socket(); s.settimeout(3)\n"
                f"try:\n    s.connect(('127.0.0.1', {port})); print('CONNECTED')\n"
                "except OSError as e:\n    print('refused', type(e).__name__)\n"
                "try:\n    socket.getaddrinfo('pypi.org', 443); print('RESOLVED')\n"
                "except OSError:\n    print('no dns')"
            )
        )
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()
    out = text_of(res.notebook.cells[0])
    assert res.status == "ok" and "CONNECTED" not in out and "RESOLVED" not in out
    assert "refused" in out and "no dns" in out


def test_os_exit_is_kernel_died_and_keeps_earlier_outputs():
    res = run(make_nb("print('before')", "import os; os._exit(1)", "print('after')"))
    assert res.status == "kernel_died", (res.status, res.detail)
    cells = res.notebook.cells
    assert text_of(cells[0]) == "before\n"
    assert "after" not in text_of(cells[2]) and errors_of(cells[2]) == ["CellNotExecuted"]


def test_infinite_loop_hits_cell_timeout():
    lim = replace(LIMITS, cell_timeout_s=2)
    res = run(make_nb("print('a')", "while True:\n    pass", "print('c')"), limits=lim)
    assert res.status == "timeout", (res.status, res.detail)
    assert res.cell_timeouts == [1]
    cells = res.notebook.cells
    assert "CellTimeoutError" in errors_of(cells[1])
    assert text_of(cells[0]) == "a\n" and text_of(cells[2]) == "c\n"  # the run went on


@pytest.mark.slow
def test_sigint_ignored_hits_notebook_timeout_and_is_killed():
    lim = replace(LIMITS, cell_timeout_s=2, notebook_timeout_s=12)
    t0 = time.monotonic()
    res = run(
        make_nb(
            "print('first')",
            "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
            "print('never')",
        ),
        limits=lim,
    )
    assert time.monotonic() - t0 < 12 + 15
    assert res.status == "timeout" and "wall time" in res.detail, res.detail
    cells = res.notebook.cells
    assert text_of(cells[0]) == "first\n"
    assert "never" not in text_of(cells[2])
    assert "CellNotExecuted" in errors_of(cells[2])


@pytest.mark.slow
def test_fork_bomb_is_bounded():
    lim = replace(LIMITS, pids=48, cell_timeout_s=3, notebook_timeout_s=20)
    t0 = time.monotonic()
    res = run(
        make_nb(
            "print('start')", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
        ),
        limits=lim,
    )
    assert time.monotonic() - t0 < 20 + 15
    assert res.status in ("timeout", "kernel_died", "crashed"), res.status
    assert os.getloadavg()[0] < 100


def test_memory_hog_is_oom():
    lim = replace(LIMITS, memory_mb=256)
    res = run(make_nb("print('ok')", "x = b'a' * (1024 ** 3)\nprint(len(x))"), limits=lim)
    assert res.status == "oom", (res.status, res.detail)
    assert res.oom_kills >= 1
    assert text_of(res.notebook.cells[0]) == "ok\n"


def test_disk_fill_stops_at_cap():
    fill = (
        "import errno\n"
        "def fill(path):\n"
        "    n = 0\n"
        "    try:\n"
        "        with open(path, 'wb') as f:\n"
        "            for _ in range(256):\n"
        "                f.write(b'x' * 1024 * 1024); f.flush(); n += 1\n"
        "    except OSError as e:\n"
        "        return n, errno.errorcode[e.errno]\n"
        "    return n, 'no error'\n"
        "for p in ['big.bin', '/tmp/big.bin', '/dev/shm/big.bin']:\n"
        "    print(p, *fill(p))\n"
    )
    res = run(make_nb(fill))
    assert res.status == "ok", res.detail
    lines = text_of(res.notebook.cells[0]).splitlines()
    caps = {"big.bin": LIMITS.scratch_mb, "/tmp/big.bin": LIMITS.tmp_mb, "/dev/shm/big.bin": LIMITS.shm_mb}
    for line in lines:
        path, n, err = line.split()
        assert err == "ENOSPC" and int(n) <= caps[path], line


def test_huge_output_is_capped():
    res = run(make_nb("print('small')", "for _ in range(64):\n    print('y' * 100_000)", "print('after')"))
    assert res.status == "output_too_large", (res.status, res.detail)
    cells = res.notebook.cells
    assert text_of(cells[0]) == "small\n" and text_of(cells[2]) == "after\n"
    assert "OutputTooLarge" in errors_of(cells[1])
    assert len(nbformat.writes(res.notebook)) < LIMITS.max_output_bytes


def test_background_process_is_killed():
    assert sleepers() == []
    res = run(
        make_nb(
            f"import subprocess\np = subprocess.Popen(['sleep', '{SLEEP_ARG}'], start_new_session=True)\nprint(p.pid)"
        )
    )
    assert res.status == "ok", res.detail
    assert sleepers() == []


def test_killing_the_parent_does_not_reach_the_host():
    me = os.getpid()
    res = run(
        make_nb("print('x')", "import os, signal\nos.kill(os.getppid(), 9)\nos.kill(1, 9)\nimport time; time.sleep(5)")
    )
    assert os.getpid() == me  # we are still here
    assert res.status in ("crashed", "kernel_died"), (res.status, res.detail)
    if res.notebook is not None:
        assert text_of(res.notebook.cells[0]) == "x\n"


#: A process the kernel leaves behind that keeps "fixing" every file it can write where an
#: executor could keep its results (until this change, ``/sandbox/out/executed.ipynb``).
_FORGER = """
import glob, json, os, time
if os.fork() == 0:
    os.setsid()
    while True:
        for path in glob.glob('/sandbox/out/*') + glob.glob('/sandbox/out/.*'):
            try:
                nb = json.load(open(path))
                for cell in nb['cells']:
                    cell['outputs'] = [o for o in cell.get('outputs', []) if o['output_type'] != 'error']
                with open(path + '.f', 'w') as fh:
                    json.dump(nb, fh)
                os.replace(path + '.f', path)
            except Exception:
                pass
        for folder in ('/sandbox/out', '.', '/tmp', os.environ['HOME']):
            for name in ('executed.ipynb', 'status.json'):
                try:
                    with open(os.path.join(folder, name), 'w') as fh:
                        json.dump({'status': 'ok', 'cells': []}, fh)
                except OSError:
                    pass
        time.sleep(0.001)
"""


def test_files_the_kernel_forges_are_not_results():
    res = run(make_nb(_FORGER, "raise AssertionError('the real verdict')", "print('last')"))
    assert res.status == "ok", (res.status, res.detail)
    assert errors_of(res.notebook.cells[1]) == ["AssertionError"]
    assert text_of(res.notebook.cells[2]) == "last\n"


_REACH_THE_CHANNEL = """
import glob, os
executor = os.getppid()
argv = open(f'/proc/{executor}/cmdline', 'rb').read().split(b'\\0')
fd = int(argv[argv.index(b'--result-fd') + 1])
got = []
for path in [f'/proc/{executor}/fd/{fd}'] + glob.glob('/proc/[0-9]*/fd/*'):
    if path.startswith(f'/proc/{os.getpid()}/'):
        continue  # the kernel's own pipes: its stdout and stderr
    try:
        if path != f'/proc/{executor}/fd/{fd}' and not os.readlink(path).startswith('pipe:'):
            continue
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        got.append(path)
    except OSError:
        pass
try:
    os.listdir(f'/proc/{executor}/fd')
    got.append('listed the executor fds')
except OSError:
    pass
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
pidfd = libc.syscall(434, executor, 0)  # pidfd_open
if pidfd >= 0 and libc.syscall(438, pidfd, fd, 0) >= 0:  # pidfd_getfd: a copy of the write end
    got.append('pidfd_getfd')
print('GOT', got)
"""


def test_the_kernel_cannot_reach_the_result_channel():
    """Neither through /proc nor with pidfd_getfd (which worked before the executor made
    itself non-dumpable) does the kernel get a write end of the executor's result pipe."""
    res = run(make_nb(_REACH_THE_CHANNEL))
    assert res.status == "ok", (res.status, res.detail)
    assert text_of(res.notebook.cells[0]) == "GOT []\n", text_of(res.notebook.cells[0])


def test_cells_that_ran_before_the_executor_was_killed_keep_their_outputs():
    res = run(
        make_nb("print('x')", "raise AssertionError('failed')", "import os\nos.kill(os.getppid(), 9)", "print('never')")
    )
    assert res.status == "crashed", (res.status, res.detail)
    assert text_of(res.notebook.cells[0]) == "x\n"
    assert errors_of(res.notebook.cells[1]) == ["AssertionError"]
    assert errors_of(res.notebook.cells[3]) == ["CellNotExecuted"]


@pytest.mark.parametrize(
    "hide",
    [
        "get_ipython().set_custom_exc((Exception,), lambda *args, **kwargs: None)",
        "get_ipython().showtraceback = lambda *args, **kwargs: None",
        "import sys\nsys.excepthook = lambda *args: None\n"
        "get_ipython().showtraceback = lambda *a, **k: sys.excepthook(*sys.exc_info())",
    ],
    ids=["set_custom_exc", "showtraceback", "excepthook"],
)
def test_an_exception_the_kernel_hides_is_still_an_error(hide):
    res = run(make_nb(hide, "assert 1 == 2, 'wrong'", "print('after')"))
    assert res.status == "ok", (res.status, res.detail)
    assert errors_of(res.notebook.cells[1]) == ["HiddenError"]
    assert "AssertionError" in text_of(res.notebook.cells[1])
    assert text_of(res.notebook.cells[2]) == "after\n"


def test_invalid_input_is_a_status(tmp_path):
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json")
    assert run(bad).status == "invalid_input"
    link = tmp_path / "link.ipynb"
    link.symlink_to(REPO / "pyproject.toml")
    res = run(link)
    assert res.status == "invalid_input" and "symbolic link" in res.detail.lower()


def test_orchestrator_death_kills_sandbox_and_stale_cleanup():
    import subprocess

    from graders.sandbox.stale import cleanup_stale

    code = (
        "import os, sys, time\n"
        "from graders.sandbox import SandboxLimits, bwrap as bw\n"
        "from graders.sandbox.run import SandboxRun\n"
        "lim = SandboxLimits()\n"
        "run = SandboxRun(lim).__enter__()\n"
        f"run.start(['/bin/sleep', '{SLEEP_ARG}'], bw.base_env(lim, '/usr/bin'))\n"
        "print(run.root, flush=True)\n"
        "time.sleep(1000)\n"
    )
    p = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        root = p.stdout.readline().strip()
        deadline = time.monotonic() + 10
        while not sleepers() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sleepers(), "the sandboxed sleep did not start"
    finally:
        p.kill()  # the orchestrator dies without any cleanup
        p.wait()
        p.stdout.close()
    deadline = time.monotonic() + 10
    while sleepers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sleepers() == []  # --die-with-parent took the sandbox down
    # the tree and the cgroup are left behind (unless a concurrent cleanup got them)
    if any(m.startswith(root) for m in leftover_mounts(owner_pid=p.pid)):
        assert root in cleanup_stale()
    cleanup_stale()
    assert leftover_mounts(owner_pid=p.pid) == [] and leftover_cgroups(owner_pid=p.pid) == []


@pytest.mark.slow
def test_tensorflow_runs_with_default_limits():
    res = execute_notebook(
        make_nb(
            "import os\nimport tensorflow as tf\nprint(tf.reduce_sum(tf.ones(3)).numpy())\n"
            "print('threads', len(os.listdir('/proc/self/task')))"
        ),
        limits=SandboxLimits(),
    )
    assert res.status == "ok", (res.status, res.detail, res.stderr[-2000:])
    out = text_of(res.notebook.cells[0])
    assert "3.0" in out.splitlines(), out  # TensorFlow's absl may print its start-up lines first
    threads = int(out.split("threads")[1])
    assert threads < SandboxLimits().pids // 4, out
    print(
        f"TF smoke: wall {res.wall_s:.1f} s, peak {res.peak_memory_bytes / 2**20:.0f} MiB, "
        f"{threads} threads in the kernel"
    )
