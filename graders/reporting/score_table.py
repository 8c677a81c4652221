"""Grades as a plain-text table: one row per student, one column per TODO (``make demo`` prints it)."""

from __future__ import annotations

from collections import OrderedDict

from graders.gradebook import CellGrade

#: Table columns: a label and the prefix of the test cells' grade_ids that it adds up.
COLUMNS = OrderedDict(
    [
        ("TODO1", "test_todo1_"),
        ("TODO2", "test_todo2_"),
        ("TODO3", "test_todo3_"),
        ("TODO4", "test_todo4_"),
        ("TODO5", "test_todo5_"),
        ("TODO6", "test_todo6_"),
        ("A1.1", "test_answer_1_1"),
        ("A3", "test_answer_3_"),
    ]
)


def autograded_points(grades: list[CellGrade]) -> dict[str, float]:
    """grade_id -> points, for the autograded (code) test cells."""
    return {grade.grade_id: grade.score or 0.0 for grade in grades if grade.autograded}


def column_totals(points: dict[str, float]) -> dict[str, float]:
    return {
        label: sum(score for grade_id, score in points.items() if grade_id.startswith(prefix))
        for label, prefix in COLUMNS.items()
    }


def _number(value: float) -> str:
    return f"{value:g}"


def score_table(rows: dict[str, list[CellGrade]], errors: dict[str, str] | None = None) -> str:
    """A plain-text table: one row per student, one column per TODO / autograded problem.

    ``rows``: student -> grades; ``errors``: student -> why grading failed.
    """
    errors = errors or {}
    maxima = {}
    for grades in rows.values():
        for grade in grades:
            if grade.autograded:
                maxima[grade.grade_id] = grade.max_score
    max_columns = column_totals(maxima)
    headers = ["student", *COLUMNS, "auto", "written"]
    lines = [headers, ["(max)", *map(_number, max_columns.values()), _number(sum(maxima.values())), ""]]
    for student, grades in rows.items():
        if student in errors:
            lines.append([student, *(["-"] * len(COLUMNS)), "0", f"ERROR: {errors[student]}"])
            continue
        points = autograded_points(grades)
        pending = sum(1 for grade in grades if grade.needs_manual_grade and not grade.autograded)
        lines.append(
            [
                student,
                *map(_number, column_totals(points).values()),
                _number(sum(points.values())),
                f"{pending} to grade" if pending else "done",
            ]
        )
    widths = [max(len(line[i]) for line in lines if i < len(line)) for i in range(len(headers))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines)
