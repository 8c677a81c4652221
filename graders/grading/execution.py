"""A worker's job: execute one student's sanitized notebooks, then verify them.

:func:`execute_job` is a plain function of plain data (:class:`Job`: notebooks as JSON
text, paths, settings), so that it runs the same in a local process and on a Dask
worker; it never touches the gradebook. Each notebook runs in :mod:`graders.sandbox`
(or, with ``sandbox=False``, by the same rules unisolated, :mod:`graders.sandbox.plain`),
then :mod:`graders.grading.verifier_step` re-checks them all out of the kernel. The
notebooks run side by side, and the verifier starts with them: its warm-up (TensorFlow's
import) is hidden by the kernels' run, and it reads nothing of the submission before they end.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import queue
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import nbformat

from graders.grading.kits import CHECKS_INSIDE, DATA_INSIDE
from graders.grading.shipping import materialize
from graders.grading.verifier_step import EarlyVerifier, ToVerify, apply_verdicts


@dataclass
class Job:
    """One student's execution: sanitized notebooks and what the kernel may see."""

    student: str
    notebooks: dict[str, str]  # notebook file name -> sanitized notebook (JSON text)
    support_files: dict[str, str]  # file name -> host path (the source versions)
    checks_dir: str  # host dir holding graders/__init__.py and graders/checks/ (what the kernel may import)
    data_file: str | None  # host path of mnist.npz, or None (the loader's own fallback)
    env: dict[str, str] = field(default_factory=dict)  # e.g. HW5_GRADING_BUDGET, thread counts
    sandbox: bool = True
    limits: dict = field(default_factory=dict)  # SandboxLimits overrides
    # notebook file name -> {grade_id: export request} (graders.grading.verifier_step)
    export_requests: dict[str, dict] = field(default_factory=dict)
    verifier_kit_dir: str | None = None  # host dir holding graders/{checks,verify}
    keep_warm: bool = False  # start this worker's next sandboxes while this job runs (a batch: more jobs follow)


@dataclass
class NotebookRun:
    status: str  # "ok" or a sandbox status: timeout, oom, kernel_died, crashed, ...
    detail: str
    seconds: float
    executed: str | None  # executed notebook (JSON text), None if nothing came back
    flags: list[str] = field(default_factory=list)  # out-of-kernel verification: review these
    unverified: str | None = None  # why the verifier itself failed (ours, not the student's)
    warm: bool = False  # ran in a sandbox this worker readied ahead (Spares)
    cold_reason: str = ""  # when not warm: why no readied sandbox was used (Spares.take)


@dataclass
class JobResult:
    student: str
    runs: dict[str, NotebookRun]
    seconds: float
    host: str
    verify_seconds: float = 0.0  # of ``seconds``: the out-of-kernel verifier (all notebooks at once)


def execute_job(job: Job) -> JobResult:
    job = materialize(job)  # content references (a cluster worker) -> verified paths of this worker's cache
    started = time.monotonic()
    # Root's folder: the student's uid never had it; the verifier's uid reads it.
    artifacts = tempfile.mkdtemp(prefix="hw5-artifacts-")
    try:
        os.chmod(artifacts, 0o755)
        exports = {}
        for index, name in enumerate(job.notebooks):
            exports[name] = os.path.join(artifacts, str(index))
            os.mkdir(exports[name], 0o755)
        with _early_verifier(job, exports) as verifier:  # warms up while the notebooks run
            runs = _run_notebooks(job, exports)
            verify_seconds = _verify(runs, verifier)
    finally:
        shutil.rmtree(artifacts, ignore_errors=True)
    return JobResult(job.student, runs, time.monotonic() - started, os.uname().nodename, verify_seconds)


def _run_notebooks(job: Job, exports: dict[str, str]) -> dict[str, NotebookRun]:
    """Every notebook of the job, side by side, each in its own sandbox (HW5's written part
    runs in the shadow of the CNN part); a failure of ours in one is raised once all ended."""
    runner = _run_sandboxed if job.sandbox else _run_unsandboxed
    with ThreadPoolExecutor(max_workers=max(1, len(job.notebooks)), thread_name_prefix="hw5-notebook") as pool:
        futures = {name: pool.submit(runner, job, name, text, exports[name]) for name, text in job.notebooks.items()}
    return {name: future.result() for name, future in futures.items()}


def _early_verifier(job: Job, exports: dict[str, str]):
    """The submission's verifier, started now (it waits for the word go), or a stand-in
    when the job has none to verify."""
    wanted = {
        name: ToVerify(job.notebooks[name], job.export_requests[name], exports[name])
        for name in job.notebooks
        if job.export_requests.get(name)
    }
    if not job.verifier_kit_dir or not wanted:
        return contextlib.nullcontext(None)
    return EarlyVerifier(
        wanted,
        kit_dir=job.verifier_kit_dir,
        support_files=job.support_files,
        data_file=job.data_file,
        env=job.env,
        sandbox=job.sandbox,
        threads=int(job.limits.get("threads", 2)),
    )


def _verify(runs: dict[str, NotebookRun], verifier: EarlyVerifier | None) -> float:
    """Re-check every notebook's test cells out of kernel, in one verifier process, and
    fail the cells whose verdicts disagree. Returns the verifier's seconds from the word
    go (its warm-up ran beside the notebooks)."""
    if verifier is None:
        return 0.0
    # A notebook that came back empty has all zero already: nothing to verify.
    names = [name for name in verifier.notebooks if runs[name].executed is not None]
    verifications, seconds = verifier.finish(names)
    for name, verification in verifications.items():
        run = runs[name]
        executed = nbformat.reads(run.executed, as_version=4)
        run.flags += apply_verdicts(executed, verification)
        run.executed = nbformat.writes(executed)
        run.unverified = verification.failure
    return seconds


def _kernel_env(job: Job, data_path: str | None, kit_path: str) -> dict[str, str]:
    env = {"NBGRADER_EXECUTION": "autograde", "TF_CPP_MIN_LOG_LEVEL": "3", **job.env}
    if data_path:
        env["HW5_MNIST_PATH"] = data_path
    env["PYTHONPATH"] = kit_path
    return env


def _run_sandboxed(job: Job, name: str, text: str, artifacts: str) -> NotebookRun:
    from graders.sandbox import execute_notebook

    started = time.monotonic()
    settings = _warm_run_settings(job)
    warm, cold_reason = SPARES.take(name, settings)
    if job.keep_warm:  # the next student's run warms up beside this one
        SPARES.prepare(name, settings, warm_up_modules(text, job.support_files))
    try:
        result = execute_notebook(
            nbformat.reads(text, as_version=4),
            notebook_name=name,
            export_requests=job.export_requests.get(name),
            artifacts_to=artifacts,
            warm=warm,
            **settings,
        )
    finally:
        if warm is not None:
            warm.__exit__(None, None, None)
    run = _notebook_run(result, started)
    run.warm, run.cold_reason = warm is not None, cold_reason
    return run


def _warm_run_settings(job: Job) -> dict:
    """What a notebook's sandbox is made of, the same for every student of a batch (the
    instructor's support files and binds, the budget's environment and limits)."""
    from graders.sandbox import SandboxLimits

    binds = [(job.checks_dir, CHECKS_INSIDE)]
    if job.data_file:
        binds.append((job.data_file, DATA_INSIDE))
    return {
        "support_files": dict(job.support_files),
        "ro_binds": binds,
        "env": _kernel_env(job, DATA_INSIDE if job.data_file else None, CHECKS_INSIDE),
        "limits": SandboxLimits(**job.limits),
    }


#: Called in a kernel readied ahead whose setup cell imports the assignment's support module
#: (``hw5_data``): the checks' data, loaded before the notebook arrives.
PRELOAD = "graders.checks.preload:load_grading_data"


def warm_up_modules(text: str, support_files: dict[str, str]) -> list[str]:
    """The modules a notebook's first code cell imports, when that cell is locked (the
    instructor's: it runs before any student code, so importing them earlier changes
    nothing the notebook can see), less the assignment's own support modules; and, when
    it imports one of those, :data:`PRELOAD` (the grading kit's data, which the kernel's
    checks would load at their first use)."""
    import ast

    cells = [cell for cell in nbformat.reads(text, as_version=4).cells if cell.get("cell_type") == "code"]
    if not cells or not cells[0].get("metadata", {}).get("nbgrader", {}).get("locked"):
        return []
    try:
        tree = ast.parse(cells[0].source)
    except SyntaxError:
        return []
    own = {os.path.splitext(name)[0] for name in support_files}
    modules = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.append(node.module)
    ours = {name for name in modules if name.split(".")[0] in own}
    return sorted({name for name in modules if name not in ours} | ({PRELOAD} if ours else set()))


class Spares:
    """This worker process's warm sandboxes for its next student, one per notebook name:
    each started while a job runs, with the kernel's first imports done, and handed to
    the next job of the same batch whose settings are the same. A spare no student has
    touched: each student still gets a fresh sandbox. :func:`release_spares` ends them
    (at the end of every batch, on every worker; and when the process exits).

    Spares are started by one thread that lives as long as the process: bubblewrap's
    ``--die-with-parent`` follows the thread that started it, and a spare started by a
    thread that then ended would be killed with it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, tuple[str, object, threading.Event]] = {}
        self._starts: queue.Queue = queue.Queue()
        self._starter: threading.Thread | None = None

    @staticmethod
    def _key(settings: dict) -> str:
        return json.dumps(settings, sort_keys=True, default=repr)

    def _start_loop(self) -> None:
        while True:
            run, started = self._starts.get()
            try:
                _start_spare(run)
            finally:
                started.set()

    def take(self, name: str, settings: dict) -> tuple[object | None, str]:
        """The spare for ``name`` made with ``settings`` (entered, still waiting) and "", or
        None and why there is none to use (the job then starts its sandbox cold)."""
        with self._lock:
            entry = self._runs.pop(name, None)
        if entry is None:
            return None, "no sandbox readied (a worker's first student, or a batch of one)"
        key, run, started = entry
        started.wait()
        reason = (
            "the readied sandbox was made for other settings"
            if key != self._key(settings)
            else f"the readied sandbox could not start: {run.failed}"
            if run.failed
            else "the readied sandbox had ended"
            if not run.alive()
            else ""
        )
        if reason:
            run.__exit__(None, None, None)
            return None, reason
        return run, ""

    def prepare(self, name: str, settings: dict, warm_up: list[str]) -> None:
        """Start a spare for ``name`` in the background (one per name; an older one ends)."""
        from graders.sandbox.notebook import WarmRun

        run, started = WarmRun(warm_up=warm_up, background=True, **settings), threading.Event()
        with self._lock:
            if self._starter is None:
                self._starter = threading.Thread(target=self._start_loop, name="hw5-spares", daemon=True)
                self._starter.start()
            old = self._runs.pop(name, None)
            self._runs[name] = (self._key(settings), run, started)
        self._starts.put((run, started))
        if old is not None:
            old[2].wait()
            old[1].__exit__(None, None, None)

    def release(self) -> int:
        with self._lock:
            entries, self._runs = list(self._runs.values()), {}
        for _, run, started in entries:
            started.wait()
            run.__exit__(None, None, None)
        return len(entries)


def _start_spare(run) -> None:
    """Start ``run`` (in a thread of its own); a spare that could not start is marked
    failed, and the next job starts its own sandbox as if there were none."""
    from graders.sandbox.selftest import require_sandbox

    try:
        require_sandbox(run.limits)  # cached once it passed: a spare never skips the self-test
        run.__enter__()
    except Exception as error:  # noqa: BLE001 - no spare: the next job starts cold
        run.failed = f"{type(error).__name__}: {error}"


SPARES = Spares()


def release_spares() -> int:
    """End this process's spare sandboxes; returns how many there were."""
    return SPARES.release()


atexit.register(release_spares)


def _notebook_run(result, started: float) -> NotebookRun:
    executed = nbformat.writes(result.notebook) if result.notebook is not None else None
    return NotebookRun(
        result.status,
        result.detail[:1000],
        time.monotonic() - started,
        executed,
        flags=[f"export refused: {problem}" for problem in result.artifact_problems],
    )


def _run_unsandboxed(job: Job, name: str, text: str, artifacts: str) -> NotebookRun:
    """The same executor, unisolated, as the grading user (only with --no-sandbox)."""
    from graders.sandbox import SandboxLimits
    from graders.sandbox.plain import execute_notebook_plain

    started = time.monotonic()
    result = execute_notebook_plain(
        nbformat.reads(text, as_version=4),
        notebook_name=name,
        support_files=job.support_files,
        env=_kernel_env(job, job.data_file, job.checks_dir),
        limits=SandboxLimits(**job.limits),
        export_requests=job.export_requests.get(name),
        artifacts_to=artifacts,
    )
    return _notebook_run(result, started)
