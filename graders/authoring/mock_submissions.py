"""Mock submissions: a student's notebooks described as edits of the release.

A mock is named by intent and carries the exact points it must get in every
autograded test cell. Its notebooks are the released ones with some solution
cells filled in: with the source notebook's own solution (:data:`SOLUTION`), or
with the source solution edited (:func:`edited`), or with any text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from graders.course import ASSIGNMENT, COURSE_ROOT, NOTEBOOKS, release_dir, source_dir

#: Fill a solution cell with the source notebook's solution.
SOLUTION = object()

_SOLUTION_MARKERS = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.M)


def cell_index(notebook) -> dict[str, nbformat.NotebookNode]:
    """grade_id -> cell, for the cells that carry nbgrader metadata."""
    return {
        cell.metadata["nbgrader"]["grade_id"]: cell
        for cell in notebook.cells
        if cell.metadata.get("nbgrader", {}).get("grade_id")
    }


def source_solution(grade_id: str, root: Path = COURSE_ROOT) -> str:
    """The source notebook's solution for a cell, without the BEGIN/END SOLUTION lines."""
    for name in NOTEBOOKS:
        path = source_dir(root) / name
        if path.exists():
            cells = cell_index(nbformat.read(path, as_version=4))
            if grade_id in cells:
                return _SOLUTION_MARKERS.sub("", cells[grade_id].source)
    raise KeyError(f"No source cell has grade_id {grade_id!r}")


@dataclass(frozen=True)
class Edit:
    """The source solution of a cell with ``old`` replaced by ``new`` (``old`` must occur)."""

    old: str
    new: str
    count: int = 1

    def apply(self, grade_id: str, root: Path) -> str:
        text = source_solution(grade_id, root)
        if self.old not in text:
            raise ValueError(f"{grade_id}: {self.old!r} does not occur in the source solution")
        return text.replace(self.old, self.new, self.count)


def edited(old: str, new: str, count: int = 1) -> Edit:
    return Edit(old, new, count)


@dataclass(frozen=True)
class MockSubmission:
    """One student's submission, described by intent.

    ``cells`` maps a solution cell's grade_id to :data:`SOLUTION`, an :class:`Edit`
    or literal source. ``expected`` maps every autograded test cell's grade_id to
    the points this submission must get; cells not named get ``default_points``
    (``"full"`` or ``0``). ``extra_cells`` appends code cells (grade_id -> source)
    after a cell, to model extra prints and plots.
    """

    name: str
    intent: str
    cells: dict = field(default_factory=dict)
    expected: dict = field(default_factory=dict)
    default_points: str | float = 0
    after_cells: dict = field(default_factory=dict)

    def cell_sources(self, root: Path = COURSE_ROOT) -> dict[str, str]:
        sources = {}
        for grade_id, content in self.cells.items():
            if content is SOLUTION:
                sources[grade_id] = source_solution(grade_id, root)
            elif isinstance(content, Edit):
                sources[grade_id] = content.apply(grade_id, root)
            else:
                sources[grade_id] = content
        return sources

    def expected_points(self, max_points: dict[str, float]) -> dict[str, float]:
        points = {}
        for grade_id, maximum in max_points.items():
            if grade_id in self.expected:
                points[grade_id] = float(self.expected[grade_id])
            else:
                points[grade_id] = float(maximum) if self.default_points == "full" else float(self.default_points)
        return points

    def write(self, submitted_root: Path, root: Path = COURSE_ROOT) -> Path:
        """Write the notebooks into ``submitted_root/<name>/hw5/``; returns that folder."""
        target = submitted_root / self.name / ASSIGNMENT
        target.mkdir(parents=True, exist_ok=True)
        sources = self.cell_sources(root)
        used = set()
        for name in NOTEBOOKS:
            notebook = nbformat.read(release_dir(root) / name, as_version=4)
            cells = cell_index(notebook)
            for grade_id, text in sources.items():
                if grade_id in cells:
                    cells[grade_id].source = text
                    used.add(grade_id)
            for anchor, text in self.after_cells.items():
                if anchor in cells:
                    position = notebook.cells.index(cells[anchor]) + 1
                    notebook.cells.insert(position, nbformat.v4.new_code_cell(text))
                    used.add(anchor)
            nbformat.write(notebook, target / name)
        unknown = (set(sources) | set(self.after_cells)) - used
        if unknown:
            raise KeyError(f"{self.name}: no released cell has grade_id {sorted(unknown)}")
        return target


def autograded_max_points(root: Path = COURSE_ROOT) -> dict[str, float]:
    """grade_id -> points of every autograded test cell, from the source notebooks."""
    points = {}
    for name in NOTEBOOKS:
        for grade_id, cell in cell_index(nbformat.read(source_dir(root) / name, as_version=4)).items():
            meta = cell.metadata["nbgrader"]
            if meta.get("grade") and not meta.get("solution"):
                points[grade_id] = float(meta["points"])
    return points
