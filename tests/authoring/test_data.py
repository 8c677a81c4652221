"""The notebook's MNIST loader: where data comes from, the grading budget, the fixed subset."""

from __future__ import annotations

import numpy as np
import pytest

import hw5_data


def test_students_get_the_full_data_and_graders_the_fast_budget():
    assert hw5_data.active_budget({}).name == "full"
    assert hw5_data.active_budget({"NBGRADER_EXECUTION": "autograde"}).name == "fast"
    assert hw5_data.active_budget({"NBGRADER_EXECUTION": "validate"}).name == "fast"
    full = {"NBGRADER_EXECUTION": "autograde", "HW5_GRADING_BUDGET": "full"}
    assert hw5_data.active_budget(full) == hw5_data.BUDGETS["full"]


def test_an_unknown_budget_is_a_clear_error():
    with pytest.raises(ValueError, match="HW5_GRADING_BUDGET='huge' is not a known budget"):
        hw5_data.active_budget({"NBGRADER_EXECUTION": "autograde", "HW5_GRADING_BUDGET": "huge"})


def test_stratified_subset_is_balanced_fixed_and_interleaved():
    labels = np.repeat(np.arange(10), 50)
    first = hw5_data.stratified_indices(labels, 100)
    second = hw5_data.stratified_indices(labels, 100)
    np.testing.assert_array_equal(first, second)
    assert np.bincount(labels[first], minlength=10).tolist() == [10] * 10
    assert len(set(labels[first[:10]].tolist())) > 3  # shuffled, not sorted by class
    assert len(np.unique(first)) == 100


def test_subset_size_must_split_evenly_over_classes():
    with pytest.raises(ValueError, match="multiple of 10"):
        hw5_data.stratified_indices(np.repeat(np.arange(10), 5), 15)


def test_a_configured_path_that_is_not_a_file_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HW5_MNIST_PATH", str(tmp_path / "nowhere.npz"))
    with pytest.raises(FileNotFoundError, match="does not name a file"):
        hw5_data.load_full_mnist()


def test_a_file_that_is_not_mnist_is_a_clear_error(monkeypatch, tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((3, 28, 28)))
    monkeypatch.setenv("HW5_MNIST_PATH", str(bad))
    with pytest.raises(ValueError, match="not an MNIST archive"):
        hw5_data.load_full_mnist()
    garbage = tmp_path / "garbage.npz"
    garbage.write_text("not a zip")
    monkeypatch.setenv("HW5_MNIST_PATH", str(garbage))
    with pytest.raises(ValueError, match="could not be read"):
        hw5_data.load_full_mnist()


def test_wrong_shapes_are_reported(monkeypatch, tmp_path):
    small = tmp_path / "small.npz"
    np.savez(
        small, x_train=np.zeros((5, 28, 28)), y_train=np.zeros(5), x_test=np.zeros((5, 28, 28)), y_test=np.zeros(5)
    )
    monkeypatch.setenv("HW5_MNIST_PATH", str(small))
    with pytest.raises(ValueError, match=r"x_train has shape \(5, 28, 28\), expected \(60000, 28, 28\)"):
        hw5_data.load_full_mnist()


@pytest.mark.needs_mnist
def test_local_copy_is_used_and_nothing_is_downloaded(monkeypatch):
    import keras

    def no_download():
        raise AssertionError("the loader tried to download MNIST")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", no_download)
    (x_train, y_train), (x_test, y_test) = hw5_data.load_mnist(hw5_data.BUDGETS["fast"])
    fast = hw5_data.BUDGETS["fast"]
    assert x_train.shape == (fast.n_train, 28, 28) and x_test.shape == (fast.n_test, 28, 28)
    assert np.bincount(y_train, minlength=10).tolist() == [fast.n_train // 10] * 10
    x, y = hw5_data.preprocess(x_test, y_test)
    assert x.shape == (fast.n_test, 28, 28, 1) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert y.shape == (fast.n_test, 10) and (y.sum(axis=1) == 1).all()


def test_without_a_local_copy_the_loader_asks_keras(monkeypatch, tmp_path):
    """Online instructors and students get keras.datasets.mnist.load_data() (mocked here)."""
    import keras

    monkeypatch.delenv("HW5_MNIST_PATH", raising=False)
    monkeypatch.setattr(hw5_data, "__file__", str(tmp_path / "hw5_data.py"))  # no mnist.npz beside it
    sentinel = ((np.zeros((1, 28, 28)), np.zeros(1)), (np.zeros((1, 28, 28)), np.zeros(1)))
    monkeypatch.setattr(keras.datasets.mnist, "load_data", lambda: sentinel)
    assert hw5_data.load_full_mnist() is sentinel
