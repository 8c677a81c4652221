"""The main job: release the assignment, grade the sample class, show and export the grades.

``hw5 demo``, or ``hw5-demo`` (see README, 'The two commands'):
1. regenerate ``release/hw5`` (and record the assignment in the gradebook);
2. write the sample class (graders/authoring/sample_class.py) into ``submitted/``;
3. grade the class with ``hw5-autograde`` (sandboxed, one worker process per student at a time);
4. print a per-student, per-TODO score table and check it against each sample's expected grade;
5. write ``grades.csv`` with ``nbgrader export``.
"""

from __future__ import annotations

import argparse
import json
import sys

from graders.authoring.mock_submissions import autograded_max_points
from graders.authoring.release import refresh_release
from graders.authoring.sample_class import SAMPLE_CLASS
from graders.course import COURSE_ROOT, course_db_url, run_nbgrader
from graders.gradebook import student_grades
from graders.grading import batch
from graders.grading.batch import STAGING
from graders.reporting.score_table import autograded_points, score_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """hw5-demo's options, which ``hw5 demo`` shares."""
    parser.add_argument("--skip-release", action="store_true", help="keep the current release")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="hw5-demo", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    if not args.skip_release:
        print("1. generating the release ...", flush=True)
        refresh_release()
    print("2. writing the sample class into submitted/ ...", flush=True)
    for mock in SAMPLE_CLASS:
        mock.write(COURSE_ROOT / "submitted")
        print(f"   {mock.name}: {mock.intent}")

    print("3. autograding the class: hw5-autograde (sandboxed, each student in a worker) ...", flush=True)
    report_path = COURSE_ROOT / STAGING / "demo-report.json"
    report_path.parent.mkdir(exist_ok=True)
    students = [argument for mock in SAMPLE_CLASS for argument in ("--student", mock.name)]
    code = batch.main(["hw5", "--course", str(COURSE_ROOT), "--force", "--report", str(report_path), *students])
    if code == 2:
        return 2  # no working sandbox: hw5-autograde said why
    reports = {entry["student"]: entry for entry in json.loads(report_path.read_text())}

    db_url = course_db_url()
    rows = {mock.name: student_grades(db_url, mock.name) for mock in SAMPLE_CLASS}
    errors = {name: "; ".join(entry["errors"]) for name, entry in reports.items() if entry["status"] != "graded"}
    print("\n4. autograded points per student (written answers await manual grading):")
    print(score_table(rows, errors))

    maxima = autograded_max_points()
    mismatches = []
    for mock in SAMPLE_CLASS:
        got = autograded_points(rows[mock.name])
        for grade_id, want in mock.expected_points(maxima).items():
            if abs(got.get(grade_id, 0.0) - want) > 1e-9:
                mismatches.append(f"{mock.name}: {grade_id} got {got.get(grade_id, 0.0):g}, expected {want:g}")
    for line in mismatches:
        print("   MISMATCH " + line)

    print("\n5. exporting grades.csv ...", flush=True)
    run_nbgrader(["export", "--to", "grades.csv"])
    print(f"   wrote {COURSE_ROOT / 'grades.csv'}")
    if mismatches or errors:
        print(f"\n{len(mismatches)} grade(s) differ from the expected; {len(errors)} student(s) failed.")
        return 1
    print("\nevery sample submission got exactly its expected grade.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
