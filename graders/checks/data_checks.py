"""Checks on what each ``fit`` call trained and validated on.

While grading, ``graders.checks.recorder`` wraps ``keras.Model.fit`` so that every
call leaves a *fit record* on its model: an order-insensitive fingerprint (one hash
per image, one class per label) of the training data and of the validation data it
was given. The notebook's arrays are the full data set while grading, as at home,
so the checks here compare each record with the full data, loaded afresh by the
instructor's ``hw5_data``: a shuffled, copied or converted ``x_train`` passes, and
a subset (a slice, an index, a split), another set of images, misaligned labels or
other validation data fail, whatever the grading budget.

Arrays: ``images`` are int64 row hashes ``(n,)``, ``labels`` int64 classes ``(n,)``.
"""

from __future__ import annotations

import functools

import numpy as np

from graders.checks.failures import GradingFailure
from graders.checks.recorder import budget_rows, fit_records, row_hashes

_CHUNK = 5_000
_TRAIN_ADVICE = "Train on x_train and y_train as the given code prepares them (a shuffled copy is fine)."
_VALIDATION_ADVICE = "Pass validation_data=(x_test, y_test)."


@functools.lru_cache(maxsize=2)
def budget_arrays(budget):
    """The budget's raw ``(x_train, y_train), (x_test, y_test)`` from the instructor's loader
    (the full data for ``BUDGETS["full"]``).

    ``budget``: an ``hw5_data.Budget`` (hashable: the cache is per budget, not per name).
    """
    import hw5_data

    return hw5_data.load_mnist(budget)


@functools.lru_cache(maxsize=2)
def budget_fingerprints(budget) -> dict:
    """``{"train": (images, labels), "test": (images, labels)}`` of the budget, preprocessed
    as the homework does (uint8 / 255 as float32; labels as classes), in chunks."""
    import hw5_data

    (x_train, y_train), (x_test, y_test) = budget_arrays(budget)

    def fingerprint(images, labels):
        hashes = [
            row_hashes(hw5_data.preprocess(images[start : start + _CHUNK], labels[start : start + _CHUNK])[0])
            for start in range(0, len(images), _CHUNK)
        ]
        return np.concatenate(hashes), np.asarray(labels, dtype=np.int64)

    return {"train": fingerprint(x_train, y_train), "test": fingerprint(x_test, y_test)}


def forget_budget_data() -> None:
    """Drop the cached arrays (after another ``hw5_data`` module was put in place)."""
    budget_arrays.cache_clear()
    budget_fingerprints.cache_clear()
    budget_rows.cache_clear()


def common_count(given: np.ndarray, wanted: np.ndarray) -> int:
    """The size of the multiset intersection of two int64 arrays."""
    values_a, counts_a = np.unique(given, return_counts=True)
    values_b, counts_b = np.unique(wanted, return_counts=True)
    _, in_a, in_b = np.intersect1d(values_a, values_b, assume_unique=True, return_indices=True)
    return int(np.minimum(counts_a[in_a], counts_b[in_b]).sum())


def pair_keys(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """One int64 per (image, label) pair: equal pairs give equal keys."""
    spread = (labels.astype(np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
    return (images.view(np.uint64) ^ spread).view(np.int64)


def _digits(classes) -> str:
    classes = sorted(int(c) for c in classes)
    return ("the digit " if len(classes) == 1 else "the digits ") + ", ".join(map(str, classes))


def describe_data_difference(
    sample: dict, wanted: tuple, other: tuple, *, what: str, source: str, other_source: str
) -> str | None:
    """What differs between a recorded data sample and the arrays it should equal, or None.

    ``sample``: ``{"kind": "data", "images", "labels"}``; ``wanted``: the full data's
    ``(images, labels)`` for ``source`` (``"x_train"``); ``other``: the other split's,
    to name where foreign images come from. Checked in order: images that are not
    from ``source``; the number of images; labels that do not match their images.
    """
    images, labels = np.asarray(sample["images"]), np.asarray(sample["labels"])
    wanted_images, wanted_labels = wanted
    given = len(images)
    outside = images[~np.isin(images, wanted_images)]
    foreign = len(outside)
    if foreign:
        from_other = int(np.isin(outside, other[0]).sum())
        where = (
            ""
            if not from_other
            else f" (they are images of {other_source})"
            if from_other == foreign
            else f" ({from_other:,} of them are images of {other_source})"
        )
        return f"{foreign:,} of the {given:,} images of the {what} are not images of {source}{where}."
    if given != len(wanted_images):
        missing = sorted(set(np.unique(wanted_labels).tolist()) - set(np.unique(labels).tolist()))
        absent = f", and it has no images of {_digits(missing)}" if missing else ""
        if given < len(wanted_images):
            return f"The {what} holds {given:,} images, only part of {source}{absent}."
        return f"The {what} holds {given:,} images, more than {source}: some are repeated."
    if common_count(images, wanted_images) != given:
        return f"The {what} has as many images as {source}, but some of them are repeated and others left out."
    mismatched = given - common_count(pair_keys(images, labels), pair_keys(wanted_images, wanted_labels))
    if mismatched:
        return (
            f"The labels of the {what} do not match its images: {mismatched:,} of the {given:,} "
            f"images carry another label than in {source.replace('x_', 'y_')}. Keep the images "
            "and labels in the same order (shuffle them together)."
        )
    return None


def describe_training(sample: dict, budget) -> str | None:
    """What is wrong with a record's training sample, or None (also for an unknown one)."""
    import hw5_data

    if sample["kind"] != "data":
        return None
    prints = budget_fingerprints(hw5_data.BUDGETS["full"])
    difference = describe_data_difference(
        sample, prints["train"], prints["test"], what="training data", source="x_train", other_source="x_test"
    )
    return None if difference is None else f"{difference} {_TRAIN_ADVICE}"


def describe_validation(sample: dict, budget) -> str | None:
    """What is wrong with a record's validation sample, or None (also for an unknown one)."""
    import hw5_data

    kind = sample["kind"]
    if kind == "none":
        return f"fit was given no validation data. {_VALIDATION_ADVICE}"
    if kind == "split":
        return (
            f"fit was given validation_split={sample['fraction']:g}, which holds back part of "
            "the training data for validation and trains on the rest. This homework trains on "
            f"all of x_train and validates on the test set. {_VALIDATION_ADVICE}"
        )
    if kind != "data":
        return None
    prints = budget_fingerprints(hw5_data.BUDGETS["full"])
    difference = describe_data_difference(
        sample, prints["test"], prints["train"], what="validation data", source="x_test", other_source="x_train"
    )
    if difference is None:
        return None
    return f"The validation data is not the test set. {difference} {_VALIDATION_ADVICE}"


def describe_record(record: dict, budget) -> str | None:
    """What is wrong with one fit record, or None. A validation_split is named first (it
    also shortens the training data), then the training data, then the validation data."""
    if record["validation"]["kind"] == "split":
        return describe_validation(record["validation"], budget)
    return describe_training(record["train"], budget) or describe_validation(record["validation"], budget)


def check_fit_data(model, budget) -> None:
    """Every recorded ``fit`` call on ``model`` was given all of x_train/y_train and
    x_test/y_test (as multisets: order is free), whatever ``budget`` it then trained on.
    Raises GradingFailure.

    A model with no records (not graded, or trained without ``fit``) and an
    ``unknown`` sample (a generator, ...) are not judged here: the update count
    and the recomputed accuracy still are.
    """
    records = fit_records(model)
    if not records:
        return
    for number, record in enumerate(records, start=1):
        problem = describe_record(record, budget)
        if problem:
            where = f"In fit call {number} of {len(records)} on this model: " if len(records) > 1 else ""
            raise GradingFailure(where + problem)
