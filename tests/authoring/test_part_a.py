"""Part A (written problems): the source notebook, its answer key and its checks.

Fast: no notebook is executed by a kernel; cells are read with nbformat and the few
code cells that are needed are exec'd here.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the checks import as ``graders.checks...``
    sys.path.insert(0, str(ROOT))

from graders.checks.failures import GradingFailure  # noqa: E402
from graders.checks.written_checks import (  # noqa: E402
    check_choice,
    check_convolution,
    check_max_pool,
    cross_correlate,
    keras_conv2d,
    max_pool,
)

NOTEBOOK = ROOT / "source" / "hw5" / "hw5_part_a_written.ipynb"
KEY = ROOT / "graders" / "checks" / "written_key.json"
LETTERS = ("A", "B", "C", "D")


@pytest.fixture(scope="module")
def nb():
    return nbformat.read(NOTEBOOK, as_version=4)


def _cell(nb, grade_id):
    found = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    assert len(found) == 1, f"expected one cell with grade_id {grade_id!r}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def key():
    return json.loads(KEY.read_text(encoding="utf-8"))["choices"]


@pytest.fixture(scope="module")
def data(nb):
    """The image and kernel exactly as the notebook's locked data cell defines them."""
    namespace = {"np": np}
    exec(_cell(nb, "problem_3_data").source, namespace)
    return namespace["image"], namespace["kernel"]


@pytest.fixture(scope="module")
def solution(nb):
    """The variables that the source notebook's own solution cells define."""
    namespace = {"np": np}
    for grade_id in ("setup_part_a", "problem_3_data", "answer_1_1", "answer_3"):
        exec(_cell(nb, grade_id).source, namespace)
    return namespace


def _options(nb):
    """Option letter -> option text, from the markdown cell of Problem 1.1."""
    (question,) = [c for c in nb.cells if c.cell_type == "markdown" and "## Problem 1.1" in c.source]
    return dict(re.findall(r"^\* \*\*([A-Z])\.\*\* (.+)$", question.source, flags=re.M))


def _failure(check, *args) -> str:
    with pytest.raises(GradingFailure) as info:
        check(*args)
    return str(info.value)


# --- the notebook's structure --------------------------------------------------


def test_heading_points_equal_graded_cell_points(nb):
    """Does every '## ... (N points)' heading equal the points of the graded cells under it?"""
    headings = []  # [title, stated points, summed points]
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("## "):
                    match = re.search(r"\((\d+) points?\)\s*$", line)
                    headings.append([line, int(match.group(1)) if match else None, 0])
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            assert headings, f"graded cell {meta['grade_id']} comes before any ## heading"
            headings[-1][2] += meta["points"]
    stated = [(title, points, total) for title, points, total in headings if points is not None]
    assert len(stated) == 6, headings
    for title, points, total in stated:
        assert points == total, f"{title!r} states {points} points; its graded cells hold {total}"


def test_total_in_intro_table_matches_metadata(nb):
    total = sum(
        c.metadata.get("nbgrader", {}).get("points", 0) for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")
    )
    assert f"| **{total}** |" in nb.cells[0].source


def test_setup_cell_imports_numpy_only(nb):
    source = _cell(nb, "setup_part_a").source
    assert "import numpy as np" in source
    assert "tensorflow" not in source.lower() and "keras" not in source.lower()


def test_no_graded_cell_ends_in_a_value(nb):
    """nbgrader takes a test cell's last value as its score: a cell must end in a statement or a check call."""
    checks = {"check_choice", "check_convolution", "check_max_pool"}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade"):
            continue
        last = ast.parse(cell.source).body[-1]
        if isinstance(last, ast.Expr):
            assert isinstance(last.value, ast.Call) and getattr(last.value.func, "id", None) in checks, (
                f"{meta['grade_id']} ends in a bare expression"
            )


def test_public_checks_return_none(solution, data):
    image, kernel = data
    assert check_choice("1.1", solution["answer_1_1"]) is None
    assert check_convolution(image, kernel, solution["answer_3_conv"]) is None
    assert check_max_pool(solution["answer_3_conv"], solution["answer_3_pool"]) is None


def test_committed_notebook_is_clean(nb):
    assert nb.metadata.kernelspec == {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    for cell in nb.cells:
        assert set(cell.metadata) <= {"nbgrader"}, cell.metadata
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


# --- the multiple-choice key ---------------------------------------------------


def test_key_matches_notebook_options(nb, key):
    """Is the key's letter the option that holds the linear layer's output, and only that one?"""
    options = _options(nb)
    entry = key["1.1"]
    assert sorted(options) == sorted(entry["options"]) == list(LETTERS)
    holding = [letter for letter, text in options.items() if entry["correct_text"] in text]
    # the softmax distractor wraps the same expression; the right option is the one that *is* it
    exact = [letter for letter in holding if f"`{entry['correct_text']}`" in options[letter]]
    assert exact == [entry["answer"]], (options, entry["answer"])
    assert entry["answer"] != "C", "the original homework's letter; pick another"


def test_solution_cell_uses_the_key(nb, key, solution):
    assert solution["answer_1_1"] == key["1.1"]["answer"]


def test_answer_letter_absent_from_hidden_tests(nb, key):
    letter = key["1.1"]["answer"]
    source = _cell(nb, "test_answer_1_1").source
    assert f'"{letter}"' not in source and f"'{letter}'" not in source
    hidden = source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]
    assert hidden.strip().splitlines() == [
        "from graders.checks.written_checks import check_choice",
        'check_choice("1.1", answer_1_1)',
    ]


def test_check_choice_rejects_the_three_wrong_letters(key):
    right = key["1.1"]["answer"]
    wrong = [letter for letter in LETTERS if letter != right]
    assert len(wrong) == 3
    for letter in wrong:
        message = _failure(check_choice, "1.1", letter)
        assert f"Option {letter} is not the right answer" in message
        assert right not in message.replace(f"Option {letter}", ""), "the message gives the answer away"
    check_choice("1.1", right)


def test_check_choice_accepts_lowercase_and_spaces(key):
    check_choice("1.1", key["1.1"]["answer"].lower())
    check_choice("1.1", f" {key['1.1']['answer']} ")


@pytest.mark.parametrize("bad", ["?", "E", "AB", "", 2, None])
def test_check_choice_rejects_malformed(bad):
    message = _failure(check_choice, "1.1", bad)
    assert "1.1" in message


# --- the convolution -----------------------------------------------------------


def test_numpy_convolution_matches_keras_conv2d(data):
    """Does the grader's NumPy cross-correlation equal Keras's Conv2D on the notebook's own data?"""
    image, kernel = data
    expected = cross_correlate(image, kernel)
    assert expected.shape == (4, 4)
    np.testing.assert_allclose(keras_conv2d(image, kernel), expected, atol=1e-5)


def test_numpy_convolution_matches_keras_on_a_non_square_case():
    rng = np.random.default_rng(5)
    image, kernel = rng.integers(-3, 4, (7, 5)), rng.integers(-2, 3, (3, 2))
    np.testing.assert_allclose(keras_conv2d(image, kernel), cross_correlate(image, kernel), atol=1e-5)


def test_problem_is_not_the_lost_original(data):
    lost = np.array([[68, 23, 30, -24], [-54, -19, 0, 6], [38, 8, -17, 27], [20, -47, -19, -13]])
    image, kernel = data
    assert not np.array_equal(cross_correlate(image, kernel), lost)


def test_problem_distinguishes_common_mistakes(data):
    """Flipping the kernel or transposing must change the answer, and each pool block has one clear maximum."""
    image, kernel = data
    conv = cross_correlate(image, kernel)
    assert not np.array_equal(conv, cross_correlate(image, kernel[::-1, ::-1]))
    assert not np.array_equal(conv, conv.T)
    blocks = conv.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(4, 4)
    assert all((row == row.max()).sum() == 1 for row in blocks)
    assert len(set(max_pool(conv).ravel())) == 4


def test_source_answers_pass(solution, data):
    image, kernel = data
    np.testing.assert_array_equal(solution["answer_3_conv"], cross_correlate(image, kernel))
    np.testing.assert_array_equal(solution["answer_3_pool"], max_pool(cross_correlate(image, kernel)))
    check_convolution(image, kernel, solution["answer_3_conv"])
    check_max_pool(solution["answer_3_conv"], solution["answer_3_pool"])
    check_convolution(image, kernel, solution["answer_3_conv"].tolist())  # lists are fine too
    check_max_pool(solution["answer_3_conv"], solution["answer_3_pool"].astype(float))


def test_conv_one_entry_off_fails(solution, data):
    image, kernel = data
    wrong = np.array(solution["answer_3_conv"], dtype=float)
    wrong[2, 1] += 1
    message = _failure(check_convolution, image, kernel, wrong)
    assert "row 3, column 2" in message and "1 of 16 entry is wrong" in message
    assert "image[2:5, 1:4]" in message


def test_conv_transposed_fails(solution, data):
    image, kernel = data
    message = _failure(check_convolution, image, kernel, np.asarray(solution["answer_3_conv"]).T)
    assert "transposed" in message


def test_conv_with_flipped_kernel_fails(data):
    image, kernel = data
    convolved = cross_correlate(image, kernel[::-1, ::-1])
    message = _failure(check_convolution, image, kernel, convolved)
    assert "flipped" in message and "cross-correlation" in message


@pytest.mark.parametrize(
    "bad, phrase",
    [
        (np.zeros((3, 3)), "shape (3, 3)"),
        ([[1, 2], [3, 4]], "shape (2, 2)"),
        ("11 5 7 2", "could not be read as numbers"),
        (7, "shape ()"),
        ([["a"] * 4] * 4, "could not be read as numbers"),
        (np.full((4, 4), np.nan), "NaN"),
    ],
)
def test_conv_malformed_fails(data, bad, phrase):
    image, kernel = data
    assert phrase in _failure(check_convolution, image, kernel, bad)


def test_conv_failure_does_not_reveal_the_answer(solution, data):
    image, kernel = data
    expected = cross_correlate(image, kernel)
    message = _failure(check_convolution, image, kernel, np.zeros((4, 4)))
    assert str(expected.astype(int).tolist()) not in message
    assert str(expected.astype(int)[0].tolist()) not in message


class _AlwaysEqual:
    def __eq__(self, other):
        return True


def test_conv_is_not_fooled_by_an_always_equal_object(data):
    image, kernel = data
    _failure(check_convolution, image, kernel, _AlwaysEqual())


# --- the max-pool --------------------------------------------------------------


def test_pool_one_entry_off_fails(solution):
    wrong = np.array(solution["answer_3_pool"], dtype=float)
    wrong[1, 0] -= 2
    message = _failure(check_max_pool, solution["answer_3_conv"], wrong)
    assert "row 2, column 1" in message


def test_pool_transposed_fails(solution):
    message = _failure(check_max_pool, solution["answer_3_conv"], np.asarray(solution["answer_3_pool"]).T)
    assert "swapped" in message


def test_pool_with_min_or_mean_fails(solution):
    conv = np.asarray(solution["answer_3_conv"], dtype=float)
    blocks = conv.reshape(2, 2, 2, 2)
    assert "smallest" in _failure(check_max_pool, conv, blocks.min(axis=(1, 3)))
    assert "averaged" in _failure(check_max_pool, conv, blocks.mean(axis=(1, 3)))


def test_pool_wrong_shape_fails(solution):
    conv = np.asarray(solution["answer_3_conv"], dtype=float)
    overlapping = np.array([[conv[i : i + 2, j : j + 2].max() for j in range(3)] for i in range(3)])
    assert "shape (3, 3)" in _failure(check_max_pool, conv, overlapping)


def test_pool_follows_the_students_own_convolution(solution):
    """A wrong convolution pooled correctly earns the pooling point (no double penalty)."""
    conv = np.asarray(solution["answer_3_conv"], dtype=float) + 1
    check_max_pool(conv, max_pool(conv))
    _failure(check_max_pool, conv, solution["answer_3_pool"])


def test_pool_with_broken_convolution_fails():
    assert "answer_3_conv" in _failure(check_max_pool, "not an array", np.zeros((2, 2)))


# --- what the release would show ------------------------------------------------


def test_release_keeps_no_reference_text(nb, key):
    """After nbgrader strips solutions and hidden tests, no reference answer or letter survives."""
    from nbgrader.preprocessors import ClearHiddenTests, ClearMarkScheme, ClearSolutions

    released = copy.deepcopy(nb)
    released, _ = ClearSolutions().preprocess(released, {})
    released, _ = ClearHiddenTests().preprocess(released, {})
    released, _ = ClearMarkScheme(enforce_metadata=False).preprocess(released, {})  # the rubrics
    text = "\n".join(cell.source for cell in released.cells)
    for grade_id in ("answer_1_2", "answer_1_3", "answer_2_1", "answer_2_2"):
        assert _cell(released, grade_id).source == "YOUR ANSWER HERE"
    assert _cell(released, "answer_1_1").source == "# YOUR CODE HERE\nraise NotImplementedError()"
    assert _cell(released, "answer_3").source == "# YOUR CODE HERE\nraise NotImplementedError()"
    for secret in (
        "Grading:",
        "SOLUTION",
        "HIDDEN",
        "check_choice",
        "check_convolution",
        f'"{key["1.1"]["answer"]}"',
        "14, -7",
    ):
        assert secret not in text, secret


def test_conv_is_graded_against_the_posed_data_not_the_notebook_variables(data):
    """Does a student who reassigns image/kernel (say, to zeros) still fail?"""
    image, kernel = data
    zeros_image, zeros_kernel = np.zeros_like(image), np.zeros_like(kernel)
    message = _failure(check_convolution, zeros_image, zeros_kernel, np.zeros((4, 4)))
    assert "differs from Problem 3's data" in message
