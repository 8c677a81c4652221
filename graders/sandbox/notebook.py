"""Execute one untrusted notebook in a fresh sandbox, and judge what came back.

:func:`execute_notebook` is the API: it starts :mod:`graders.sandbox.execute_inside` in a
:class:`~graders.sandbox.run.SandboxRun`, reads the result from a pipe whose write end
only the executor holds (:mod:`graders.sandbox.channel`; nothing is read back from a
file the student's code could write), size-capped, and puts only outputs and execution
counts, checked against the nbformat schema, onto the notebook it sent in.

There is no unsandboxed path here: when anything needed is missing this raises
:class:`SandboxUnavailable` / :class:`SandboxError`. (``--no-sandbox`` runs the same
executor as a plain subprocess: :mod:`graders.sandbox.plain`.)
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import bwrap as bw
from .channel import FrameReader, send_to_end
from .copy_exports import EXPORT_FOLDER, collect_artifacts
from .errors import SandboxError
from .hostfs import read_capped
from .limits import SandboxLimits
from .outputs import mark_unfinished, merge_outputs
from .run import SandboxRun

# statuses of ExecutionResult
OK = "ok"
TIMEOUT = "timeout"
OOM = "oom"
KERNEL_DIED = "kernel_died"
CRASHED = "crashed"
OUTPUT_TOO_LARGE = "output_too_large"
INVALID_OUTPUT = "invalid_output"
INVALID_INPUT = "invalid_input"
STATUSES = (OK, TIMEOUT, OOM, KERNEL_DIED, CRASHED, OUTPUT_TOO_LARGE, INVALID_OUTPUT, INVALID_INPUT)

MAX_STATUS_BYTES = 64 * 1024
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
    artifact_problems: list[str] = field(default_factory=list)  # exports refused (see artifacts)

    @property
    def ok(self) -> bool:
        return self.status == OK


def load_input(notebook, limits: SandboxLimits, notebook_name: str | None):
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


def executor_argv(
    python: str,
    notebook_path: str,
    result_fd: int,
    limits: SandboxLimits,
    kernel_name: str,
    kernel_pythonpath: str,
    requests_path: str = "",
    export_dir: str = "",
) -> list[str]:
    """The command line of :mod:`graders.sandbox.execute_inside`, sandboxed or not: one
    executor, one set of rules (timeouts, hidden errors, output caps, exports)."""
    return [
        python,
        "-P",
        "-m",
        "graders.sandbox.execute_inside",
        notebook_path,
        "--result-fd",
        str(result_fd),
        "--cell-timeout",
        str(limits.cell_timeout_s),
        "--kernel",
        kernel_name,
        "--max-output-bytes",
        str(limits.max_output_bytes),
        "--max-cell-output-bytes",
        str(limits.max_cell_output_bytes),
        "--kernel-pythonpath",
        kernel_pythonpath,
        "--export-requests",
        requests_path,
        "--export-dir",
        export_dir,
    ]


def result_reader(read_end: int, limits: SandboxLimits) -> FrameReader:
    """A started reader of the result channel. Per-cell frames repeat what the final
    notebook holds: twice the output cap."""
    reader = FrameReader(read_end, 2 * limits.max_output_bytes + MAX_STATUS_BYTES)
    reader.start()
    return reader


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
    export_requests: Mapping[str, dict] | None = None,
    artifacts_to: str | None = None,
    warm: WarmRun | None = None,
) -> ExecutionResult:
    """Execute one untrusted notebook in a fresh sandbox and return the result.

    ``notebook``: a path (read without following a final symlink, size-capped) or an
    nbformat node. ``support_files``: inside name (relative to the kernel's cwd
    ``/home/student/work``) -> host file or directory, copied into the scratch.
    ``ro_binds``: (host path, absolute inside path) bound read-only. ``env``: extra
    environment for the kernel (``PYTHONPATH`` goes to the kernel only).
    ``verify``: run :func:`graders.sandbox.selftest.require_sandbox` first (cached
    per process) - raises :class:`SandboxUnavailable` if the sandbox does not hold.
    ``export_requests`` (grade_id -> request) makes the kernel export plain data after
    those test cells; once every process of the run is dead and the cgroup is empty,
    the exports are copied to ``artifacts_to`` (:mod:`graders.sandbox.copy_exports`).
    ``warm``: a started :class:`WarmRun` made with these same settings, to execute in
    (its kernel already up); it ends with the call, as a fresh one would.

    Raises :class:`SandboxError` for host-side failures (never returns an
    unsandboxed result); every failure of the notebook itself is a status.
    """
    limits = limits or SandboxLimits()
    if verify:
        from .selftest import require_sandbox

        require_sandbox(limits)
    t0 = time.monotonic()
    try:
        sent, name = load_input(notebook, limits, notebook_name)
    except ValueError as exc:
        return ExecutionResult(None, INVALID_INPUT, str(exc)[:2000], time.monotonic() - t0)
    if warm is None:
        warm = WarmRun(support_files=support_files, ro_binds=ro_binds, env=env, limits=limits, kernel_name=kernel_name)
    with warm as run:
        return run.execute(sent, name, export_requests=export_requests, artifacts_to=artifacts_to)


#: Stands for the notebook's name in a warm run's command line: the executor writes the
#: notebook under its own name (checked by :func:`load_input`) once it has it.
WARM_NOTEBOOK = "notebook.ipynb"


class WarmRun:
    """A sandbox whose executor has started its kernel (and imported ``warm_up``'s modules
    in it) and waits for the one notebook it will execute.

    ``with WarmRun(...) as run: run.execute(node, name, ...)``. Nothing of a student is in
    it before :meth:`execute`: the support files and binds are the instructor's, the same
    for every student, so a run can be started before its student is known (a worker's
    next run: :mod:`graders.grading.execution`). The notebook's time limit counts from
    :meth:`execute`. Leaving the block kills everything, executed or not.
    """

    def __init__(
        self,
        *,
        support_files: Mapping[str, str | os.PathLike] | None = None,
        ro_binds: Iterable[tuple[str | os.PathLike, str]] = (),
        env: Mapping[str, str] | None = None,
        limits: SandboxLimits | None = None,
        kernel_name: str = "python3",
        warm_up: Iterable[str] = (),
        background: bool = False,
    ) -> None:
        self.limits = limits or SandboxLimits()
        self.background = background  # started ahead: warm up on idle cores until execute()
        self.support_files = dict(support_files or {})
        self.ro_binds = list(ro_binds)
        self.env = dict(env or {})
        self.kernel_name = kernel_name
        self.warm_up = [name for name in warm_up if re.fullmatch(r"[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?", name)]
        self._stack = contextlib.ExitStack()
        self._input: int | None = None  # write end of the executor's input pipe
        self.used = False
        self.started = False
        self.failed = ""  # why it could not start (a spare started in the background)

    def __enter__(self) -> WarmRun:
        if self.started:  # a spare, started ahead
            return self
        with contextlib.ExitStack() as stack:
            user_env = bw.check_env(self.env)
            kernel_pythonpath = user_env.pop("PYTHONPATH", "")
            exe, _ = bw.python_inside()
            inside_env = bw.base_env(self.limits, os.path.dirname(exe))
            inside_env.update(user_env)
            inside_env["PYTHONPATH"] = bw.INSIDE_KIT
            run = self.run = stack.enter_context(SandboxRun(self.limits))
            if self.background:
                run.set_background(True)
            for inside_name, host in self.support_files.items():
                if inside_name == WARM_NOTEBOOK:
                    raise SandboxError(f"support file {inside_name!r} clashes with the notebook")
                run.add_file(inside_name, source=host)
            for host, inside in self.ro_binds:
                run.add_ro_bind(host, inside)
            inside_nb = f"{bw.INSIDE_WORK}/{WARM_NOTEBOOK}"
            read_end, write_end = os.pipe()  # the result channel (graders.sandbox.channel)
            input_read, self._input = os.pipe()  # the notebook, once known
            stack.callback(self._close_input)
            argv = executor_argv(
                exe, inside_nb, write_end, self.limits, self.kernel_name, kernel_pythonpath, "", self._export_dir()
            )
            argv += ["--notebook-fd", str(input_read), "--warm-up", ",".join(self.warm_up)]
            try:
                run.start(argv, inside_env, pass_fds=(write_end, input_read))
            except BaseException:
                os.close(read_end)
                raise
            finally:
                os.close(write_end)  # the sandboxed executor holds the only write end
                os.close(input_read)
            self.reader = result_reader(read_end, self.limits)
            self._stack = stack.pop_all()
        self.started = True
        return self

    @staticmethod
    def _export_dir() -> str:
        return f"{bw.INSIDE_WORK}/{EXPORT_FOLDER}"

    def _close_input(self) -> None:
        if self._input is not None:
            os.close(self._input)
            self._input = None

    def __exit__(self, *exc_info) -> None:
        self._stack.close()

    def alive(self) -> bool:
        """Whether the executor still waits (a run whose kernel did not start has ended)."""
        return self.started and not self.used and self.run.proc is not None and self.run.proc.poll() is None

    def execute(
        self,
        sent,
        name: str,
        *,
        export_requests: Mapping[str, dict] | None = None,
        artifacts_to: str | None = None,
    ) -> ExecutionResult:
        """Execute ``sent`` (a notebook node, checked by :func:`load_input`) as ``name``."""
        import nbformat

        if self.used:
            raise SandboxError("a WarmRun executes one notebook")
        self.used = True
        if name in self.support_files:
            raise SandboxError(f"support file {name!r} clashes with the notebook")
        run = self.run
        document = json.dumps(
            {"notebook": nbformat.writes(sent), "name": name, "requests": dict(export_requests or {})}
        )
        fd, self._input = self._input, None
        if self.background:
            run.set_background(False)
        sent_at = time.monotonic()
        send_to_end(fd, document.encode("utf-8"))
        rc = run.wait(self.limits.notebook_timeout_s, since=sent_at)
        self.reader.join(timeout=30)  # everything in the sandbox is dead: the pipe is at its end
        cg = run.cgroup
        artifact_problems = []
        if artifacts_to:
            if run.processes_left():  # nothing may write the exports while they are read
                raise SandboxError("processes of the run are still alive; its exports are not read")
            artifact_problems = collect_artifacts(run.host("work", EXPORT_FOLDER), artifacts_to)
        oom = cg.oom_kills() if cg else 0
        peak = cg.peak_memory_bytes() if cg else None
        result = ExecutionResult(
            None,
            CRASHED,
            "",
            time.monotonic() - sent_at,
            peak_memory_bytes=peak,
            oom_kills=oom,
            returncode=rc,
            stdout=run.stdout_text(),
            stderr=run.stderr_text(),
            run_id=run.run_id,
            artifact_problems=artifact_problems,
        )
        result = read_result(result, self.reader, sent, self.limits, timed_out=run.timed_out)
        if run.limit_exceeded and result.status != OK:  # rootless: killed for its scratch
            result.detail = f"{run.limit_exceeded}; everything in the sandbox was killed"
        return result


def read_result(
    result: ExecutionResult, reader: FrameReader, sent, limits: SandboxLimits, *, timed_out: bool
) -> ExecutionResult:
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
            result.cell_timeouts = [int(x) for x in ct[:1000] if isinstance(x, int) and not isinstance(x, bool)]
        truncated = doc.get("truncated", [])
        if isinstance(truncated, list) and truncated and inside_status == "ok":
            inside_status = "truncated"
            inside_detail = f"outputs of cells {truncated[:50]} were truncated"
    rc, oom = result.returncode, result.oom_kills

    if timed_out:
        result.status = TIMEOUT
        result.detail = (
            f"notebook exceeded {limits.notebook_timeout_s} s wall time; everything in the sandbox was killed"
        )
    elif oom and inside_status != "ok":
        result.status = OOM
        result.detail = f"out of memory (limit {limits.memory_mb} MiB, {oom} process(es) OOM-killed)"
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
            f" (exit status {rc})" if rc is not None else ""
        )

    # -- the notebook --------------------------------------------------------------------
    if reader.error:
        result.status = INVALID_OUTPUT
        result.detail = f"result channel: {reader.error}"
        return result
    try:
        merged = merge_outputs(sent, cells)
    except Exception as exc:  # noqa: BLE001 - every validation error of the claimed outputs
        result.status = INVALID_OUTPUT
        result.detail = f"executed notebook rejected: {type(exc).__name__}: {str(exc)[:500]}"
        return result
    if result.status != OK:
        mark_unfinished(merged, result.status)
    result.notebook = merged
    return result
