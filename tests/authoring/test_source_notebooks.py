"""The hand-edited source notebooks: structure, points, hygiene, and solutions equal to the reference."""

from __future__ import annotations

import ast
import re

import nbformat
import pytest

from graders.authoring import reference
from graders.authoring.mock_submissions import cell_index, source_solution
from graders.checks.describe import describe_model
from graders.course import NOTEBOOKS, source_dir

PART_B = source_dir() / "hw5_part_b_cnn.ipynb"
_HEADING_POINTS = re.compile(r"^(#{2,3}) .*\((\d+(?:\.\d+)?) points?\)", re.M)


@pytest.fixture(scope="module", params=NOTEBOOKS)
def notebook(request):
    return nbformat.read(source_dir() / request.param, as_version=4)


def _graded(cell) -> float:
    meta = cell.metadata.get("nbgrader", {})
    return float(meta.get("points", 0)) if meta.get("grade") else 0.0


def test_heading_points_equal_metadata_points(notebook):
    """Each '(N points)' heading equals the points of the graded cells until the next heading of its level."""
    headings = []  # (cell index, level, points)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown":
            for match in _HEADING_POINTS.finditer(cell.source):
                headings.append((index, len(match.group(1)), float(match.group(2))))
    assert headings, "no heading states its points"
    for position, (start, level, stated) in enumerate(headings):
        end = next((index for index, lvl, _ in headings[position + 1 :] if lvl <= level), len(notebook.cells))
        graded = sum(_graded(cell) for cell in notebook.cells[start + 1 : end])
        assert graded == stated, f"heading in cell {start} says {stated} points, cells give {graded}"


def test_part_b_is_worth_20_points():
    notebook = nbformat.read(PART_B, as_version=4)
    assert sum(_graded(cell) for cell in notebook.cells) == 20


def test_todo_text_states_the_points_of_its_test_cells():
    """'**TODO n** (p points)' in the prose equals the points of the test_todo<n>_* cells."""
    notebook = nbformat.read(PART_B, as_version=4)
    cells = cell_index(notebook)
    text = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    stated = {int(n): float(p) for n, p in re.findall(r"\*\*TODO (\d)\*\* \((\d+(?:\.\d+)?) points?\)", text)}
    assert sorted(stated) == [1, 2, 3, 4, 5, 6]
    for todo, points in stated.items():
        cells_points = sum(_graded(c) for gid, c in cells.items() if gid.startswith(f"test_todo{todo}_"))
        assert cells_points == points, f"TODO {todo}: text says {points}, cells give {cells_points}"


def test_no_test_cell_ends_in_an_expression(notebook):
    """nbgrader takes a test cell's last value as its score: every test cell ends in a statement,
    with or without its hidden tests."""
    hidden = re.compile(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\n?", re.S)
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade"):
            for version in (cell.source, hidden.sub("", cell.source)):
                body = ast.parse(version).body
                assert body and not isinstance(body[-1], ast.Expr), f"{meta['grade_id']} ends in an expression"


def test_committed_notebooks_are_clean(notebook):
    assert set(notebook.metadata) <= {"kernelspec", "language_info"}
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    for cell in notebook.cells:
        assert set(cell.metadata) <= {"nbgrader"}, cell.metadata
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_grade_ids_are_unique_and_every_test_cell_has_points(notebook):
    ids = [c.metadata["nbgrader"]["grade_id"] for c in notebook.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids))
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            assert meta.get("points", 0) > 0, meta


def _solution_namespace() -> dict:
    """The names that Part B's given code and solution cells define (no training, no data)."""
    import keras
    from keras import layers
    from keras.optimizers import SGD

    namespace = {"keras": keras, "layers": layers, "SGD": SGD}
    notebook = nbformat.read(PART_B, as_version=4)
    exec(cell_index(notebook)["define_model"].source.split("\n\n\ndefine_model(0.01)")[0], namespace)
    for grade_id in ("todo3", "todo5"):
        exec(source_solution(grade_id), namespace)
    return namespace


@pytest.mark.parametrize(
    "builder, args",
    [
        ("define_model", (0.01,)),
        ("define_model", (1,)),
        ("define_model_with_momentum", (0.01, 0.9)),
        ("define_model_2_conv", (0.01,)),
    ],
)
def test_notebook_solutions_build_the_reference_models(builder, args):
    """The source notebook's code builds exactly graders/authoring/reference.py's models (same config)."""
    namespace = _solution_namespace()
    ours = namespace[builder](*args)
    theirs = getattr(reference, builder)(*args)
    assert describe_model(ours) == describe_model(theirs)
    strip = lambda config: {k: v for k, v in config.items() if k != "name"}  # noqa: E731
    assert [strip(layer.get_config()) for layer in ours.layers] == [
        strip(layer.get_config()) for layer in theirs.layers
    ]
    assert strip(ours.optimizer.get_config()) == strip(theirs.optimizer.get_config())


def test_todo_cells_train_the_runs_of_the_reference():
    """TODO 1, 2, 4, 6 call the builders with the reference runs' arguments."""
    expected_calls = {
        "todo1": "define_model(1)",
        "todo2": "define_model(0.00001)",
        "todo4": "define_model_with_momentum(0.01, 0.9)",
        "todo6": "define_model_2_conv(0.01)",
    }
    for grade_id, call in expected_calls.items():
        text = source_solution(grade_id)
        assert call in text and "batch_size=32, epochs=10" in text, grade_id
    assert reference.RUNS["eta_large"]["learning_rate"] == 1.0
    assert reference.RUNS["eta_small"]["learning_rate"] == 0.00001


def test_every_written_answer_has_a_rubric_holding_its_reference_answer(notebook):
    """Graders see the rubric (a locked mark-scheme cell, stripped from the release) under
    each manually graded answer; it must quote that answer's reference text."""
    cells = cell_index(notebook)
    answers = [gid for gid, c in cells.items() if c.cell_type == "markdown" and c.metadata["nbgrader"].get("grade")]
    assert answers
    for grade_id in answers:
        rubric = cells.get(f"rubric_{grade_id}")
        assert rubric is not None and rubric.metadata["nbgrader"]["locked"], grade_id
        assert "=== BEGIN MARK SCHEME ===" in rubric.source and "=== END MARK SCHEME ===" in rubric.source
        reference = re.sub(r"^\*Reference answer\.\*\s*", "", source_solution(grade_id).strip())
        assert reference in rubric.source, f"rubric_{grade_id} is out of date with {grade_id}"
