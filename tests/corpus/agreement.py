"""Fast against full budget: does the corpus get the same verdicts on all 60,000 images?

    python tests/corpus/agreement.py [--course DIR] [--workers 2] [--hours H] [--summarize-only]
    (make full-agreement)

Every submission of the corpus (the reference, the correct styles, the mutants) carries
the exact points it must get in each test cell: its verdicts under the fast budget,
which ``make mutation-score`` checks. This command grades the corpus with
``hw5-autograde --budget full`` in a course kept at ``--course`` (default
``.full-budget-course/``, git-ignored) and compares each graded submission's points,
cell by cell, with those verdicts.

A full-budget grading takes 7-15 minutes per submission on two cores, so the run is
resumable: ``--hours`` stops it (as Ctrl-C does) once that much time has passed, keeping
every finished grade, and the next run grades only the submissions still waiting.
Every run writes ``calibration/fast-vs-full-corpus.json`` and ``.md``: the submissions
that agree, those that do not (cell, fast points, full points), and those not graded yet.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from corpus.correct_styles import ALL as CORRECT_STYLES  # noqa: E402
from corpus.mutants import MUTANTS  # noqa: E402
from graders.authoring.mock_submissions import autograded_max_points  # noqa: E402
from graders.authoring.sample_class import REFERENCE  # noqa: E402
from graders.course import course_db_url  # noqa: E402
from graders.gradebook import student_grades  # noqa: E402
from graders.reporting.score_table import autograded_points  # noqa: E402


def _loses_a_training_cell(mock) -> bool:
    return any(grade_id.endswith("_training") for grade_id in mock.expected)


#: Graded in this order, so that a run cut short has covered first the submissions whose
#: verdicts depend on training (the reference, then the mutants that lose a training cell).
CORPUS = (REFERENCE, *sorted(MUTANTS, key=lambda mock: not _loses_a_training_cell(mock)), *CORRECT_STYLES)
RECORD = REPO / "calibration" / "fast-vs-full-corpus"
BUDGET_LINE = "HW5 data budget: full"


def prepare(course: Path) -> Path:
    """The full-budget course at ``course``: created (release + every submission) once."""
    from graders.authoring.release import make_scratch_course

    if not (course / "nbgrader_config.py").is_file():
        make_scratch_course(course)
    for mock in CORPUS:
        if not (course / "submitted" / mock.name).exists():
            mock.write(course / "submitted", root=course)
    return course


def waiting(course: Path) -> list[str]:
    """Submissions not yet graded under the full budget, in grading order."""
    return [mock.name for mock in CORPUS if not graded_under_full_budget(course, mock.name)]


def grade(course: Path, workers: int, hours: float | None) -> int:
    """Run hw5-autograde --budget full on the waiting submissions, in order; interrupt it
    (SIGINT: finished grades are kept) after ``hours``."""
    students = [option for name in waiting(course) for option in ("--student", name)]
    if not students:
        return 0
    argv = [
        sys.executable,
        "-m",
        "graders.grading.batch",
        "hw5",
        "--course",
        str(course),
        "--budget",
        "full",
        "--workers",
        str(workers),
        *students,
    ]
    process = subprocess.Popen(argv, cwd=REPO)
    deadline = time.monotonic() + hours * 3600 if hours else None
    while process.poll() is None:
        if deadline and time.monotonic() > deadline:
            print(f"agreement: {hours:g} h passed, interrupting (finished grades are kept)", flush=True)
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=300)
            except subprocess.TimeoutExpired:
                process.kill()
            break
        time.sleep(5)
    return process.wait()


def graded_under_full_budget(course: Path, student: str) -> bool:
    """The graded Part B notebook says which budget its setup cell used."""
    path = course / "autograded" / student / "hw5" / "hw5_part_b_cnn.ipynb"
    return path.is_file() and BUDGET_LINE in path.read_text()


def compare(course: Path) -> dict:
    """Each submission's full-budget points against its fast-budget verdicts."""
    maxima = autograded_max_points(course)
    db_url = course_db_url(course)
    result = {"budget": "full", "submissions": len(CORPUS), "agree": [], "disagree": {}, "pending": []}
    for mock in CORPUS:
        grades = student_grades(db_url, mock.name)
        if not grades or not graded_under_full_budget(course, mock.name):
            result["pending"].append(mock.name)
            continue
        full = autograded_points(grades)
        fast = mock.expected_points(maxima)
        differences = {cell: [fast[cell], full.get(cell, 0.0)] for cell in maxima if fast[cell] != full.get(cell, 0.0)}
        if differences:
            result["disagree"][mock.name] = differences
        else:
            result["agree"].append(mock.name)
    return result


def write_record(result: dict) -> None:
    RECORD.parent.mkdir(exist_ok=True)
    RECORD.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    graded = len(result["agree"]) + len(result["disagree"])
    lines = [
        "# Fast against full budget: the corpus's verdicts",
        "",
        "Generated by `python tests/corpus/agreement.py` (`make full-agreement`). Each submission",
        "is graded with `hw5-autograde --budget full` (all 60,000 training and 10,000 test",
        "images) and its points per test cell are compared with its fast-budget verdicts.",
        "",
        f"Graded under the full budget: {graded} of {result['submissions']} submissions; "
        f"{len(result['agree'])} agree on every test cell, {len(result['disagree'])} do not.",
        "",
        "| submission | verdict |",
        "| --- | --- |",
    ]
    lines += [f"| {name} | agrees on every test cell |" for name in result["agree"]]
    for name, cells in result["disagree"].items():
        detail = "; ".join(f"{cell}: fast {a:g}, full {b:g}" for cell, (a, b) in cells.items())
        lines.append(f"| {name} | **differs**: {detail} |")
    lines += [f"| {name} | not graded yet |" for name in result["pending"]]
    RECORD.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--course", type=Path, default=REPO / ".full-budget-course")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--hours", type=float, help="stop grading after this long (resumable)")
    parser.add_argument("--summarize-only", action="store_true", help="compare what is graded; grade nothing")
    args = parser.parse_args(argv)

    course = prepare(args.course.resolve())
    if not args.summarize_only:
        grade(course, args.workers, args.hours)
    result = compare(course)
    write_record(result)
    graded = len(result["agree"]) + len(result["disagree"])
    print(
        f"full budget: {graded}/{result['submissions']} graded, {len(result['agree'])} agree, "
        f"{len(result['disagree'])} differ {sorted(result['disagree'])}, {len(result['pending'])} pending"
    )
    print(f"recorded in {RECORD.with_suffix('.md').relative_to(REPO)}")
    return 1 if result["disagree"] else 0


if __name__ == "__main__":
    sys.exit(main())
