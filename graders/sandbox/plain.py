"""``--no-sandbox``: the same executor and the same rules, without the isolation.

:func:`execute_notebook_plain` runs :mod:`graders.sandbox.execute_inside` as a plain
subprocess of the grading user, in a scratch folder, and reads its result channel and
judges it exactly as the sandboxed path does (:func:`graders.sandbox.notebook.read_result`):
the same per-cell timeout output, ``HiddenError``, output caps, "did not run" outputs and
notebook time limit. Only the isolation differs: no other uid, no network namespace, no
cgroup (so no memory limit and no OOM status), and the kernel can read what this user
can. The orchestrator uses it only when told ``--no-sandbox``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from .copy_exports import EXPORT_FOLDER, collect_artifacts
from .hostfs import CappedReader, check_rel_name
from .limits import SandboxLimits
from .notebook import CRASHED, INVALID_INPUT, ExecutionResult, executor_argv, load_input, read_result, result_reader

#: Set by Dask's nanny for its worker processes; a kernel must not inherit them.
#: MALLOC_TRIM_THRESHOLD_ turns every large NumPy temporary into an mmap/munmap pair
#: (a NumPy loop ran 6x slower here); the BLAS thread counts of 1 override the job's.
WORKER_ONLY_ENV = ("MALLOC_TRIM_THRESHOLD_", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])  # the folder holding graders/


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (kernels start their own sessions, so a process
    group kill misses them)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill_tree(proc: subprocess.Popen) -> None:
    for pid in [proc.pid, *_descendants(proc.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def execute_notebook_plain(
    notebook,
    *,
    support_files: Mapping[str, str | os.PathLike] | None = None,
    ro_binds: Iterable[tuple[str | os.PathLike, str]] = (),
    env: Mapping[str, str] | None = None,
    limits: SandboxLimits | None = None,
    notebook_name: str | None = None,
    kernel_name: str = "python3",
    export_requests: Mapping[str, dict] | None = None,
    artifacts_to: str | None = None,
) -> ExecutionResult:
    """Execute one notebook UNISOLATED, by the sandbox's rules; same arguments and result
    as :func:`graders.sandbox.notebook.execute_notebook`. ``ro_binds`` are not bound
    anywhere: the host paths are used as they are, so pass host paths in ``env``."""
    del ro_binds  # nothing to bind: the kernel sees the host filesystem
    limits = limits or SandboxLimits()
    started = time.monotonic()
    try:
        sent, name = load_input(notebook, limits, notebook_name)
    except ValueError as exc:
        return ExecutionResult(None, INVALID_INPUT, str(exc)[:2000], time.monotonic() - started)
    import nbformat

    user_env = dict(env or {})
    kernel_pythonpath = user_env.pop("PYTHONPATH", "")
    run_env = {key: value for key, value in os.environ.items() if key not in WORKER_ONLY_ENV}
    run_env.update(limits.thread_env())
    run_env.update(user_env)
    run_env["PYTHONPATH"] = _PACKAGE_PARENT  # the executor imports graders.sandbox
    run_env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + run_env.get("PATH", "")
    with tempfile.TemporaryDirectory(prefix="hw5-unsandboxed-") as scratch:
        notebook_path = os.path.join(scratch, name)
        Path(notebook_path).write_text(nbformat.writes(sent), encoding="utf-8")
        for inside_name, host in (support_files or {}).items():
            target = os.path.join(scratch, check_rel_name(inside_name))
            (shutil.copytree if os.path.isdir(host) else shutil.copyfile)(host, target)
        requests_path = export_dir = ""
        if export_requests:
            requests_path = os.path.join(scratch, "export-requests.json")
            Path(requests_path).write_text(json.dumps(dict(export_requests)))
            export_dir = os.path.join(scratch, EXPORT_FOLDER)
        read_end, write_end = os.pipe()
        argv = executor_argv(
            sys.executable, notebook_path, write_end, limits, kernel_name, kernel_pythonpath, requests_path, export_dir
        )
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(write_end,),
                cwd=scratch,
                env=run_env,
                start_new_session=True,
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)  # the executor holds the only write end
        logs = [CappedReader(stream, limits.max_log_bytes) for stream in (proc.stdout, proc.stderr)]
        for log in logs:
            log.start()
        reader = result_reader(read_end, limits)
        timed_out = False
        try:
            rc = proc.wait(timeout=limits.notebook_timeout_s)
        except subprocess.TimeoutExpired:
            timed_out, rc = True, None
        _kill_tree(proc)  # whatever the notebook left running
        reader.join(timeout=30)
        for log in logs:
            log.join(timeout=5)
        problems = collect_artifacts(export_dir, artifacts_to) if artifacts_to and export_dir else []
        result = ExecutionResult(
            None,
            CRASHED,
            "",
            time.monotonic() - started,
            returncode=rc,
            stdout=logs[0].text(),
            stderr=logs[1].text(),
            run_id="unsandboxed",
            artifact_problems=problems,
        )
        return read_result(result, reader, sent, limits, timed_out=timed_out)
