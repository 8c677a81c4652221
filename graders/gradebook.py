"""Every read and write of nbgrader's gradebook, in one place, with one record type.

The gradebook (``CourseDirectory.db_url``: SQLite by default, PostgreSQL where
configured) is written only by the orchestrator of ``hw5-autograde`` (through nbgrader's
autograde) and by instructors in Formgrader. Everything else reads it through here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CellGrade:
    """One graded cell of one student's submission.

    ``score`` is nbgrader's (the manual score where one was set, else the automatic one);
    ``manual_score`` is what an instructor typed, if anything; ``comment`` the manual
    comment, else the automatic one.
    """

    notebook: str
    grade_id: str
    autograded: bool  # a code cell: nbgrader scored it
    score: float | None
    max_score: float
    needs_manual_grade: bool
    manual_score: float | None = None
    comment: str = ""
    column: str = ""  # the report column it adds to (set by graders.reporting.exports)


@dataclass(frozen=True)
class GradedCell:
    """A graded cell of the assignment itself (no student): the layout of the gradebook."""

    notebook: str
    grade_id: str
    autograded: bool
    max_score: float


@dataclass
class StudentGrades:
    """A student of the gradebook and, when they submitted, their cell grades by (notebook, grade_id)."""

    student: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    submitted: bool = False
    cells: dict = None  # (notebook, grade_id) -> CellGrade

    def __post_init__(self):
        self.cells = self.cells or {}


def _open(db_url: str):
    from nbgrader.api import Gradebook

    return Gradebook(db_url)


def _cell_grade(notebook: str, grade, comments: dict[str, str]) -> CellGrade:
    return CellGrade(
        notebook=notebook,
        grade_id=grade.name,
        autograded=grade.cell_type == "code",
        score=None if grade.score is None else float(grade.score),
        max_score=float(grade.max_score),
        needs_manual_grade=bool(grade.needs_manual_grade),
        manual_score=None if grade.manual_score is None else float(grade.manual_score),
        comment=comments.get(grade.name, ""),
    )


def _comments(submission_notebook) -> dict[str, str]:
    return {c.name: (c.manual_comment or c.auto_comment or "") for c in submission_notebook.comments}


# -- reading --------------------------------------------------------------------------------------


def student_grades(db_url: str, student: str, assignment: str = "hw5") -> list[CellGrade]:
    """Every graded cell of the student's submission; empty if none was recorded."""
    from nbgrader.api import MissingEntry

    with _open(db_url) as gradebook:
        try:
            submission = gradebook.find_submission(assignment, student)
        except MissingEntry:
            return []
        return [
            _cell_grade(notebook.name, grade, _comments(notebook))
            for notebook in submission.notebooks
            for grade in notebook.grades
        ]


def notebook_grades(db_url: str, assignment: str, notebook: str, student: str) -> dict[str, CellGrade]:
    """grade_id -> CellGrade of one submitted notebook (empty if it is not in the gradebook)."""
    from nbgrader.api import MissingEntry

    with _open(db_url) as gradebook:
        try:
            submission = gradebook.find_submission_notebook(notebook, assignment, student)
        except MissingEntry:
            return {}
        comments = _comments(submission)
        return {g.name: _cell_grade(notebook, g, comments) for g in submission.grades}


def autograded_total(db_url: str, assignment: str, student: str) -> tuple[float, float]:
    """(points, maximum) of the student's autograded (code) cells."""
    grades = [g for g in student_grades(db_url, student, assignment) if g.autograded]
    return float(sum(g.score or 0 for g in grades)), float(sum(g.max_score for g in grades))


def has_submission(db_url: str, assignment: str, student: str) -> bool:
    from nbgrader.api import MissingEntry

    with _open(db_url) as gradebook:
        try:
            gradebook.find_submission(assignment, student)
        except MissingEntry:
            return False
        return True


def assignment_layout(db_url: str, assignment: str) -> list[GradedCell]:
    """Every graded cell (test cells and manually graded answers) of the assignment, in order."""
    with _open(db_url) as gradebook:
        cells = []
        for notebook in gradebook.find_assignment(assignment).notebooks:
            for cell in notebook.grade_cells:
                cells.append(GradedCell(notebook.name, cell.name, cell.cell_type == "code", float(cell.max_score)))
            for cell in notebook.task_cells:
                cells.append(GradedCell(notebook.name, cell.name, False, float(cell.max_score)))
        return cells


def class_grades(db_url: str, assignment: str) -> list[StudentGrades]:
    """Every student of the gradebook, with their grades when they submitted."""
    from nbgrader.api import MissingEntry

    records = []
    with _open(db_url) as gradebook:
        for student in sorted(gradebook.students, key=lambda s: s.id):
            record = StudentGrades(student.id, student.first_name or "", student.last_name or "", student.email or "")
            try:
                submission = gradebook.find_submission(assignment, student.id)
            except MissingEntry:
                records.append(record)
                continue
            record.submitted = True
            for notebook in submission.notebooks:
                comments = _comments(notebook)
                for grade in notebook.grades:
                    record.cells[(notebook.name, grade.name)] = _cell_grade(notebook.name, grade, comments)
            records.append(record)
    return records


def export_csv(db_url: str, target: Path) -> Path:
    """nbgrader's own CSV export (what ``nbgrader export --to target`` writes)."""
    from nbgrader.plugins import CsvExportPlugin

    target.parent.mkdir(parents=True, exist_ok=True)
    with _open(db_url) as gradebook:
        CsvExportPlugin(to=str(target)).export(gradebook)
    return target


# -- manual scores on autograded cells ------------------------------------------------------------


def manual_scores(db_url: str, assignment: str) -> dict:
    """(student, notebook, grade_id) -> manual_score of every autograded (code) cell."""
    from nbgrader.api import MissingEntry

    with _open(db_url) as gradebook:
        try:
            submissions = gradebook.find_assignment(assignment).submissions
        except MissingEntry:
            return {}
        return {
            (sub.student.id, nb.name, g.name): g.manual_score
            for sub in submissions
            for nb in sub.notebooks
            for g in nb.grades
            if g.cell_type == "code"
        }


def reset_forged_manual_scores(db_url, assignment, before: dict, students=None) -> dict[str, list[str]]:
    """No autograded cell may carry a manual score that no instructor set before this run.

    ``before``: :func:`manual_scores` taken before any student code ran (an unsandboxed
    kernel can write the gradebook while it runs). Checks ``students`` (default: all);
    returns student -> what was reset.
    """
    from nbgrader.api import MissingEntry

    forged: dict[str, list[str]] = {}
    with _open(db_url) as gradebook:
        try:
            submissions = (
                gradebook.find_assignment(assignment).submissions
                if students is None
                else [gradebook.find_submission(assignment, student) for student in students]
            )
        except MissingEntry:
            return forged
        for submission in submissions:
            student = submission.student.id
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    key = (student, notebook.name, grade.name)
                    if grade.cell_type == "code" and grade.manual_score is not None and before.get(key) is None:
                        forged.setdefault(student, []).append(
                            f"{notebook.name}/{grade.name}: manual score {grade.manual_score} reset "
                            "(written while student code ran)"
                        )
                        grade.manual_score = None
        gradebook.db.commit()
    return forged
