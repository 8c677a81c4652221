"""graders.grading.data: where the grader finds MNIST on the host, and what it refuses.

No test downloads: urlopen is guarded (file:// only), and resolve_mnist is called with
allow_download=False or with download_mnist replaced.
"""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from graders.grading import data


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    real = data.urllib.request.urlopen

    def guarded(url, *args, **kwargs):
        if not str(url).startswith("file://"):
            raise AssertionError(f"a test tried to download {url}")
        return real(url, *args, **kwargs)

    monkeypatch.setattr(data.urllib.request, "urlopen", guarded)
    data._valid.clear()  # each test validates for itself


@pytest.fixture(scope="module")
def valid_npz(tmp_path_factory) -> Path:
    """An archive with MNIST's keys, dtypes and shapes (zeros: validation looks at the layout)."""
    path = tmp_path_factory.mktemp("mnist") / "fake-mnist.npz"
    np.savez(path, **{key: np.zeros(shape, np.uint8) for key, shape in data.expected_shapes().items()})
    return path


def place(source: Path, target: Path) -> Path:
    """A hard link: a distinct path (resolve() keeps it) without copying 55 MB."""
    target.parent.mkdir(parents=True, exist_ok=True)
    os.link(source, target)
    return target


@pytest.fixture
def three_places(valid_npz, tmp_path):
    course, home = tmp_path / "course", tmp_path / "home"
    course.mkdir()
    env_copy = place(valid_npz, tmp_path / "env" / "mnist.npz")
    recorded = place(valid_npz, tmp_path / "recorded" / "mnist.npz")
    cache = place(valid_npz, data.keras_cache_path(home))
    data.record_data_path(course, recorded)
    return course, home, env_copy, recorded, cache


def test_order_env_then_recorded_then_cache(three_places):
    course, home, env_copy, recorded, cache = three_places
    resolve = lambda environ: data.resolve_mnist(course, environ, home=home, allow_download=False)  # noqa: E731
    assert resolve({"HW5_MNIST_PATH": str(env_copy)}) == env_copy.resolve()
    assert resolve({}) == recorded.resolve()
    data.record_file(course).unlink()
    assert resolve({}) == cache.resolve()
    assert resolve({"HW5_MNIST_PATH": ""}) == cache.resolve()  # empty counts as unset


def test_a_wrong_hw5_mnist_path_is_an_error_not_skipped(three_places, tmp_path):
    course, home, *_ = three_places
    with pytest.raises(data.DataUnavailable) as raised:
        data.resolve_mnist(course, {"HW5_MNIST_PATH": str(tmp_path / "typo.npz")}, home=home, allow_download=False)
    assert f"HW5_MNIST_PATH={tmp_path / 'typo.npz'} is absent" in str(raised.value)


def test_a_recorded_path_that_is_gone_falls_through_to_the_cache(three_places):
    course, home, _, recorded, cache = three_places
    recorded.unlink()
    assert data.resolve_mnist(course, {}, home=home, allow_download=False) == cache.resolve()


def test_nothing_found_names_every_place_on_one_line(tmp_path):
    course, home = tmp_path / "course", tmp_path / "home"
    course.mkdir()
    with pytest.raises(data.DataUnavailable) as raised:
        data.resolve_mnist(course, {}, home=home, allow_download=False)
    message = str(raised.value)
    assert "\n" not in message
    for part in (
        "HW5_MNIST_PATH: unset",
        f"{course / '.hw5-data'}: absent",
        f"{home / '.keras/datasets/mnist.npz'}: absent",
        "download: not tried",
        "HW5_MNIST_PATH=/path/to/mnist.npz",
        "make setup MNIST=/path",
    ):
        assert part in message, part


def test_a_failed_download_is_named_with_its_reason(tmp_path, monkeypatch):
    course = tmp_path / "course"
    course.mkdir()
    tried = []

    def offline(target, *args, **kwargs):
        tried.append(target)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(data, "download_mnist", offline)
    with pytest.raises(data.DataUnavailable) as raised:
        data.resolve_mnist(course, {}, home=tmp_path / "home")
    assert tried == [data.keras_cache_path(tmp_path / "home")]
    assert "into the cache: failed (URLError: [Errno -3] Temporary failure in name resolution)" in str(raised.value)


def test_a_download_lands_in_the_cache_and_is_used(tmp_path, monkeypatch, valid_npz):
    course = tmp_path / "course"
    course.mkdir()
    monkeypatch.setattr(data, "download_mnist", lambda target, *a, **k: place(valid_npz, target))
    found = data.resolve_mnist(course, {}, home=tmp_path / "home")
    assert found == data.keras_cache_path(tmp_path / "home").resolve()


@pytest.mark.parametrize(
    "write, says",
    [
        (lambda p: p.write_bytes(b"<html>proxy login</html>"), "cannot be read as an .npz"),
        (lambda p: np.savez(p, x_train=np.zeros((10, 28, 28), np.uint8)), "missing x_test, y_test, y_train"),
        (
            lambda p: np.savez(p, **{k: np.zeros((5,) + s[1:], np.uint8) for k, s in data.expected_shapes().items()}),
            "x_train is uint8 (5, 28, 28), expected uint8 (60000, 28, 28)",
        ),
        (
            lambda p: np.savez(p, **{k: np.zeros(s, np.int8) for k, s in data.expected_shapes().items()}),
            "x_train is int8 (60000, 28, 28), expected uint8 (60000, 28, 28)",
        ),
    ],
)
def test_a_corrupt_file_is_refused_with_the_reason(tmp_path, write, says):
    course, bad = tmp_path / "course", tmp_path / "bad.npz"
    course.mkdir()
    write(bad)
    data.record_file(course).write_text(f"{bad}\n")  # recorded by hand: record_data_path would refuse it
    with pytest.raises(data.DataUnavailable) as raised:
        data.resolve_mnist(course, {}, home=tmp_path / "home", allow_download=False)
    assert f"names {bad}, which is refused ({bad}: " in str(raised.value)
    assert says in str(raised.value)
    with pytest.raises(data.InvalidDataFile, match="bad.npz"):
        data.record_data_path(course, bad)


def test_record_data_path_writes_an_absolute_path(tmp_path, valid_npz, monkeypatch):
    course = tmp_path / "course"
    course.mkdir()
    monkeypatch.chdir(valid_npz.parent)
    record = data.record_data_path(course, Path(valid_npz.name))
    assert record == course / ".hw5-data"
    assert record.read_text() == f"{valid_npz.resolve()}\n"


def test_validation_is_cached_by_path_size_and_mtime(valid_npz, tmp_path, monkeypatch):
    copy = place(valid_npz, tmp_path / "m.npz")
    data.validate_mnist(copy)

    def must_not_load(*args, **kwargs):
        raise OSError("np.load called again")

    monkeypatch.setattr(data.np, "load", must_not_load)
    data.validate_mnist(copy)  # cached: np.load is not called
    os.utime(copy, ns=(1, 1))  # the file changed (as far as its stamp says)
    with pytest.raises(data.InvalidDataFile, match="np.load called again"):
        data.validate_mnist(copy)


def test_download_refuses_bytes_that_are_not_mnist(tmp_path, valid_npz):
    target = tmp_path / "cache" / "mnist.npz"
    with pytest.raises(data.InvalidDataFile, match="is not MNIST's"):
        data.download_mnist(target, url=valid_npz.as_uri())  # right layout, unknown hash
    assert not target.exists() and not list(target.parent.glob(".mnist-*"))  # no partial file left


@pytest.mark.needs_mnist
def test_download_accepts_a_known_mnist_file(tmp_path):
    source = Path(os.environ["HW5_MNIST_PATH"])
    if data.sha256_of(source) not in data.KNOWN_SHA256:
        pytest.skip(f"{source} is not one of the known MNIST files")
    target = data.download_mnist(tmp_path / "cache" / "mnist.npz", url=source.resolve().as_uri())
    assert data.validate_mnist(target) == target.resolve()


def test_command_line_records_and_resolves(tmp_path, valid_npz, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HW5_MNIST_PATH", raising=False)
    assert data.main(["record", str(valid_npz)]) == 0
    assert data.main(["resolve"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == str(valid_npz.resolve())
    assert data.main(["record", str(tmp_path / "nothing.npz")]) == 1
