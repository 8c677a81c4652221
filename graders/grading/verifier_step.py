"""Run the out-of-kernel verifier, and combine its verdicts with the kernel's.

:func:`export_requests_for` derives from the trusted notebook what the kernel exports
after each test cell; :func:`verify_submission` runs ``python -m graders.verify`` on the
copied exports, in a fresh sandbox under a uid of its own (or unisolated without the
sandbox); :func:`apply_verdicts` keeps a test cell's points only when both verdicts pass,
and flags the rest: tampering, or "needs a person" where the verifier could not check.
See docs/security.md, "The judge is outside the student's kernel".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from graders.grading.kits import DATA_INSIDE, VERIFIER_KIT_INSIDE
from graders.sandbox.channel import send_to_end
from graders.sandbox.limits import VERIFIER_MEMORY_MB, VERIFIER_TIMEOUT_S, VERIFIER_UID
from graders.sandbox.outputs import error_output, has_error
from graders.verify.__main__ import MARKER

#: Where the copied exports appear in the verifier's sandbox.
ARTIFACTS_INSIDE = "/opt/hw5-artifacts"

FAILED_ENAME = "OutOfKernelCheckFailed"
NOT_VERIFIED_ENAME = "NotVerified"


@dataclass
class Verification:
    """The verifier's word on one notebook: a verdict per grade_id, or why there is none."""

    verdicts: dict[str, dict] | None
    failure: str | None = None


def export_requests_for(notebook, seed_text: str, support_modules: frozenset[str] = frozenset()) -> dict[str, dict]:
    """grade_id -> what the kernel exports after that test cell, with fresh builder
    arguments seeded by ``seed_text`` (the submission itself: the same work gets the same
    arguments, and a table of answers in it would change them). ``support_modules``: the
    stems of the assignment's support ``.py`` files, which the verifier imports itself."""
    from graders.verify.requests import export_requests, fresh_calls

    seed = int.from_bytes(hashlib.sha256(seed_text.encode("utf-8")).digest()[:8], "big")
    return fresh_calls(export_requests(notebook, support_modules), random.Random(seed))


@dataclass
class ToVerify:
    """One notebook of a submission, as the verifier needs it."""

    trusted_notebook: str  # JSON text: locked cells restored, hidden tests in
    requests: dict  # grade_id -> export request (export_requests_for)
    artifacts_dir: str  # the exports copied out of the dead sandbox


def _parse(stdout: str, names) -> dict[str, Verification]:
    lines = [line for line in stdout.splitlines() if line.startswith(MARKER)]
    if len(lines) != 1:
        raise ValueError("the verifier printed no verdicts")
    results = json.loads(lines[0][len(MARKER) :])
    if not isinstance(results, dict) or set(results) != set(names):
        raise ValueError("the verifier's verdicts do not name the notebooks it was given")
    parsed = {}
    for name, result in results.items():
        verdicts = result.get("verdicts") if isinstance(result, dict) else None
        if isinstance(verdicts, dict) and all(
            isinstance(v, dict) and isinstance(v.get("passed"), bool) for v in verdicts.values()
        ):
            parsed[name] = Verification(verdicts)
        elif isinstance(result, dict) and isinstance(result.get("failure"), str):
            parsed[name] = Verification(None, failure=result["failure"])
        else:
            raise ValueError("the verifier's verdicts are malformed")
    return parsed


def _verifier_env(budget_env: dict[str, str], data_path: str | None, kit: str) -> dict[str, str]:
    env = {key: value for key, value in budget_env.items() if key.startswith(("HW5_", "TF_", "OMP_"))}
    env.update({"NBGRADER_EXECUTION": "autograde", "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "Agg", "PYTHONPATH": kit})
    if data_path:
        env["HW5_MNIST_PATH"] = data_path
    return env


def verify_submission(notebooks: dict[str, ToVerify], **settings) -> tuple[dict[str, Verification], float]:
    """Verify every notebook of one submission in ONE verifier process (one TensorFlow
    import, one sandbox): an :class:`EarlyVerifier` (``settings``: its keywords) told to
    go at once."""
    with EarlyVerifier(notebooks, **settings) as verifier:
        return verifier.finish(list(notebooks))


class EarlyVerifier:
    """The verifier of one submission, started before its notebooks run.

    ``with EarlyVerifier(...) as verifier: <run the notebooks>; verifier.finish(names)``.
    It starts at once (its sandbox, Python, TensorFlow and Keras imported: about 4 s that
    then overlap the kernel's run) and waits, before it reads anything of the submission,
    for the names of the notebooks to verify on a pipe whose write end only this host
    process holds. So each verification still runs in a process no export reached before,
    and its time limit counts from that word. Leaving the block kills it, verified or not.

    ``notebooks``: every notebook that may be verified; their ``artifacts_dir`` must
    exist now (bound as they are: the exports are copied in later).
    """

    def __init__(
        self,
        notebooks: dict[str, ToVerify],
        *,
        kit_dir: str,
        support_files: dict[str, str],
        data_file: str | None,
        env: dict[str, str],
        sandbox: bool,
        threads: int = 2,
    ) -> None:
        self.notebooks = notebooks
        self.kit_dir, self.support_files, self.data_file = kit_dir, support_files, data_file
        self.env, self.sandbox, self.threads = env, sandbox, threads
        self._stack = contextlib.ExitStack()
        self._go: int | None = None  # the write end of the go pipe
        self._process = None  # a _Sandboxed or _Plain process
        self.failure: str | None = None  # why it could not start (then every notebook "could not verify")

    def __enter__(self) -> EarlyVerifier:
        if not self.notebooks:
            return self
        try:
            runner = _Sandboxed if self.sandbox else _Plain
            self._process = self._stack.enter_context(runner(self))
        except Exception as error:  # noqa: BLE001 - "could not verify" later, never a crash now
            self.failure = f"{type(error).__name__}: {str(error)[:600]}"
        return self

    def __exit__(self, *exc_info) -> None:
        self._stack.close()

    def finish(self, names: list[str]) -> tuple[dict[str, Verification], float]:
        """Verify ``names`` (a subset of the notebooks given); a :class:`Verification` per
        name and the seconds from the word go to the verdicts. Never raises for a failure of
        the verifier itself: then every named notebook gets that failure."""
        started = time.monotonic()
        names = [name for name in names if name in self.notebooks]
        if not names:
            return {}, 0.0
        try:
            if self.failure is not None:
                raise RuntimeError(self.failure)
            stdout = self._process.go(names)
            results = _parse(stdout, names)
        except Exception as error:  # noqa: BLE001 - a verifier failure is "could not verify", never a crash
            failure = f"{type(error).__name__}: {str(error)[:600]}"
            results = {name: Verification(None, failure=failure) for name in names}
        return results, time.monotonic() - started


def _verifier_argv(python: str, job: str, support: str, go_fd: int) -> list[str]:
    return [python, "-P", "-m", "graders.verify", "--job", job, "--support-dir", support, "--go-fd", str(go_fd)]


def _job_entries(notebooks: dict[str, ToVerify], notebook_path, exports_path) -> dict:
    """The verifier's job file: per notebook, its trusted copy, its exports and requests."""
    return {
        name: {
            "notebook": notebook_path(index, item),
            "exports": exports_path(index, item),
            "requests": item.requests,
            # drawn after the kernel is dead: which epoch of each training is replayed
            "replay_key": secrets.token_hex(16),
        }
        for index, (name, item) in enumerate(notebooks.items())
    }


class _Sandboxed:
    """The verifier in a fresh sandbox under a uid of its own."""

    def __init__(self, early: EarlyVerifier) -> None:
        self.early = early
        self.stack = contextlib.ExitStack()

    def __enter__(self) -> _Sandboxed:
        from graders.sandbox import SandboxLimits
        from graders.sandbox import bwrap as bw
        from graders.sandbox.run import SandboxRun

        early = self.early
        limits = SandboxLimits(
            uid=VERIFIER_UID,
            gid=VERIFIER_UID,
            memory_mb=VERIFIER_MEMORY_MB,
            threads=early.threads,
            notebook_timeout_s=VERIFIER_TIMEOUT_S,
        )
        exe, _ = bw.python_inside()
        with contextlib.ExitStack() as stack:
            run = self.run = stack.enter_context(SandboxRun(limits))
            run.set_background(True)  # it warms up on the cores the notebooks leave idle
            notebooks = {}
            for index, item in enumerate(early.notebooks.values()):
                run.add_ro_bind(item.artifacts_dir, f"{ARTIFACTS_INSIDE}/{index}")
                notebooks[index] = run.add_file(f"trusted-{index}.ipynb", item.trusted_notebook.encode("utf-8"))
            job = _job_entries(
                early.notebooks, lambda index, _: notebooks[index], lambda index, _: f"{ARTIFACTS_INSIDE}/{index}"
            )
            job_path = run.add_file("job.json", json.dumps(job).encode("utf-8"))
            inside = os.path.dirname(job_path)  # the run's own folder, where hw5_data.py goes
            for name, host in early.support_files.items():
                if name.endswith(".py"):  # the trusted hw5_data.py, never the student's copy
                    run.add_file(name, source=host)
            run.add_ro_bind(early.kit_dir, VERIFIER_KIT_INSIDE)
            if early.data_file:
                run.add_ro_bind(early.data_file, DATA_INSIDE)
            inside_env = bw.base_env(limits, os.path.dirname(exe))
            inside_env.update(_verifier_env(early.env, DATA_INSIDE if early.data_file else None, VERIFIER_KIT_INSIDE))
            go_read, self.go_write = os.pipe()
            stack.callback(self._close_go)
            try:
                run.start(_verifier_argv(exe, job_path, inside, go_read), inside_env, pass_fds=(go_read,))
            finally:
                os.close(go_read)  # the verifier holds the read end, this process the write end
            self.stack = stack.pop_all()
        return self

    def _close_go(self) -> None:
        if self.go_write is not None:
            os.close(self.go_write)
            self.go_write = None

    def __exit__(self, *exc_info) -> None:
        self.stack.close()

    def go(self, names: list[str]) -> str:
        fd, self.go_write = self.go_write, None
        self.run.set_background(False)
        send_to_end(fd, json.dumps(names).encode("utf-8"))  # the word go
        rc = self.run.wait(VERIFIER_TIMEOUT_S, since=time.monotonic())
        detail = self.run.stderr_text()
        if self.run.timed_out:
            raise TimeoutError(f"the verifier ran over {VERIFIER_TIMEOUT_S} s")
        if rc != 0:
            raise RuntimeError(f"the verifier exited with status {rc}: {detail.strip()[-400:]}")
        return self.run.stdout_text()


class _Plain:
    """The verifier as a plain subprocess (only with --no-sandbox)."""

    def __init__(self, early: EarlyVerifier) -> None:
        self.early = early

    def __enter__(self) -> _Plain:
        early = self.early
        self.scratch = tempfile.mkdtemp(prefix="hw5-verify-")
        try:
            paths = {}
            for index, item in enumerate(early.notebooks.values()):
                paths[index] = Path(self.scratch, f"trusted-{index}.ipynb")
                paths[index].write_text(item.trusted_notebook, encoding="utf-8")
            job = _job_entries(early.notebooks, lambda index, _: str(paths[index]), lambda _, item: item.artifacts_dir)
            job_path = Path(self.scratch, "job.json")
            job_path.write_text(json.dumps(job))
            for name, host in early.support_files.items():
                if name.endswith(".py"):
                    shutil.copyfile(host, Path(self.scratch, name))
            run_env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
            run_env.update(_verifier_env(early.env, early.data_file, early.kit_dir))
            go_read, self.go_write = os.pipe()
            try:
                self.proc = subprocess.Popen(
                    _verifier_argv(sys.executable, str(job_path), self.scratch, go_read),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=run_env,
                    cwd=self.scratch,
                    pass_fds=(go_read,),
                )
            finally:
                os.close(go_read)
        except BaseException:
            shutil.rmtree(self.scratch, ignore_errors=True)
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        if self.go_write is not None:
            os.close(self.go_write)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def go(self, names: list[str]) -> str:
        fd, self.go_write = self.go_write, None
        send_to_end(fd, json.dumps(names).encode("utf-8"))  # the word go
        try:
            stdout, stderr = self.proc.communicate(timeout=VERIFIER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise TimeoutError(f"the verifier ran over {VERIFIER_TIMEOUT_S} s") from None
        if self.proc.returncode != 0:
            raise RuntimeError(f"the verifier exited with status {self.proc.returncode}: {stderr[-300:]}")
        return stdout


def _graded_cells(notebook):
    for cell in notebook.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") == "code" and meta.get("grade") and meta.get("grade_id"):
            yield meta["grade_id"], cell


#: Review flags start with one of these, so that reports can tell the verdicts apart.
TAMPERING_TAG = "suspected tampering"
NEEDS_PERSON_TAG = "needs a person"

#: What a student reads on a cell the verifier could not re-check (no accusation).
NOT_VERIFIED_SENTENCE = (
    "This test passed in your notebook, but the grader could not re-check your work on its own "
    "(a limit of the grader, not a mistake found in your work). Its points are held until an "
    "instructor has looked at your work."
)


def _is_unverifiable(verdict: dict) -> bool:
    return verdict.get("verdict") == "unverifiable" or str(verdict.get("message", "")).startswith("could not verify")


def _limit(verdict: dict) -> str:
    text = str(verdict.get("limit") or verdict.get("message", ""))
    return text.removeprefix("could not verify: ")[:400]


def _kernel_limit(cell) -> str | None:
    """The instructor's detail when the kernel's own check met a limit of ours
    (``CouldNotCheck``), else None."""
    from graders.checks.failures import INSTRUCTOR_NOTE, instructor_part

    for output in cell.get("outputs", []):
        if output.get("output_type") == "error" and output.get("ename") == COULD_NOT_CHECK_ENAME:
            evalue = str(output.get("evalue", ""))
            return instructor_part(evalue) if INSTRUCTOR_NOTE in evalue else "the kernel's check met a limit"
    return None


COULD_NOT_CHECK_ENAME = "CouldNotCheck"


def apply_verdicts(executed, verification: Verification) -> list[str]:
    """Fail every test cell of ``executed`` (in place) that passed in the kernel but not out
    of it; returns one review flag per such cell (empty when the verdicts agree).

    Three verdicts, kept apart: a cell whose export the verifier read and rebuilt, and which
    then failed, is flagged ``suspected tampering``; a cell the verifier could not re-check
    (its own failure, an export it cannot read or represent, a limit of the checks) is
    flagged ``needs a person``, names the limit, and tells the student so in a plain
    sentence (the points are held until an instructor looks). A cell whose check in the
    kernel met a limit of ours is flagged ``needs a person`` too.
    """
    from graders.checks.failures import INSTRUCTOR_NOTE

    flags = []
    for grade_id, cell in _graded_cells(executed):
        if has_error(cell):  # failed in the kernel already: no points either way
            limit = _kernel_limit(cell)
            if limit is not None:
                flags.append(
                    f"{grade_id}: {NEEDS_PERSON_TAG}: the check in the kernel could not read the "
                    f"student's objects: {limit[:300]}"
                )
            continue
        if verification.verdicts is None:
            cell.outputs.append(
                error_output(
                    NOT_VERIFIED_ENAME, NOT_VERIFIED_SENTENCE + INSTRUCTOR_NOTE + str(verification.failure)[:300]
                )
            )
            flags.append(
                f"{grade_id}: {NEEDS_PERSON_TAG}: could not verify out of kernel (the verifier "
                f"failed: {verification.failure})"
            )
            continue
        verdict = verification.verdicts.get(grade_id) or {
            "passed": False,
            "verdict": "unverifiable",
            "message": "the verifier gave no verdict for this cell",
        }
        if verdict["passed"]:
            continue
        if _is_unverifiable(verdict):  # an export we could not read, represent or re-check
            limit = _limit(verdict)
            cell.outputs.append(error_output(NOT_VERIFIED_ENAME, NOT_VERIFIED_SENTENCE + INSTRUCTOR_NOTE + limit))
            flags.append(
                f"{grade_id}: {NEEDS_PERSON_TAG}: could not verify out of kernel: {limit[:300]} "
                "(no points until an instructor reviews it)"
            )
            continue
        message = str(verdict.get("message", ""))[:1000]
        cell.outputs.append(error_output(FAILED_ENAME, f"Re-checked outside your notebook, this test fails: {message}"))
        flags.append(f"{grade_id}: {TAMPERING_TAG}: passed in the kernel, failed out of kernel: {message[:300]}")
    return flags
