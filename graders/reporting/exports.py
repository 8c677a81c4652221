"""Export grades: nbgrader's CSV, an LMS gradebook CSV, and Gradescope ``results.json`` files.

    hw5-export [ASSIGNMENT] [--course ROOT] [--out DIR] [--report FILE]

Writes into ``--out`` (default ``reports/`` in the course root, which git ignores):

- ``nbgrader-grades.csv``: nbgrader's own export (``nbgrader export``), one row per
  student and assignment;
- ``lms-grades.csv``: one row per student, one column per part of HW5, and the total:
  ``Part A auto``, ``Part A manual``, ``Part B 1`` ... ``Part B 4`` (the notebook's four
  sections: each section's TODO tests and its question), ``Total``; then
  ``Pending manual`` (answers still to be graded by hand) and ``Status``. Each score
  column's header carries its maximum, e.g. ``Part B 2 (5)``;
- ``canvas-grades.csv``: a Canvas gradebook import (Canvas's identity columns, then one
  column for the assignment holding each student's total);
- ``gradescope/<student>/results.json``: Gradescope's autograder results format
  (https://gradescope-autograders.readthedocs.io/en/latest/specs/): one test per graded
  cell, its output the test's failure message.

``--report`` is the JSON that ``hw5-autograde --report`` wrote: grading time goes into
``execution_time``, and grading errors into the submission's ``output``.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.plugins import ExportPlugin
from traitlets import Unicode

from graders import gradebook
from graders.course import course_db_url
from graders.gradebook import CellGrade
from graders.reporting.feedback import CellOutcome, budget_line, cell_outcomes

#: Columns of the LMS export, in order: (label, part letter for Gradescope numbering).
PART_COLUMNS = OrderedDict(
    [
        ("Part A auto", "A"),
        ("Part A manual", "A"),
        ("Part B 1", "B1"),
        ("Part B 2", "B2"),
        ("Part B 3", "B3"),
        ("Part B 4", "B4"),
    ]
)
#: Part B's sections: TODO n -> section, Question n -> section n.
_TODO_SECTION = {1: 2, 2: 2, 3: 3, 4: 3, 5: 4, 6: 4}


def column_of(notebook: str, grade_id: str, autograded: bool) -> str:
    """The LMS column a graded cell adds to. Other assignments (e.g. a test course) get
    one column per notebook and kind."""
    if notebook == "hw5_part_a_written":
        return "Part A auto" if autograded else "Part A manual"
    if notebook == "hw5_part_b_cnn":
        todo = re.match(r"test_todo(\d)_", grade_id)
        if todo and int(todo.group(1)) in _TODO_SECTION:
            return f"Part B {_TODO_SECTION[int(todo.group(1))]}"
        question = re.fullmatch(r"answer_q([1-4])", grade_id)
        if question:
            return f"Part B {question.group(1)}"
        raise KeyError(f"{notebook}/{grade_id}: no LMS column for this cell; add it to graders/reporting/exports.py")
    return f"{notebook} {'auto' if autograded else 'manual'}"


@dataclass
class StudentRecord:
    student: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    submitted: bool = False
    cells: list[CellGrade] = field(default_factory=list)
    outcomes: dict = field(default_factory=dict)  # (notebook, grade_id) -> CellOutcome
    descriptions: dict = field(default_factory=dict)  # (notebook, grade_id) -> the test's first comment
    budget: str | None = None
    report: dict | None = None  # this student's entry of hw5-autograde --report

    @property
    def total(self) -> float:
        return sum(cell.score for cell in self.cells)

    @property
    def max_total(self) -> float:
        return sum(cell.max_score for cell in self.cells)

    @property
    def pending(self) -> list[CellGrade]:
        return [cell for cell in self.cells if cell.needs_manual_grade]

    def columns(self) -> OrderedDict:
        """label -> (score, max)."""
        totals = OrderedDict()
        for cell in self.cells:
            score, maximum = totals.get(cell.column, (0.0, 0.0))
            totals[cell.column] = (score + cell.score, maximum + cell.max_score)
        return totals


def _description(cell) -> str:
    first = cell.source.split("\n", 1)[0].strip()
    if not first.startswith("#"):
        return ""
    return re.sub(r"^#+\s*(Visible test:\s*|Checks that\s*)?", "", first).strip()


def load_report(path: Path | None) -> dict[str, dict]:
    if not path:
        return {}
    return {entry["student"]: entry for entry in json.loads(Path(path).read_text())}


def collect(root: Path, assignment: str = "hw5", report: Path | None = None) -> list[StudentRecord]:
    """Every student of the gradebook with their grades, test outcomes and grading report."""
    reports = load_report(report)
    db_url = course_db_url(root)
    layout = gradebook.assignment_layout(db_url, assignment)
    students = {s.student: s for s in gradebook.class_grades(db_url, assignment)}
    records = []
    for student_id in sorted(set(students) | set(reports)):
        known = students.get(student_id) or gradebook.StudentGrades(student_id)
        record = StudentRecord(
            student_id, known.first_name, known.last_name, known.email, known.submitted, report=reports.get(student_id)
        )
        for cell in layout:
            grade = known.cells.get((cell.notebook, cell.grade_id))
            record.cells.append(
                CellGrade(
                    notebook=cell.notebook,
                    grade_id=cell.grade_id,
                    autograded=cell.autograded,
                    score=float(grade.score or 0) if grade is not None else 0.0,
                    max_score=cell.max_score,
                    needs_manual_grade=grade.needs_manual_grade if grade is not None else False,
                    manual_score=grade.manual_score if grade is not None else None,
                    comment=grade.comment if grade is not None else "",
                    column=column_of(cell.notebook, cell.grade_id, cell.autograded),
                )
            )
        folder = root / "autograded" / student_id / assignment
        for path in sorted(folder.glob("*.ipynb")) if folder.is_dir() else ():
            try:
                notebook = nbformat.read(path, as_version=4)
            except Exception:
                continue
            record.budget = record.budget or budget_line(notebook)
            for outcome in cell_outcomes(notebook, path.stem):
                record.outcomes[(path.stem, outcome.grade_id)] = outcome
            for cell in notebook.cells:
                grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                if grade_id and cell.cell_type == "code":
                    record.descriptions[(path.stem, grade_id)] = _description(cell)
        records.append(record)
    return records


# -- nbgrader's CSV -----------------------------------------------------------------------------


def nbgrader_csv(root: Path, target: Path) -> Path:
    """nbgrader's own CSV export (what ``nbgrader export --to target`` writes)."""
    return gradebook.export_csv(course_db_url(root), target)


# -- the LMS CSV --------------------------------------------------------------------------------


def _number(value: float) -> str:
    return f"{round(value, 4):g}"


def lms_columns(records: list[StudentRecord]) -> OrderedDict:
    """label -> max points, in export order."""
    maxima = OrderedDict((label, None) for label in PART_COLUMNS)
    for record in records[:1]:
        for label, (_, maximum) in record.columns().items():
            maxima[label] = maximum
    return OrderedDict((label, maximum) for label, maximum in maxima.items() if maximum is not None)


def lms_rows(records: list[StudentRecord]) -> tuple[list[str], list[list[str]]]:
    columns = lms_columns(records)
    total_max = sum(columns.values())
    header = [
        "Student ID",
        "Last name",
        "First name",
        "Email",
        *(f"{label} ({_number(maximum)})" for label, maximum in columns.items()),
        f"Total ({_number(total_max)})",
        "Pending manual",
        "Status",
    ]
    rows = []
    for record in records:
        scores = record.columns()
        values = [scores.get(label, (0.0, 0.0))[0] for label in columns]
        if not record.submitted:
            status = "no submission"
        elif record.report and record.report.get("status") not in (None, "graded"):
            status = f"grading {record.report['status']}"
        elif record.pending:
            status = "awaiting manual grading"
        else:
            status = "complete"
        rows.append(
            [
                record.student,
                record.last_name,
                record.first_name,
                record.email,
                *map(_number, values),
                _number(sum(values)),
                str(len(record.pending)),
                status,
            ]
        )
    return header, rows


def write_csv(target: Path, header: list[str], rows: list[list[str]]) -> Path:
    """A CSV file of ``header`` then ``rows`` (UTF-8, the csv module's quoting)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return target


def lms_csv(records: list[StudentRecord], target: Path) -> Path:
    return write_csv(target, *lms_rows(records))


# -- the Canvas gradebook import ----------------------------------------------------------------

#: The identity columns Canvas's gradebook import reads, in the order its own export writes
#: them; one column per assignment follows ("Name" or "Name (Canvas assignment id)").
CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
CANVAS_POINTS_ROW = "    Points Possible"


def canvas_rows(records: list[StudentRecord], title: str, canvas_id: str | None = None):
    """(header, rows) of a Canvas gradebook import: one assignment column holding each
    student's total; the nbgrader student id is the SIS Login ID Canvas matches on."""
    columns = lms_columns(records)
    column = f"{title} ({canvas_id})" if canvas_id else title
    rows = [[CANVAS_POINTS_ROW, "", "", "", "", _number(sum(columns.values()))]]
    for record in records:
        name = ", ".join(part for part in (record.last_name, record.first_name) if part) or record.student
        total = sum(score for score, _ in record.columns().values())
        rows.append([name, "", "", record.student, "", _number(total) if record.submitted else ""])
    return [*CANVAS_COLUMNS, column], rows


def canvas_csv(records: list[StudentRecord], target: Path, title: str, canvas_id: str | None = None) -> Path:
    return write_csv(target, *canvas_rows(records, title, canvas_id))


# -- nbgrader export plugins --------------------------------------------------------------------


class _CoursePlugin(ExportPlugin):
    """The course's records for ``nbgrader export --exporter ...`` (its ``--assignment`` and
    ``--student`` filters honoured; HW5 when no assignment is named)."""

    def records(self) -> tuple[Path, str, list[StudentRecord]]:
        root = Path(self.config.CourseDirectory.root or Path.cwd()).resolve()
        assignment = self.assignment[0] if self.assignment else "hw5"
        records = collect(root, assignment)
        return root, assignment, [r for r in records if not self.student or r.student in self.student]


class LmsExportPlugin(_CoursePlugin):
    """``nbgrader export --exporter graders.reporting.exports.LmsExportPlugin [--to FILE]``:
    the LMS CSV (default ``lms-grades.csv``)."""

    def export(self, gradebook) -> None:
        _, _, records = self.records()
        self.log.info("wrote %s", lms_csv(records, Path(self.to or "lms-grades.csv")))


class CanvasExportPlugin(_CoursePlugin):
    """``nbgrader export --exporter graders.reporting.exports.CanvasExportPlugin [--to FILE]``:
    a Canvas gradebook import (default ``canvas-grades.csv``). ``--CanvasExportPlugin.canvas_id``
    names the Canvas assignment to fill; without it Canvas creates a new one."""

    canvas_id = Unicode("", help="the Canvas assignment id (the number in its URL)").tag(config=True)

    def export(self, gradebook) -> None:
        _, assignment, records = self.records()
        target = canvas_csv(records, Path(self.to or "canvas-grades.csv"), assignment.upper(), self.canvas_id or None)
        self.log.info("wrote %s", target)


# -- Gradescope results.json --------------------------------------------------------------------

#: Gradescope's visibility values (https://gradescope-autograders.readthedocs.io/en/latest/specs/).
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")


def gradescope_results(record: StudentRecord) -> dict:
    """One submission in Gradescope's autograder ``results.json`` format."""
    tests, counters = [], {}
    for cell in record.cells:
        part = PART_COLUMNS.get(cell.column, cell.notebook)
        counters[part] = counters.get(part, 0) + 1
        key = (cell.notebook, cell.grade_id)
        description = record.descriptions.get(key, "")
        name = f"{cell.grade_id}: {description}" if description else cell.grade_id
        test = {
            "score": round(cell.score, 4),
            "max_score": cell.max_score,
            "name": name,
            "number": f"{part}.{counters[part]}",
            "visibility": "visible",
            "tags": [cell.column, "autograded" if cell.autograded else "manual"],
        }
        if cell.autograded:
            outcome: CellOutcome | None = record.outcomes.get(key)
            if outcome is None:
                test["status"], test["output"] = (
                    "failed",
                    "Not run: the notebook could not be graded (see the course staff).",
                )
            else:
                test["status"] = "passed" if outcome.passed else "failed"
                test["output"] = outcome.message if not outcome.passed else (outcome.output or "Passed.")
        else:
            test["output"] = (
                "Awaiting grading by hand."
                if cell.needs_manual_grade
                else f"Graded by hand: {cell.score:g} / {cell.max_score:g}."
            )
        tests.append(test)
    lines = [record.budget or "HW5 data budget: unknown (the setup cell did not run)"]
    autograded = [c for c in record.cells if c.autograded]
    lines.append(
        f"Autograded tests: {sum(c.score for c in autograded):g} / {sum(c.max_score for c in autograded):g} points."
    )
    if record.pending:
        lines.append(
            f"{len(record.pending)} written answer(s) await grading by hand; the score rises when they are graded."
        )
    for error in (record.report or {}).get("errors", []):
        lines.append(f"Grading problem: {error}")
    results = {
        "score": round(sum(test["score"] for test in tests), 4),
        "output": "\n".join(lines),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }
    if record.report and record.report.get("seconds") is not None:
        results["execution_time"] = int(round(record.report["seconds"]))
    return results


def write_gradescope(records: list[StudentRecord], folder: Path) -> list[Path]:
    written = []
    for record in records:
        if not record.submitted:
            continue
        target = folder / record.student / "results.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(gradescope_results(record), indent=2))
        written.append(target)
    return written


def export_all(root: Path, assignment: str, out: Path, report: Path | None = None) -> dict[str, object]:
    records = collect(root, assignment, report)
    return {
        "nbgrader": nbgrader_csv(root, out / "nbgrader-grades.csv"),
        "lms": lms_csv(records, out / "lms-grades.csv"),
        "canvas": canvas_csv(records, out / "canvas-grades.csv", assignment.upper()),
        "gradescope": write_gradescope(records, out / "gradescope"),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """hw5-export's options, which ``hw5 export`` shares."""
    from graders.cli import add_course_arguments

    add_course_arguments(parser)
    parser.add_argument("--out", type=Path, help="output folder (default: COURSE/reports)")
    parser.add_argument("--report", type=Path, help="the JSON report of hw5-autograde --report")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="hw5-export", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    root = args.course.resolve()
    out = args.out or root / "reports"
    written = export_all(root, args.assignment, out, args.report)
    print(f"wrote {written['nbgrader']}")
    print(f"wrote {written['lms']}")
    print(f"wrote {written['canvas']}")
    print(f"wrote {len(written['gradescope'])} Gradescope results.json under {out / 'gradescope'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
