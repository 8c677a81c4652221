"""The main job: release the assignment, grade the sample class, show and export the grades.

``hw5-demo`` (see README):
1. regenerate ``release/hw5`` (and record the assignment in the gradebook);
2. write the sample class (graders/sample_class.py) into ``submitted/``;
3. autograde each student in its own process, into ``autograded/``;
4. print a per-student, per-TODO score table and check it against each sample's expected grade;
5. write ``grades.csv`` with ``nbgrader export``.
"""

from __future__ import annotations

import argparse
import sys

from graders.autograde import autograde_student
from graders.course import COURSE_ROOT, course_db_url, run_nbgrader
from graders.release import refresh_release
from graders.sample_class import SAMPLE_CLASS
from graders.scores import autograded_points, score_table, student_grades
from graders.submissions import autograded_max_points


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="hw5-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--skip-release", action="store_true", help="keep the current release")
    args = parser.parse_args(argv)

    if not args.skip_release:
        print("1. generating the release ...", flush=True)
        refresh_release()
    print("2. writing the sample class into submitted/ ...", flush=True)
    for mock in SAMPLE_CLASS:
        mock.write(COURSE_ROOT / "submitted")
        print(f"   {mock.name}: {mock.intent}")

    print("3. autograding, one process per student ...", flush=True)
    outcomes = {}
    for mock in SAMPLE_CLASS:
        outcome = autograde_student(mock.name)
        outcomes[mock.name] = outcome
        status = "ok" if outcome.ok else f"FAILED: {outcome.detail}"
        print(f"   {mock.name}: {outcome.seconds:.1f} s, {status}", flush=True)

    db_url = course_db_url()
    rows = {mock.name: student_grades(db_url, mock.name) for mock in SAMPLE_CLASS}
    errors = {name: o.detail for name, o in outcomes.items() if not o.ok}
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
