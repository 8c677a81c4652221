"""Checks for HW5 Part A (written problems): a multiple-choice answer and a hand-computed
convolution followed by max-pooling.

Each public check takes the student's objects, raises ``GradingFailure`` with an
actionable message, and otherwise returns ``None``. Messages never print the full
expected matrix or the right letter. The answer key lives in ``written_key.json``.

Conventions: an image is a 2-D array of shape ``(H, W)``, a kernel ``(kh, kw)``; the
convolution is Keras-style cross-correlation (kernel not flipped), valid padding,
stride 1, so its result has shape ``(H - kh + 1, W - kw + 1)``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from graders.checks.failures import GradingFailure, public_check

_KEY_PATH = Path(__file__).with_name("written_key.json")


@functools.lru_cache(maxsize=1)
def _choices() -> dict:
    return json.loads(_KEY_PATH.read_text(encoding="utf-8"))["choices"]


# ---------------------------------------------------------------------------
# Reference computations (plain functions, no grading)
# ---------------------------------------------------------------------------


def cross_correlate(image, kernel) -> np.ndarray:
    """Valid, stride-1 cross-correlation of a 2-D ``image`` (H, W) with ``kernel`` (kh, kw).

    Returns a float array of shape ``(H - kh + 1, W - kw + 1)``: entry ``[i, j]`` is the
    sum of ``image[i:i+kh, j:j+kw] * kernel``. This is what Keras's ``Conv2D`` computes.
    """
    image = np.asarray(image, dtype=float)
    kernel = np.asarray(kernel, dtype=float)
    if image.ndim != 2 or kernel.ndim != 2:
        raise ValueError("image and kernel must both be 2-D arrays")
    kh, kw = kernel.shape
    out_h, out_w = image.shape[0] - kh + 1, image.shape[1] - kw + 1
    if out_h < 1 or out_w < 1:
        raise ValueError("the kernel is larger than the image")
    result = np.empty((out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            result[i, j] = np.sum(image[i : i + kh, j : j + kw] * kernel)
    return result


def max_pool(values, size: int = 2) -> np.ndarray:
    """Non-overlapping ``size`` x ``size`` max-pooling (stride ``size``) of a 2-D array.

    Input shape ``(H, W)``; output shape ``(H // size, W // size)`` (a ragged edge is
    dropped, as Keras's ``MaxPooling2D`` does with 'valid' padding).
    """
    values = np.asarray(values, dtype=float)
    out_h, out_w = values.shape[0] // size, values.shape[1] // size
    trimmed = values[: out_h * size, : out_w * size]
    return trimmed.reshape(out_h, size, out_w, size).max(axis=(1, 3))


def keras_conv2d(image, kernel) -> np.ndarray:
    """The same cross-correlation computed by a Keras ``Conv2D`` layer (for the test suite).

    One filter, the given kernel as its weights, no bias, valid padding, stride 1.
    ``image`` (H, W), ``kernel`` (kh, kw) -> float array ``(H - kh + 1, W - kw + 1)``.
    Imports Keras, so it is slow to call the first time; grading uses
    :func:`cross_correlate`.
    """
    import keras

    image = np.asarray(image, dtype="float32")
    kernel = np.asarray(kernel, dtype="float32")
    layer = keras.layers.Conv2D(1, kernel.shape, strides=1, padding="valid", use_bias=False)
    layer.build((1, *image.shape, 1))
    layer.set_weights([kernel[:, :, None, None]])
    output = layer(image[None, :, :, None])
    return np.asarray(keras.ops.convert_to_numpy(output), dtype=float)[0, :, :, 0]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _as_matrix(values, name: str, shape: tuple[int, int]) -> np.ndarray:
    """Coerce a student's answer to a float array of ``shape``, or fail with a message."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise GradingFailure(
            f"{name} should be a {shape[0]}x{shape[1]} array of numbers, but it could not be "
            f"read as numbers (it is a {type(values).__name__}). "
            f"Write it as np.array([[...], ...]) with {shape[0]} rows of {shape[1]} numbers."
        ) from None
    if array.shape != shape:
        raise GradingFailure(
            f"{name} has shape {array.shape}; expected {shape}. Write {shape[0]} rows of {shape[1]} numbers each."
        )
    if not np.all(np.isfinite(array)):
        raise GradingFailure(f"{name} contains NaN or infinite values; every entry should be a number.")
    return array


def _wrong_entries(found: np.ndarray, wanted: np.ndarray) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in index) for index in np.argwhere(~np.isclose(found, wanted, atol=1e-6))]


def _first_wrong(found: np.ndarray, wrong: list[tuple[int, int]], name: str) -> str:
    row, col = wrong[0]
    count = len(wrong)
    plural = "entry is" if count == 1 else "entries are"
    return (
        f"{count} of {found.size} {plural} wrong; the first is {name}[{row}][{col}] "
        f"(row {row + 1}, column {col + 1}, counting from 1), where you have {found[row, col]:g}."
    )


# ---------------------------------------------------------------------------
# Public checks
# ---------------------------------------------------------------------------


@public_check
def check_choice(question: str, answer) -> None:
    """A multiple-choice answer: ``answer`` is one letter (a string, any case) and is the right one."""
    entry = _choices().get(question)
    if entry is None:
        raise GradingFailure(f"There is no multiple-choice question {question!r} in this homework.")
    options = entry["options"]
    if not isinstance(answer, str):
        raise GradingFailure(
            f'Your answer to {question} should be a string holding one letter, such as "{options[0]}"; '
            f"it is a {type(answer).__name__}."
        )
    letter = answer.strip().upper()
    if letter not in options:
        raise GradingFailure(
            f"Your answer to {question} is {answer!r}; expected one of {', '.join(options)} "
            "(a single letter in quotes)."
        )
    if letter != entry["answer"].upper():
        raise GradingFailure(f"Option {letter} is not the right answer to {question}. Hint: {entry['hint']}")


@public_check
def check_convolution(image, kernel, answer) -> None:
    """``answer`` equals the valid, stride-1 cross-correlation of ``image`` with ``kernel``.

    ``image`` (H, W) and ``kernel`` (kh, kw) are the problem's data; ``answer`` must have
    shape ``(H - kh + 1, W - kw + 1)`` (4x4 for a 6x6 image and a 3x3 kernel).
    """
    posed = json.loads(_KEY_PATH.read_text(encoding="utf-8"))["problem_3"]
    image_posed = np.asarray(posed["image"], dtype=float)
    kernel_posed = np.asarray(posed["kernel"], dtype=float)
    # The notebook's variables are a claim: grade against the data as posed.
    try:
        unchanged = np.array_equal(np.asarray(image, dtype=float), image_posed) and np.array_equal(
            np.asarray(kernel, dtype=float), kernel_posed
        )
    except (TypeError, ValueError):
        unchanged = False
    if not unchanged:
        raise GradingFailure(
            "The notebook's image or kernel differs from Problem 3's data. Do not reassign "
            "image or kernel; compute answer_3_conv from the data as given."
        )
    image, kernel = image_posed, kernel_posed
    wanted = cross_correlate(image, kernel)
    found = _as_matrix(answer, "answer_3_conv", wanted.shape)
    wrong = _wrong_entries(found, wanted)
    if not wrong:
        return
    kh, kw = kernel.shape
    if not _wrong_entries(found, cross_correlate(image, kernel[::-1, ::-1])):
        raise GradingFailure(
            "Your answer_3_conv is the convolution with the kernel flipped (rotated by 180 degrees). "
            "Like Keras's Conv2D, this problem uses cross-correlation: lay the kernel on the image "
            "exactly as printed, without flipping it, multiply element-wise and add up."
        )
    if not _wrong_entries(found.T, wanted):
        raise GradingFailure(
            "Your answer_3_conv has its rows and columns swapped (it is transposed). "
            "Entry [i][j] comes from the patch whose top-left corner is at row i, column j: "
            "slide the kernel along a row first, and write each row of results as one row."
        )
    row, col = wrong[0]
    raise GradingFailure(
        "answer_3_conv is not the cross-correlation of the image with the kernel: "
        + _first_wrong(found, wrong, "answer_3_conv")
        + f" Recompute it from the {kh}x{kw} patch image[{row}:{row + kh}, {col}:{col + kw}]: "
        "multiply it element-wise by the kernel (not flipped) and add the products."
    )


@public_check
def check_max_pool(conv, pooled, size: int = 2) -> None:
    """``pooled`` is the ``size`` x ``size`` max-pool (stride ``size``) of the student's own ``conv``.

    ``conv`` (H, W), typically the student's 4x4 ``answer_3_conv``; ``pooled`` must have
    shape ``(H // size, W // size)`` (2x2). Pooling is checked against the student's own
    convolution, so a mistake there is not charged twice.
    """
    try:
        conv = np.asarray(conv, dtype=float)
    except (TypeError, ValueError):
        conv = np.empty(0)
    if conv.ndim != 2 or conv.shape[0] < size or conv.shape[1] < size or not np.all(np.isfinite(conv)):
        raise GradingFailure(
            "answer_3_conv should be the 4x4 array of numbers that you pool; fix it first "
            "(see the convolution test above), then pool it."
        )
    wanted = max_pool(conv, size)
    found = _as_matrix(pooled, "answer_3_pool", wanted.shape)
    wrong = _wrong_entries(found, wanted)
    if not wrong:
        return
    blocks = conv[: wanted.shape[0] * size, : wanted.shape[1] * size].reshape(
        wanted.shape[0], size, wanted.shape[1], size
    )
    if not _wrong_entries(found, blocks.min(axis=(1, 3))):
        hint = "You took the smallest value of each block; max-pooling keeps the largest."
    elif not _wrong_entries(found, blocks.mean(axis=(1, 3))):
        hint = "You averaged each block; max-pooling keeps the largest value of the block."
    elif not _wrong_entries(found.T, wanted):
        hint = "Your rows and columns are swapped: the top-right entry pools the top-right block."
    else:
        row, col = wrong[0]
        hint = (
            f"That entry pools the {size}x{size} block answer_3_conv[{row * size}:{row * size + size}, "
            f"{col * size}:{col * size + size}]; the blocks do not overlap (stride {size})."
        )
    raise GradingFailure(
        f"answer_3_pool is not the {size}x{size} max-pool of your answer_3_conv: "
        + _first_wrong(found, wrong, "answer_3_pool")
        + f" {hint}"
    )
