"""The orchestrator of one batch: each student's intake, job and grade, on the host.

:meth:`Grader.prepare` reads a submission (:mod:`graders.grading.intake`), sanitizes it
and derives its export requests, and builds the job a worker runs
(:func:`graders.grading.execution.execute_job`); :func:`run_batch` sends the jobs to local
or Dask workers and :meth:`Grader.record` scores each result as it arrives. The
orchestrator is the only writer of the gradebook, and a grade is saved before the next
result is taken.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from graders import gradebook
from graders.course import course_db_url, load_config, source_layout
from graders.grading.blobs import BlobError
from graders.grading.environment import instructor_cell_failures
from graders.grading.execution import Job, JobResult, execute_job, release_spares
from graders.grading.intake import read_submission, suspicious_code
from graders.grading.internal_errors import describe
from graders.grading.kits import build_checks_kit, build_verifier_kit
from graders.grading.pipeline import AUTOGRADE, executed_path, sanitize
from graders.grading.shipping import ship, unship
from graders.grading.verifier_step import NOT_VERIFIED_ENAME, export_requests_for
from graders.grading.worker_check import check_workers
from graders.sandbox.outputs import NOT_EXECUTED_ENAME, NOT_GRADED_ENAME, TIMEOUT_ENAME, TOO_LARGE_ENAME

#: Error outputs that mean "this cell could not run (or be checked)", not "the test failed".
COULD_NOT_RUN = (NOT_EXECUTED_ENAME, NOT_GRADED_ENAME, TIMEOUT_ENAME, TOO_LARGE_ENAME, NOT_VERIFIED_ENAME)

#: The status of a submission that could not be graded because a cell of ours raised.
ENVIRONMENT_FAILURE = "failed: grading environment"
STAGING = ".grading"  # under the course root: repaired submissions and executed notebooks


@dataclass
class StudentReport:
    student: str
    status: str = "pending"  # graded | failed | skipped
    seconds: float = 0.0
    score: float | None = None
    max_score: float | None = None
    verify_seconds: float = 0.0  # of ``seconds``: the out-of-kernel verifier's share
    notebook_seconds: dict[str, float] = field(default_factory=dict)  # of ``seconds``: each notebook's run
    warm_notebooks: list[str] = field(default_factory=list)  # ran in a sandbox the worker readied ahead
    cold_notebooks: dict[str, str] = field(default_factory=dict)  # the others, and why (execution.Spares.take)
    unverified: bool = False  # the verifier itself failed: a failure of ours, exit status 1
    errors: list[str] = field(default_factory=list)  # something scored zero because it could not run
    flags: list[str] = field(default_factory=list)  # graded, but worth an instructor's look


def students_to_grade(root: Path, assignment: str, named: list[str] | None, force: bool, db_url: str):
    """(to grade, already graded) among the named students or all of ``submitted/``."""
    submitted = root / "submitted"
    everyone = sorted(p.name for p in submitted.iterdir() if p.is_dir()) if submitted.is_dir() else []
    chosen = named or everyone
    if force:
        return chosen, []
    todo, done = [], []
    for student in chosen:
        graded = (
            gradebook.has_submission(db_url, assignment, student)
            and (root / "autograded" / student / assignment).is_dir()
        )
        (done if graded else todo).append(student)
    return todo, done


def printable(text: str) -> str:
    """One line without control characters: student text (exception messages in flags) must
    not forge or erase lines of the terminal summary."""
    return "".join(char if char.isprintable() else " " for char in text)


def cells_that_could_not_run(executed_text: str) -> int:
    """Code cells whose outputs say the executor or the verifier could not finish them:
    counted from what happened in the notebook, not from the run's status alone."""
    notebook = nbformat.reads(executed_text, as_version=4)
    return sum(
        1
        for cell in notebook.cells
        if cell.cell_type == "code"
        and any(
            output.get("output_type") == "error" and output.get("ename") in COULD_NOT_RUN
            for output in cell.get("outputs", [])
        )
    )


class EnvironmentBroken(Exception):
    """Every submission graded so far failed in a cell of ours, or could not be verified:
    stop the batch."""


class WorkersUnfit(Exception):
    """Some Dask worker cannot grade (the package, bubblewrap or root missing): refuse the
    batch before anyone is graded. ``problems``: one line per worker."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


class Grader:
    """The orchestrator's state for one batch."""

    def __init__(
        self,
        root: Path,
        assignment: str,
        *,
        sandbox: bool,
        budget: str,
        threads: int,
        data_file: str | None,
        limits: dict | None = None,
    ):
        self.root, self.assignment, self.sandbox = root, assignment, sandbox
        self.config = load_config(root)
        self.db_url = course_db_url(root)
        self.staging = root / STAGING
        self.expected, self.support = source_layout(root, assignment)
        graders_dir = Path(__file__).resolve().parent.parent
        self.checks_kit = build_checks_kit(Path(tempfile.mkdtemp(prefix="hw5-kit-")), graders_dir)
        self.verifier_kit = build_verifier_kit(Path(tempfile.mkdtemp(prefix="hw5-verifier-")), graders_dir)
        self.env = {
            "HW5_GRADING_BUDGET": budget,
            "TF_NUM_INTRAOP_THREADS": str(threads),
            "TF_NUM_INTEROP_THREADS": str(threads),
            "OMP_NUM_THREADS": str(threads),
        }
        self.limits = {"threads": threads, **(limits or {})}
        self.data_file = data_file
        self.manual_before = gradebook.manual_scores(self.db_url, assignment)  # before any student code runs

    def close(self):
        shutil.rmtree(self.checks_kit, ignore_errors=True)
        shutil.rmtree(self.verifier_kit, ignore_errors=True)

    def sweep_forged(self, reports: dict[str, StudentReport]) -> None:
        """After the batch: a kernel that ran after a student was recorded may have written
        that student's (or anyone's) manual scores; reset them all."""
        forged = gradebook.reset_forged_manual_scores(self.db_url, self.assignment, self.manual_before)
        for student, flags in forged.items():
            if student in reports:
                reports[student].flags += flags
            else:
                print(f"hw5-autograde: {student} (not in this batch): " + "; ".join(flags), file=sys.stderr)

    # 1. intake ---------------------------------------------------------------------
    def prepare(self, student: str, report: StudentReport) -> Job | None:
        folder = self.root / "submitted" / student / self.assignment
        intake = read_submission(folder, self.expected)
        report.errors += intake.errors
        report.flags += intake.repairs
        staged = self.staging / "submitted" / student / self.assignment
        if staged.exists():
            shutil.rmtree(staged)
        staged.mkdir(parents=True)
        for kept in ("timestamp.txt", "submission_secret.txt"):  # nbgrader's release_feedback needs both
            path = folder / kept
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 200:
                shutil.copy2(path, staged / kept)
        notebooks, requests = {}, {}
        for name, notebook in intake.notebooks.items():
            nbformat.write(notebook, staged / name)
            try:
                clean = sanitize(
                    notebook,
                    config=self.config,
                    db_url=self.db_url,
                    assignment=self.assignment,
                    notebook_id=Path(name).stem,
                    student=student,
                )
            except Exception as error:  # nbgrader refuses the notebook: zero for it, go on
                report.errors.append(f"{name} could not be prepared for grading: {type(error).__name__}: {error}")
                (staged / name).unlink()
                continue
            report.flags += suspicious_code(clean, name)  # student-editable cells only
            notebooks[name] = nbformat.writes(clean)
            # What the kernel exports for the out-of-kernel verifier, from the trusted cells.
            requests[name] = export_requests_for(
                clean,
                seed_text=notebooks[name],
                support_modules=frozenset(Path(f).stem for f in self.support if f.endswith(".py")),
            )
        shutil.rmtree(self.staging / "executed" / student, ignore_errors=True)
        return Job(
            student=student,
            notebooks=notebooks,
            support_files=self.support,
            checks_dir=str(self.checks_kit),
            data_file=self.data_file,
            env=self.env,
            sandbox=self.sandbox,
            limits=self.limits,
            export_requests=requests,
            verifier_kit_dir=str(self.verifier_kit),
        )

    # 3. grade ----------------------------------------------------------------------
    def record(self, result: JobResult | None, report: StudentReport, failure: str | None = None) -> None:
        """Save one student's grades (nbgrader autograde on the executed outputs)."""
        from nbgrader.apps import NbGraderAPI

        if not self.stage(result, report, failure):
            return
        config = load_config(self.root)
        config.CourseDirectory.root = str(self.root)
        config.CourseDirectory.submitted_directory = f"{STAGING}/submitted"
        config.Autograde.autograde_preprocessors = AUTOGRADE
        config.PrecomputedExecute.results_directory = str(self.staging / "executed")
        outcome = NbGraderAPI(config=config).autograde(self.assignment, report.student, force=True, create=True)
        if not outcome.get("success"):
            report.status = "failed"
            report.errors.append("nbgrader autograde failed: " + _last_error(outcome))
            return
        report.flags += gradebook.reset_forged_manual_scores(
            self.db_url, self.assignment, self.manual_before, [report.student]
        ).get(report.student, [])
        report.score, report.max_score = gradebook.autograded_total(self.db_url, self.assignment, report.student)
        report.status = "graded"

    def stage(self, result: JobResult | None, report: StudentReport, failure: str | None = None) -> bool:
        """Put one student's executed notebooks where :class:`PrecomputedExecute` reads them
        (``.grading/executed/<student>/``), and note in ``report`` what could not run or be
        verified. False when a cell of ours raised: then nothing may be scored."""
        if failure:
            report.errors.append(failure)
        report.verify_seconds = result.verify_seconds if result else 0.0
        report.notebook_seconds = {name: round(run.seconds, 2) for name, run in (result.runs.items() if result else ())}
        report.warm_notebooks = [name for name, run in (result.runs.items() if result else ()) if run.warm]
        report.cold_notebooks = {
            name: run.cold_reason for name, run in (result.runs.items() if result else ()) if run.cold_reason
        }
        environment = [
            f"{name}: {line}"
            for name, run in (result.runs.items() if result else ())
            if run.executed is not None
            for line in instructor_cell_failures(run.executed)
        ]
        if environment:  # our cell raised before any student code ran: never the student's zero
            report.status = ENVIRONMENT_FAILURE
            report.errors += environment
            return False
        for name, run in result.runs.items() if result else ():
            if run.status != "ok":
                report.errors.append(f"{name}: {run.status}: {run.detail}")
            if run.unverified:
                report.unverified = True
                report.errors.append(
                    f"{name}: could not verify out of kernel (a failure of the grader, "
                    f"not of the student): {run.unverified}"
                )
            elif run.executed is not None and (unfinished := cells_that_could_not_run(run.executed)):
                report.errors.append(f"{name}: {unfinished} cell(s) did not run to completion or could not be verified")
            report.flags += [f"{name}: {flag}" for flag in run.flags]
            if run.executed is not None:
                target = executed_path(self.staging / "executed", report.student, Path(name).stem)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(run.executed)
        return True


def _last_error(outcome: dict) -> str:
    text = (outcome.get("error") or "") + "\n" + (outcome.get("log") or "")
    lines = [line for line in text.splitlines() if "ERROR" in line or "Error" in line] or text.strip().splitlines()
    return lines[-1][:300] if lines else "unknown error"


def default_workers(threads_per_kernel: int = 2) -> int:
    """One worker per ``threads_per_kernel`` cores (TensorFlow uses that many threads)."""
    return max(1, (os.cpu_count() or 1) // threads_per_kernel)


def _release_spares(client) -> None:
    """End every worker's spare sandboxes: a batch leaves nothing running behind it (a
    worker that is gone took its spares with it)."""
    try:
        client.run(release_spares)
    except Exception as error:  # noqa: BLE001 - say so; the sandboxes die with their worker
        print(f"hw5-autograde: could not end the workers' spare sandboxes: {describe(error)}", file=sys.stderr)


def run_batch(
    grader: Grader, students: list[str], workers: int, scheduler: str | None, progress: bool = True
) -> dict[str, StudentReport]:
    """Grade ``students``; returns a report per student. Ctrl-C keeps every finished grade."""
    from distributed import Client, LocalCluster, as_completed
    from tqdm import tqdm

    reports = {student: StudentReport(student) for student in students}
    if not students:
        return reports
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, memory_limit=0, dashboard_address=":0"
        )
        client = Client(cluster)
    problems = check_workers(client, grader.sandbox)
    if problems:  # before any student: a worker that cannot grade would fail them all
        client.close()
        if cluster is not None:
            cluster.close()
        raise WorkersUnfit(problems)
    shipment = None
    bar = tqdm(
        total=len(students),
        unit="student",
        disable=not progress,
        file=sys.stderr,
        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]",
    )
    try:
        futures = {}
        started = {}
        for student in students:
            try:
                job = grader.prepare(student, reports[student])
            except Exception as error:  # a submission no check foresaw: this student only
                reports[student].status = "failed"
                reports[student].errors.append(f"could not read the submission: {describe(error)}")
                bar.update()
                continue
            try:  # the kits, support files and data, by content: once per batch (new paths only)
                shipment = ship(client, job, shipment)
            except Exception as error:
                if shipment is None:  # no worker could grade anyone: refuse the batch
                    raise WorkersUnfit(
                        [f"could not ship the grading content to the workers: {describe(error)}"]
                    ) from error
                reports[student].status = ENVIRONMENT_FAILURE  # ours, never the student's zero
                reports[student].errors.append(f"could not ship this job's content to the workers: {describe(error)}")
                bar.update()
                continue
            job = shipment.address(job)
            job.keep_warm = len(students) > 1  # each worker readies its next student's sandboxes
            started[student] = time.monotonic()
            futures[client.submit(execute_job, job, key=f"hw5-execute-{student}-{time.time_ns()}", pure=False)] = (
                student
            )
        for future in as_completed(futures):
            student = futures[future]
            report = reports[student]
            try:
                result, failure = future.result(), None
            except BlobError as error:  # the worker's kit or data did not verify: ours, never the student's zero
                result, failure = None, None
                report.status = ENVIRONMENT_FAILURE
                report.errors.append(f"the worker could not use the grading content: {describe(error)}")
            except Exception as error:  # the worker died, or the sandbox refused the job
                result, failure = None, f"execution failed: {describe(error)}"
            try:
                if report.status != ENVIRONMENT_FAILURE:
                    grader.record(result, report, failure)
            except Exception as error:
                report.status = "failed"
                report.errors.append(f"grading failed: {describe(error)}")
            # The worker's own time: queueing behind other students is not this one's cost.
            report.seconds = result.seconds if result else time.monotonic() - started[student]
            bar.set_postfix_str(f"{student}: {report.status}")
            bar.update()
            finished = [r for r in reports.values() if r.status not in ("pending", "skipped")]
            if len(finished) >= min(2, len(futures)) and all(
                r.status == ENVIRONMENT_FAILURE or r.unverified for r in finished
            ):
                raise EnvironmentBroken(finished[0].errors[0] if finished[0].errors else "a cell of ours raised")
    except EnvironmentBroken as broken:  # every submission so far: ours, not theirs
        for future in futures:
            future.cancel()
        for report in reports.values():
            if report.status == "pending":
                report.status = "not graded"
                report.errors.append("the batch stopped: the grading environment is broken")
        print(
            f"\nhw5-autograde: stopped: the grading environment is broken for every submission "
            f"so far ({broken}). Nothing was recorded for them; fix it and run again.",
            file=sys.stderr,
        )
    except KeyboardInterrupt:
        for future in futures:
            future.cancel()
        print("\ninterrupted: finished grades are saved; run again to grade the rest", file=sys.stderr)
    finally:
        bar.close()
        _release_spares(client)
        if shipment is not None:
            unship(client, shipment)
        client.close()
        if cluster is not None:
            cluster.close()
    try:
        grader.sweep_forged(reports)
    except Exception as error:  # the grades are saved; say that this check did not run
        print(f"hw5-autograde: could not check the gradebook for forged manual scores: {error}", file=sys.stderr)
    return reports


def summarize(reports: dict[str, StudentReport], skipped: list[str]) -> str:
    lines = []
    for report in reports.values():
        score = "-" if report.score is None else f"{report.score:g}/{report.max_score:g}"
        lines.append(f"  {report.student:30s} {report.status:8s} {score:>9s} {report.seconds:7.1f} s")
        for error in report.errors:
            lines.append(f"      error: {printable(error)}")
        for flag in report.flags:
            lines.append(f"      review: {printable(flag)}")
    graded = sum(r.status == "graded" for r in reports.values())
    failed = sum(r.status != "graded" for r in reports.values())
    with_errors = sum(bool(r.errors) for r in reports.values() if r.status == "graded")
    ours = sum(r.status == ENVIRONMENT_FAILURE for r in reports.values())
    unverified = sum(r.unverified for r in reports.values())
    lines.append(
        f"{graded} graded ({with_errors} with parts that scored zero because they could not run), "
        f"{failed} failed ({ours} because of the grading environment: nothing recorded for them), "
        f"{len(skipped)} skipped (already graded; --force regrades)"
        + (f"; {unverified} could not be verified out of kernel (flagged: regrade them)" if unverified else "")
    )
    return "\n".join(lines)
