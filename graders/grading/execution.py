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

import contextlib
import os
import shutil
import tempfile
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


@dataclass
class NotebookRun:
    status: str  # "ok" or a sandbox status: timeout, oom, kernel_died, crashed, ...
    detail: str
    seconds: float
    executed: str | None  # executed notebook (JSON text), None if nothing came back
    flags: list[str] = field(default_factory=list)  # out-of-kernel verification: review these
    unverified: str | None = None  # why the verifier itself failed (ours, not the student's)


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
    from graders.sandbox import SandboxLimits, execute_notebook

    started = time.monotonic()
    binds = [(job.checks_dir, CHECKS_INSIDE)]
    if job.data_file:
        binds.append((job.data_file, DATA_INSIDE))
    result = execute_notebook(
        nbformat.reads(text, as_version=4),
        notebook_name=name,
        support_files=job.support_files,
        ro_binds=binds,
        env=_kernel_env(job, DATA_INSIDE if job.data_file else None, CHECKS_INSIDE),
        limits=SandboxLimits(**job.limits),
        export_requests=job.export_requests.get(name),
        artifacts_to=artifacts,
    )
    return _notebook_run(result, started)


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
