"""The adversarial corpus of security.md, graded as ONE class batch (toy course, sandboxed).

Every case is a submission named by intent, with the exact points it must get per test
cell (``test_add``, ``test_add_more``), the grading status, and a phrase that must appear
in what was recorded: in the report's errors/flags, or (``where="notebook"``) in the
autograded notebook the student gets back. Two control students are graded in the same
batch; their grades prove that the rest of the class is unaffected.

How the cases are built, so that the points prove something:

* **Secrets, files, network**: the solution cell *tries* the forbidden thing and defines
  ``add`` correctly only if every attempt failed. Full marks = nothing was readable,
  writable or reachable; the host-side checks below confirm it independently.
* **Crashes and resources**: ``add`` works, except that ``add(2, 2)`` (the first call of
  the second test cell) crashes, hangs or hogs. ``test_add`` has already run, so the
  expected grade is (1, 0): zero for what failed, earlier cells keep their points.
* **Forged results** are graded with a *wrong* ``add``: a process left behind rewrites
  the files where the executed notebook once came back, or the kernel tries to take
  the executor's result pipe (``pidfd_getfd``, ``/proc/<pid>/fd``). Both get zero.
* **In-kernel cheats** are graded with a *wrong* ``add``; each case records what really
  happens (see :data:`OUTCOMES`): "stopped" (no points). The real homework's tampering
  corpus is tests/corpus/test_tampering_slow.py.

After the batch the host must be unchanged: the course's ``source/`` tree and a sentinel
file outside the course hash the same, nothing was written next to them or into the
grading virtualenv, the gradebook holds no manual score, the listening port on the host
saw no connection, and no sandbox process (uid 65534), mount or cgroup is left.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from host_state import orphaned_sandbox_leftovers, tree_hash
from toy_course import CORRECT, NOTEBOOK, TESTS, make_toy_course, points, released, report_of, submit

from graders.grading import batch

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root (cgroups, tmpfs mounts)"),
]

REPO = Path(__file__).resolve().parents[2]
WRONG = "def add(a, b):\n    return a - b\n"
SLEEP_ARG = f"1000.{os.getpid()}7"  # a background `sleep` unique to this run
VENV_PROBE = Path(sys.prefix) / f"hw5-escape-probe-{os.getpid()}.txt"


@dataclass(frozen=True)
class Case:
    """``how(ctx)`` -> keyword arguments of ``toy_course.submit``."""

    how: object
    points: tuple[int, int]
    phrase: str | tuple[str, ...] | None = None  # a tuple: any one of these
    where: str = "report"  # report: errors + flags; notebook: the autograded notebook
    status: str = "graded"
    outcome: str = ""  # in-kernel cheats: stopped | flagged | not stopped


@dataclass
class Context:
    root: Path
    sentinel: Path
    port: int
    extra: dict = field(default_factory=dict)


def _solution(code: str):
    return lambda ctx: dict(solution=code)


def _crash_in_second_test(body: str) -> str:
    """``add`` that is right, except that ``add(2, 2)`` (in ``test_add_more``) runs ``body``."""
    indented = "\n".join("        " + line for line in body.strip().splitlines())
    return f"def add(a, b):\n    if (a, b) == (2, 2):\n{indented}\n    return a + b\n"


def _only_if_all_failed(attempts: str) -> str:
    """A solution cell that runs ``attempts`` (which append what worked to ``GOT``) and
    defines ``add`` correctly only if ``GOT`` stayed empty."""
    return (
        "import os\nGOT = []\n" + attempts.strip() + "\n"
        "print('GOT', GOT)\n"
        "if GOT:\n    def add(a, b):\n        return a - b\n"
        "else:\n    def add(a, b):\n        return a + b\n"
    )


def _reads(paths_of) -> object:
    def how(ctx):
        paths = [str(p) for p in paths_of(ctx)]
        return dict(
            solution=_only_if_all_failed(
                f"for p in {paths!r}:\n"
                "    try:\n"
                "        if os.path.isdir(p):\n"
                "            GOT.append((p, os.listdir(p)))\n"
                "        else:\n"
                "            with open(p, 'rb') as f:\n"
                "                GOT.append((p, f.read(64)))\n"
                "    except OSError:\n"
                "        pass\n"
            )
        )

    return how


def _write_outside(ctx):
    targets = [
        ctx.sentinel,
        ctx.sentinel.parent / "escaped.txt",
        ctx.root / "escaped.txt",
        ctx.root / "source" / "toy" / "escaped.txt",
        VENV_PROBE,
        "/home/student/escaped.txt",
        "/escaped.txt",
        "/etc/escaped.txt",
    ]
    return dict(
        solution=_only_if_all_failed(
            f"for p in {[str(t) for t in targets]!r}:\n"
            "    try:\n"
            "        with open(p, 'a') as f:\n"
            "            f.write('ESCAPED')\n"
            "        GOT.append(p)\n"
            "    except OSError:\n"
            "        pass\n"
        )
    )


def _write_gradebook(ctx):
    gradebook = ctx.root / "gradebook.db"
    return dict(
        solution=_only_if_all_failed(
            "import sqlite3\n"
            "try:\n"
            f"    db = sqlite3.connect('file:{gradebook}?mode=rw', uri=True)\n"
            "    db.execute('UPDATE grade SET manual_score = 1000')\n"
            "    db.commit()\n"
            "    GOT.append('sqlite update')\n"
            "except Exception:\n"
            "    pass\n"
            "try:\n"
            f"    with open({str(gradebook)!r}, 'r+b') as f:\n"
            "        f.write(b'x')\n"
            "    GOT.append('raw write')\n"
            "except OSError:\n"
            "    pass\n"
        )
    )


def _network(ctx):
    return dict(
        solution=_only_if_all_failed(
            "import socket\n"
            f"for address in [('127.0.0.1', {ctx.port}), ('1.1.1.1', 53), ('8.8.8.8', 443)]:\n"
            "    s = socket.socket()\n"
            "    s.settimeout(3)\n"
            "    try:\n"
            "        s.connect(address)\n"
            "        GOT.append(address)\n"
            "    except OSError:\n"
            "        pass\n"
            "    finally:\n"
            "        s.close()\n"
            "for name in ['pypi.org', 'storage.googleapis.com', 'localhost.localdomain.example']:\n"
            "    try:\n"
            "        socket.getaddrinfo(name, 443)\n"
            "        GOT.append(name)\n"
            "    except OSError:\n"
            "        pass\n"
        )
    )


def _download(ctx):
    return dict(
        solution=_only_if_all_failed(
            "import urllib.request\n"
            "for url in ['https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz',\n"
            "            'http://yann.lecun.com/exdb/mnist/train-images-idx3-ubyte.gz']:\n"
            "    try:\n"
            "        urllib.request.urlopen(url, timeout=5).read(100)\n"
            "        GOT.append(url)\n"
            "    except Exception:\n"
            "        pass\n"
        )
    )


def _shadowing(ctx):
    return dict(
        solution=_only_if_all_failed(
            "import builtins, importlib\n"
            "for f in ['numpy.py', 'sitecustomize.py', 'usercustomize.py']:\n"
            "    if os.path.exists(f):\n"
            "        GOT.append(f)\n"
            "import numpy, helper\n"
            "for module in (numpy, helper, builtins):\n"
            "    if getattr(module, 'SHADOWED', False):\n"
            "        GOT.append(module.__name__)\n"
        ),
        extra_files={
            "numpy.py": "SHADOWED = True\n",
            "sitecustomize.py": "import builtins\nbuiltins.SHADOWED = True\n",
            "usercustomize.py": "import builtins\nbuiltins.SHADOWED = True\n",
            "helper.py": "SUPPORT_FILE_OK = True\nSHADOWED = True\n",
        },
    )


def _notebook(edit, solution=CORRECT):
    """A released notebook with ``solution`` and an ``edit(notebook)`` applied."""

    def how(ctx):
        notebook = released(ctx.root)
        for cell in notebook.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == "solution":
                cell.source = solution
        edit(notebook)
        return dict(notebook=notebook)

    return how


def _cell(notebook, grade_id):
    return next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _delete_tests(notebook):
    notebook.cells[:] = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in TESTS]


def _edit_tests(notebook):
    for test in TESTS:
        _cell(notebook, test).source = "pass"


def _edit_points(notebook):
    _cell(notebook, "test_add").metadata.nbgrader["points"] = 100
    _cell(notebook, "test_add_more").metadata.nbgrader["points"] = 100


def _edit_grade_id(notebook):
    _cell(notebook, "test_add").metadata.nbgrader["grade_id"] = "test_mine"


def _flip_grade_flag(notebook):
    _cell(notebook, "test_add_more").metadata.nbgrader["grade"] = False


def _duplicate(notebook):
    copy = nbformat.from_dict(json.loads(json.dumps(_cell(notebook, "test_add"))))
    copy["id"] = "pasted-copy"
    notebook.cells.insert(notebook.cells.index(_cell(notebook, "test_add")) + 1, copy)


def _empty_meta(notebook):
    notebook.cells.insert(2, nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": {}}))


def _to_markdown(notebook):
    test = _cell(notebook, "test_add")
    notebook.cells[notebook.cells.index(test)] = nbformat.v4.new_markdown_cell(test.source, metadata=test.metadata)


def _forge_outputs(notebook):
    for test in TESTS:
        cell = _cell(notebook, test)
        cell.execution_count = 7
        cell.outputs = [
            nbformat.v4.new_output("stream", name="stdout", text="all tests passed\n"),
            nbformat.v4.new_output("execute_result", data={"text/plain": "1"}, execution_count=7),
        ]


def _kernelspec(notebook):
    notebook.metadata["kernelspec"] = {"name": "evil-kernel", "display_name": "Evil", "language": "python"}
    notebook.metadata["language_info"] = {"name": "bash"}


def _append_cells(count):
    def edit(notebook):
        notebook.cells += [nbformat.v4.new_code_cell(f"print('student cell {i}')") for i in range(count)]

    return edit


def _json(value) -> bytes:
    return json.dumps(value).encode()


#: The toy course's own files (the ones a student might want), in the course under test.
def _course_files(ctx):
    return [ctx.root / "source", ctx.root / "source" / "toy" / NOTEBOOK, ctx.root / "release", ctx.root, ctx.sentinel]


CASES: dict[str, Case] = {
    # -- controls: the rest of the class -------------------------------------------------
    "control-correct": Case(_solution(CORRECT), (1, 1)),
    "control-wrong": Case(_solution(WRONG), (0, 0)),
    # -- structure -------------------------------------------------------------------------
    "invalid-json": Case(lambda ctx: dict(raw=b'{"cells": [ not json'), (0, 0), "is not valid JSON", status="failed"),
    "json-not-a-notebook": Case(
        lambda ctx: dict(raw=_json({"hello": "world"})), (0, 0), "not an nbformat 4 notebook", status="failed"
    ),
    "no-cells": Case(
        lambda ctx: dict(raw=_json({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})),
        (0, 0),
        "has no cells",
        status="failed",
    ),
    "deleted-test-cells": Case(_notebook(_delete_tests), (1, 1), "It was added back by nbgrader", where="notebook"),
    "edited-test-cells-wrong-code": Case(
        _notebook(_edit_tests, WRONG), (0, 0), "add(1, 2) should be 3", where="notebook"
    ),
    "edited-points": Case(_notebook(_edit_points), (1, 1)),
    "edited-grade-id": Case(_notebook(_edit_grade_id), (1, 1), "which the assignment does not have"),
    "test-cell-flipped-to-ungraded": Case(
        _notebook(_flip_grade_flag), (0, 0), "Inconsistent checksums", status="failed"
    ),
    "duplicate-grade-id": Case(_notebook(_duplicate), (1, 1), "repeats grade_id"),
    "empty-nbgrader-metadata": Case(_notebook(_empty_meta), (1, 1), "empty nbgrader metadata"),
    "test-cell-made-markdown": Case(_notebook(_to_markdown), (1, 1)),
    "forged-outputs-wrong-code": Case(_notebook(_forge_outputs, WRONG), (0, 0), "AssertionError", where="notebook"),
    "switched-kernelspec": Case(_notebook(_kernelspec), (1, 1)),
    "renamed-notebook": Case(
        lambda ctx: dict(solution=CORRECT, name="toy (1).ipynb"), (1, 1), "submitted as toy (1).ipynb"
    ),
    # -- secrets and files -------------------------------------------------------------------
    "read-course-source": Case(_reads(_course_files), (1, 1)),
    "read-gradebook": Case(_reads(lambda ctx: [ctx.root / "gradebook.db", ctx.root / ".grading"]), (1, 1)),
    "read-graders": Case(
        _reads(
            lambda ctx: [
                REPO / "graders" / "authoring" / "reference.py",
                REPO / "graders",
                REPO / "source",
                REPO / "gradebook.db",
                REPO,
            ]
        ),
        (1, 1),
    ),
    "read-other-students": Case(
        _reads(
            lambda ctx: [
                ctx.root / "submitted",
                ctx.root / "submitted" / "control-correct" / "toy" / NOTEBOOK,
                ctx.root / "autograded",
                ctx.root / ".grading" / "submitted" / "control-correct" / "toy" / NOTEBOOK,
            ]
        ),
        (1, 1),
    ),
    "write-gradebook": Case(_write_gradebook, (1, 1)),
    "write-outside-scratch": Case(_write_outside, (1, 1)),
    "library-shadowing-files": Case(_shadowing, (1, 1)),
    "network": Case(_network, (1, 1)),
    "download-mnist": Case(_download, (1, 1)),
    # -- crashes and resources (the crash is in test_add_more: test_add keeps its point) -----
    "os-exit": Case(_solution(_crash_in_second_test("import os\nos._exit(1)")), (1, 0), "kernel_died"),
    "segfault": Case(_solution(_crash_in_second_test("import ctypes\nctypes.string_at(0)")), (1, 0), "kernel_died"),
    "kill-the-parent": Case(
        _solution(_crash_in_second_test("import os, time\nos.kill(os.getppid(), 9)\ntime.sleep(5)")), (1, 0), "crashed"
    ),
    "infinite-loop": Case(_solution(_crash_in_second_test("while True:\n    pass")), (1, 0), "timeout"),
    # nbclient gives up on a cell that ignores the interrupt and goes on to the next one,
    # which waits behind the loop; cells appended by the student pile up to the notebook limit
    "sigint-ignored-loop": Case(
        _notebook(
            _append_cells(6),
            _crash_in_second_test("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"),
        ),
        (1, 0),
        "wall time",
    ),
    "input": Case(
        _solution(_crash_in_second_test("input('password? ')")), (1, 0), "StdinNotImplementedError", where="notebook"
    ),
    "fork-bomb": Case(
        _solution(
            _crash_in_second_test(
                "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
            )
        ),
        (1, 0),
        # the pids limit stops the forks and the cell times out, unless the forked copies
        # reach the memory limit first (2 of 6 fork bombs in one measured batch)
        ("timeout", "oom: out of memory"),
    ),
    "thread-bomb": Case(
        _solution(
            _crash_in_second_test(
                "import threading, time\nwhile True:\n"
                "    threading.Thread(target=time.sleep, args=(1000,), daemon=True).start()"
            )
        ),
        (1, 0),
        "can't start new thread",
        where="notebook",
    ),
    "memory-hog": Case(_solution(_crash_in_second_test("hog = b'x' * (6 * 1024 ** 3)")), (1, 0), "oom"),
    "disk-fill": Case(
        _solution(
            _crash_in_second_test(
                "import errno, os\n"
                "for path in ['big.bin', '/tmp/big.bin', '/dev/shm/big.bin']:\n"
                "    n = 0\n"
                "    try:\n"
                "        with open(path, 'wb') as f:\n"
                "            for _ in range(4096):\n"
                "                f.write(b'x' * 2 ** 20)\n"
                "                f.flush()\n"
                "                n += 1\n"
                "    except OSError as e:\n"
                "        print(path, n, 'MiB', errno.errorcode[e.errno])\n"
                "    if os.path.exists(path):\n"
                "        os.remove(path)"
            )
        ),
        (1, 1),
        "ENOSPC",
        where="notebook",
    ),
    "huge-output": Case(_solution(_crash_in_second_test("print('y' * 50_000_000)")), (1, 0), "output_too_large"),
    "background-process": Case(
        _solution(
            _crash_in_second_test(
                f"import subprocess\nsubprocess.Popen(['sleep', '{SLEEP_ARG}'], start_new_session=True)"
            )
        ),
        (1, 1),
    ),
    # -- forged results, all with a wrong add: the executed notebook once came back as a file --
    "forged-results-files": Case(
        _solution(
            WRONG
            + (
                "import glob, json, os, time\n"
                "if os.fork() == 0:\n"
                "    os.setsid()\n"
                "    while True:\n"
                "        for path in glob.glob('/sandbox/out/*'):\n"
                "            try:\n"
                "                nb = json.load(open(path))\n"
                "                for cell in nb['cells']:\n"
                "                    cell['outputs'] = [o for o in cell.get('outputs', []) if o['output_type'] != 'error']\n"
                "                json.dump(nb, open(path + '.f', 'w'))\n"
                "                os.replace(path + '.f', path)\n"
                "            except Exception:\n"
                "                pass\n"
                "        time.sleep(0.001)\n"
            )
        ),
        (0, 0),
    ),
    "stolen-result-channel": Case(
        _solution(
            WRONG
            + (
                "import ctypes, os, struct\n"
                "executor = os.getppid()\n"
                "argv = open(f'/proc/{executor}/cmdline', 'rb').read().split(bytes(1))\n"
                "fd = int(argv[argv.index(b'--result-fd') + 1]) if b'--result-fd' in argv else 3\n"
                "libc = ctypes.CDLL(None, use_errno=True)\n"
                "stolen = libc.syscall(438, libc.syscall(434, executor, 0), fd, 0)\n"
                "for path in [f'/proc/{executor}/fd/{fd}']:\n"
                "    try:\n"
                "        stolen = os.open(path, os.O_WRONLY)\n"
                "    except OSError:\n"
                "        pass\n"
                "if stolen >= 0:\n"
                '    body = b\'{"kind": "status", "status": "ok"}\'\n'
                "    os.write(stolen, struct.pack('>Q', len(body)) + body)\n"
                "print('stolen' if stolen >= 0 else 'the channel is out of reach')\n"
            )
        ),
        (0, 0),
        "the channel is out of reach",
        where="notebook",
    ),
    # -- honest --------------------------------------------------------------------------------
    "correct-with-stderr": Case(
        _solution("import sys\ndef add(a, b):\n    print('adding', a, b, file=sys.stderr)\n    return a + b\n"),
        (1, 1),
        "[stderr] adding",
        where="notebook",
    ),
    "slow-but-legitimate": Case(
        _solution(
            "import time\nstart, table = time.monotonic(), []\n"
            "while time.monotonic() - start < 5:\n    table.append(sum(range(10_000)))\n"
            "print(len(table), 'rounds of real work')\n" + CORRECT
        ),
        (1, 1),
        "rounds of real work",
        where="notebook",
    ),
    # -- in-kernel cheats, all with a wrong add ---------------------------------------------------
    "cell-rewriting-hook": Case(
        _solution(
            WRONG + "def _blank(lines):\n    return ['pass\\n'] if any('assert' in line for line in lines) else lines\n"
            "get_ipython().input_transformers_cleanup.append(_blank)\n"
        ),
        (0, 0),
        "suspected tampering",
        outcome="stopped",
    ),
    "assertion-error-redefined": Case(
        _solution(
            WRONG + "import builtins\nclass AssertionError(Exception):\n    pass\n"
            "builtins.AssertionError = AssertionError\n"
        ),
        (0, 0),
        "builtins",
        outcome="stopped",
    ),
    "exceptions-hidden": Case(
        _solution(WRONG + "get_ipython().set_custom_exc((Exception,), lambda *args, **kwargs: None)\n"),
        (0, 0),
        "HiddenError",
        where="notebook",
        outcome="stopped",
    ),
    "rigged-equality": Case(
        _solution(
            "class Anything:\n    def __eq__(self, other):\n        return True\n"
            "def add(a, b):\n    return Anything()\n"
        ),
        # the exporter cannot carry an Anything: not re-checked on it, so a person looks (issue 16)
        (0, 0),
        "needs a person",
        outcome="stopped",
    ),
}

#: Outcome of the in-kernel cheats, as recorded by this test (see the module docstring):
#: - assertion-error-redefined: STOPPED. ``assert`` raises the interpreter's own
#:   AssertionError whatever the name is bound to; the wrong add scores 0.
#: - exceptions-hidden: STOPPED. The kernel's execute reply still says the cell raised;
#:   the executor adds a HiddenError output where no traceback was shown.
#: - cell-rewriting-hook, rigged-equality: STOPPED. Inside the kernel the student controls
#:   what a test cell runs and shows, so the kernel's verdict passes; the out-of-kernel
#:   verifier re-runs each test cell on what the kernel exported (graders.verify) and fails
#:   it. The wrong add scores 0. The rewritten cell's disagreement is flagged as suspected
#:   tampering; the rigged-equality object is one the exporter cannot carry (an honest
#:   ``Fraction`` would be too), so it is not re-checked on it: "needs a person" (issue 16).
OUTCOMES = {name: case.outcome for name, case in CASES.items() if case.outcome}


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sleepers() -> list[str]:
    out = subprocess.run(["pgrep", "-f", f"sleep {SLEEP_ARG}"], capture_output=True, text=True).stdout.split()
    return out


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = make_toy_course(tmp_path_factory.mktemp("hostile") / "course")
    outside = tmp_path_factory.mktemp("outside")
    sentinel = outside / "sentinel.txt"
    sentinel.write_text("TOP SECRET: the sentinel outside the course\n")
    for path in (outside, sentinel):  # readable by anyone: only the sandbox may stop a read
        path.chmod(0o755 if path.is_dir() else 0o644)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    ctx = Context(root, sentinel, listener.getsockname()[1])
    for student, case in CASES.items():
        submit(root, student, **case.how(ctx))
    before = {
        "source": tree_hash(root / "source"),
        "sentinel": _file_hash(sentinel),
        "outside": sorted(p.name for p in outside.iterdir()),
        "leftovers": orphaned_sandbox_leftovers(),
    }
    report = root / "report.json"
    started = time.monotonic()
    try:
        code = batch.main(
            [
                "toy",
                "--course",
                str(root),
                "--workers",
                "2",
                "--cell-timeout",
                "10",
                "--notebook-timeout",
                "60",
                "--memory-mb",
                "1024",
                "--report",
                str(report),
            ]
        )
        seconds = time.monotonic() - started
        try:
            listener.accept()
            connected = True
        except BlockingIOError:
            connected = False
    finally:
        listener.close()
    yield dict(
        root=root,
        code=code,
        reports=report_of(report),
        before=before,
        outside=outside,
        sentinel=sentinel,
        connected=connected,
        seconds=seconds,
    )
    VENV_PROBE.unlink(missing_ok=True)  # only there if the sandbox let a write through


def _notebook_text(root: Path, student: str) -> str:
    path = root / "autograded" / student / "toy" / NOTEBOOK
    if not path.is_file():
        return ""
    parts = []
    for cell in nbformat.read(path, as_version=4).cells:
        parts.append(cell.source)
        for output in cell.get("outputs", []):
            parts.append(output.get("text", "") if output.get("output_type") == "stream" else "")
            parts.append(output.get("ename", "") + ": " + output.get("evalue", ""))
            parts.extend(output.get("traceback", []))
    return "\n".join(parts)


@pytest.mark.parametrize("student", CASES)
def test_each_case_gets_its_points_status_and_reason(graded, student):
    case, root = CASES[student], graded["root"]
    entry = graded["reports"][student]
    got = tuple(points(root, student).get(test, 0.0) for test in TESTS)
    recorded = " | ".join(entry["errors"] + entry["flags"])
    assert got == tuple(map(float, case.points)), f"{student}: points {got}; recorded: {recorded}"
    assert entry["status"] == case.status, recorded
    if case.status == "graded":
        assert entry["max_score"] == 2.0  # edited points never raise the maximum
    phrases = case.phrase if isinstance(case.phrase, tuple) else (case.phrase,)
    if case.phrase and case.where == "report":
        assert any(phrase in recorded for phrase in phrases), recorded
    if case.where == "notebook":
        text = _notebook_text(root, student)
        assert any(phrase in text for phrase in phrases), f"{student}: {case.phrase!r} not in the notebook"
    if case.phrase is None and case.points == (1, 1) and not case.outcome:
        assert entry["errors"] == [], entry["errors"]  # a good submission is not reported as broken


def test_what_the_probes_got_is_nothing(graded):
    """The secrets/network cases print what they obtained: it must be an empty list."""
    for student in (
        "read-course-source",
        "read-gradebook",
        "read-graders",
        "read-other-students",
        "write-gradebook",
        "write-outside-scratch",
        "library-shadowing-files",
        "network",
        "download-mnist",
    ):
        assert "GOT []" in _notebook_text(graded["root"], student), student


def test_in_kernel_cheats_are_recorded_honestly():
    assert OUTCOMES == {
        "cell-rewriting-hook": "stopped",
        "assertion-error-redefined": "stopped",
        "exceptions-hidden": "stopped",
        "rigged-equality": "stopped",
    }
    for name, outcome in OUTCOMES.items():
        assert (CASES[name].points == (0, 0)) == (outcome == "stopped")


def test_the_batch_went_on_and_counted_the_failures(graded):
    reports = graded["reports"]
    assert set(reports) == set(CASES)
    failed = sorted(s for s, entry in reports.items() if entry["status"] != "graded")
    assert failed == sorted(s for s, case in CASES.items() if case.status != "graded")
    assert graded["code"] == 1
    print(f"\n{len(CASES)} hostile submissions graded in {graded['seconds']:.0f} s")


def test_the_rest_of_the_class_is_unaffected(graded):
    root = graded["root"]
    assert points(root, "control-correct") == {"test_add": 1.0, "test_add_more": 1.0}
    assert points(root, "control-wrong") == {"test_add": 0.0, "test_add_more": 0.0}
    for student in ("control-correct", "control-wrong"):
        assert graded["reports"][student]["errors"] == graded["reports"][student]["flags"] == []


def test_the_host_is_unchanged(graded):
    root, before = graded["root"], graded["before"]
    assert tree_hash(root / "source") == before["source"]
    assert _file_hash(graded["sentinel"]) == before["sentinel"]
    assert sorted(p.name for p in graded["outside"].iterdir()) == before["outside"]
    assert not (root / "escaped.txt").exists() and not VENV_PROBE.exists()
    assert not graded["connected"], "a sandboxed kernel reached a port on the host"
    assert orphaned_sandbox_leftovers() - before["leftovers"] == set()
    assert _sleepers() == [], "the background process outlived its sandbox"


def test_no_submitted_file_reached_the_graded_folders(graded):
    """Only the allow-list (notebooks, timestamp) is staged; support files come from source."""
    root = graded["root"]
    for folder in (
        root / "autograded" / "library-shadowing-files" / "toy",
        root / ".grading" / "submitted" / "library-shadowing-files" / "toy",
    ):
        names = {p.name for p in folder.iterdir()}
        assert not names & {"numpy.py", "sitecustomize.py", "usercustomize.py"}, names
    helper = root / "autograded" / "library-shadowing-files" / "toy" / "helper.py"
    assert not helper.exists() or "SHADOWED" not in helper.read_text()


def test_the_gradebook_holds_no_forged_score(graded):
    from nbgrader.api import Gradebook

    from graders.course import course_db_url

    with Gradebook(course_db_url(graded["root"])) as gradebook:
        for student in CASES:
            try:
                submission = gradebook.find_submission("toy", student)
            except Exception:
                continue
            for notebook in submission.notebooks:
                assert all(grade.manual_score is None for grade in notebook.grades), student
