"""Grade a whole class: sandboxed, in parallel, never stopped by one bad submission.

    hw5-autograde [ASSIGNMENT] [--student ID ...] [--workers N] [--scheduler ADDRESS]
                  [--force] [--budget fast|full] [--no-sandbox]

The command (``hw5 autograde``): its options, and the set-up every door shares before the
first student (:func:`ready_to_grade`: the sandbox's self-test, the MNIST file, the
canary); then it hands the students of ``submitted/`` (those named, and those already
graded only with ``--force``) to :func:`~graders.grading.grader.run_batch`, and prints and
writes the report. Exit status: 0 when every student was graded, 1 when some failed (a
submission, or a cell of ours for that submission) or could not be verified, 2 when
grading was refused (no data, no working sandbox, a canary that lost points, workers that
cannot grade, or an environment that broke every submission).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from graders.course import course_db_url
from graders.grading import canary
from graders.grading.canary import CanaryCache, run_canary
from graders.grading.data import DataUnavailable, resolve_mnist
from graders.grading.grader import (  # noqa: F401  (re-exported: the batch's building blocks)
    ENVIRONMENT_FAILURE,
    STAGING,
    Grader,
    StudentReport,
    WorkersUnfit,
    default_workers,
    run_batch,
    students_to_grade,
    summarize,
)
from graders.grading.internal_errors import describe

#: Time limits for the full budget: one training on all 60,000 images takes minutes on
#: a 2-core machine (about 1.5 alone, more beside another worker), five of them 10-15.
#: The fast budget keeps the sandbox's defaults (300 s per cell, 900 s per notebook).
FULL_BUDGET_TIMEOUTS = {"cell_timeout_s": 1800, "notebook_timeout_s": 5400}


def budget_timeouts(budget: str) -> dict[str, int]:
    """Default time limits for ``budget`` (explicit ``--cell-timeout`` etc. override them)."""
    return dict(FULL_BUDGET_TIMEOUTS) if budget == "full" else {}


def log_warnings_to_file(root: Path) -> Path:
    """Python warnings (nbgrader's SQLAlchemy ``SAWarning`` tracebacks, above all) go to
    ``.grading/hw5-autograde.log``, not into the middle of the progress bar."""
    import logging

    path = root / STAGING / "hw5-autograde.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    logging.captureWarnings(True)
    logger = logging.getLogger("py.warnings")
    logger.propagate = False
    if not any(getattr(handler, "baseFilename", None) == str(path) for handler in logger.handlers):
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(handler)
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """hw5-autograde's options, which ``hw5 autograde`` shares."""
    from graders.cli import add_course_arguments

    add_course_arguments(parser)
    parser.add_argument(
        "--student",
        nargs="+",
        action="extend",
        metavar="ID",
        help="grade only these students (--student a b, or repeated)",
    )
    parser.add_argument("--workers", type=int, help="local worker processes (default: cores / 2)")
    parser.add_argument("--scheduler", help="address of a Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument("--force", action="store_true", help="regrade students already graded")
    parser.add_argument("--budget", choices=("fast", "full"), default=os.environ.get("HW5_GRADING_BUDGET", "fast"))
    parser.add_argument(
        "--no-sandbox", action="store_true", help="run student code WITHOUT isolation, as this user (never the default)"
    )
    parser.add_argument(
        "--cell-timeout", type=int, help="seconds per cell (default: the sandbox's 300; 1800 with --budget full)"
    )
    parser.add_argument(
        "--notebook-timeout",
        type=int,
        help="seconds per notebook (default: the sandbox's 900; 5400 with --budget full)",
    )
    parser.add_argument("--memory-mb", type=int, help="memory limit per notebook in MiB (default: the sandbox's)")
    parser.add_argument("--report", type=Path, help="also write the per-student report as JSON here")
    parser.add_argument(
        "--no-canary", action="store_true", help="do not grade the reference solution first (not recommended)"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="hw5-autograde", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    root = args.course.resolve()
    log_path = log_warnings_to_file(root)
    if args.no_sandbox:
        print(
            "!" * 78 + "\nWARNING: --no-sandbox: student code runs WITHOUT isolation, as "
            f"{os.environ.get('USER', 'this user')}; it can read the solutions and write the "
            "gradebook.\n" + "!" * 78,
            file=sys.stderr,
        )
    if args.no_canary:
        print(
            "hw5-autograde: WARNING: --no-canary: the reference solution was not graded first; "
            "a broken environment would show only in the students' grades.",
            file=sys.stderr,
        )
    workers = args.workers or default_workers()
    limits = {
        **budget_timeouts(args.budget),
        **{
            key: value
            for key, value in (
                ("cell_timeout_s", args.cell_timeout),
                ("notebook_timeout_s", args.notebook_timeout),
                ("memory_mb", args.memory_mb),
            )
            if value
        },
    }
    try:
        options = ready_to_grade(
            root,
            args.assignment,
            sandbox=not args.no_sandbox,
            budget=args.budget,
            threads=max(1, (os.cpu_count() or 1) // workers),
            limits=limits,
            canary=False,
        )
        students, skipped = students_to_grade(root, args.assignment, args.student, args.force, course_db_url(root))
        if students and not args.no_canary:
            require_canary(root, args.assignment, options)
    except NotReady as refusal:
        print(f"hw5-autograde: refusing to grade: {refusal.details}", file=sys.stderr)
        return 2
    grader = Grader(root, args.assignment, **options)
    try:
        reports = run_batch(grader, students, workers, args.scheduler)
    except WorkersUnfit as unfit:
        print(
            "hw5-autograde: refusing to grade: " + "\n  ".join(["some workers cannot grade:", *unfit.problems]),
            file=sys.stderr,
        )
        return 2
    finally:
        grader.close()
    print(summarize(reports, skipped))
    if log_path.is_file() and log_path.stat().st_size:
        print(f"(library warnings are in {log_path})", file=sys.stderr)
    if args.report:
        args.report.write_text(json.dumps([asdict(r) for r in reports.values()], indent=2))
    if any(r.status == "not graded" for r in reports.values()):
        return 2  # the batch stopped: the environment broke every submission
    return 0 if all(r.status == "graded" and not r.unverified for r in reports.values()) else 1


class NotReady(Exception):
    """This course cannot be graded here: no working sandbox, no data, or a reference
    solution that loses points. ``reason`` is one line; ``details`` says what to do."""

    def __init__(self, reason: str, details: str):
        super().__init__(reason)
        self.reason = reason
        self.details = details


def ready_to_grade(
    root: Path, assignment: str, *, sandbox: bool, budget: str, threads: int, limits: dict, canary: bool = True
) -> dict:
    """Every door's set-up before the first student: the sandbox self-test (the course's
    own files among what it must hide), the data file, then the canary. Returns the
    Grader's options; raises NotReady."""
    if sandbox:
        from graders.sandbox import SandboxError, selftest

        try:
            report = selftest.require_sandbox(sentinels=selftest.default_sentinels() + course_secrets(root))
        except SandboxError as error:
            raise NotReady(
                f"the sandbox does not work here ({str(error).splitlines()[0]})",
                f"the sandbox does not work here:\n  {error}\nFix it (`make setup` as root "
                "installs bubblewrap; see docs/security.md), or pass --no-sandbox to run "
                "student code unisolated, as this user.",
            ) from error
        except Exception as error:  # the self-test itself broke: no sandbox we can trust
            raise NotReady(
                f"the sandbox does not work here ({describe(error)})",
                f"the sandbox self-test itself failed: {describe(error)}",
            ) from error
        print(f"hw5-autograde: {report.summary()}", file=sys.stderr)
    try:
        data_file = course_data_file(root, assignment)
    except DataUnavailable as error:
        raise NotReady(str(error).splitlines()[0], str(error)) from error
    options = dict(sandbox=sandbox, budget=budget, threads=threads, data_file=data_file, limits=limits)
    if canary:
        require_canary(root, assignment, options)
    return options


def require_canary(root: Path, assignment: str, options: dict) -> None:
    """The canary (check_canary) as a NotReady when the reference loses points."""
    refusal = check_canary(root, assignment, options)
    if refusal:
        raise NotReady(
            "the reference solution does not get every point here: " + " ".join(refusal.splitlines()[1:3])[:300],
            refusal,
        )


def course_secrets(root: Path) -> list[str]:
    """The course's files that no sandbox may see (the self-test checks each is absent):
    rootless, the student's code runs as the grader's own uid, so only isolation hides them."""
    return [
        str(root / name)
        for name in ("", "source", "gradebook.db", "submitted", "autograded", "feedback", "nbgrader_config.py")
    ]


def course_data_file(root: Path, assignment: str) -> str | None:
    """The MNIST file the kernels get, found on the host; None for an assignment that
    does not read MNIST (no ``hw5_data.py`` among its files). Raises DataUnavailable."""
    if not (root / "source" / assignment / "hw5_data.py").is_file():
        return os.path.abspath(os.environ["HW5_MNIST_PATH"]) if os.environ.get("HW5_MNIST_PATH") else None
    return str(resolve_mnist(root))


def check_canary(root: Path, assignment: str, options: dict) -> str | None:
    """Grade the reference solution first (cached by content); the refusal, or None."""
    cache = CanaryCache(canary.cache_home())
    # The data file is hashed by content; the thread count changes no verdict.
    extra = {"assignment": assignment, **{k: v for k, v in options.items() if k not in ("data_file", "threads")}}
    key = canary.course_key(root, assignment, extra, options["data_file"], cache)
    result = run_canary(lambda: canary.grade_reference(root, assignment, **options), cache, key)
    if result.ok:
        if not result.cached:
            print(
                f"hw5-autograde: canary: the reference solution got {result.score:g}/{result.max_score:g} "
                f"in {result.seconds:.0f} s",
                file=sys.stderr,
            )
        return None
    return (
        "the reference solution does not get every point "
        "in this environment, so students would lose points that are not theirs to lose.\n" + result.refusal()
    )


if __name__ == "__main__":
    sys.exit(main())
