"""graders.grading.canary: the key, the cache and the verdict, with fake graders (no TensorFlow)."""

from __future__ import annotations

import json
import shutil

import pytest

from graders.grading import canary
from graders.grading.canary import CanaryCache, CanaryResult, canary_key, file_sha256, run_canary


@pytest.fixture
def course(tmp_path):
    root = tmp_path / "course"
    (root / "source" / "hw5").mkdir(parents=True)
    (root / "source" / "hw5" / "hw5_part_b_cnn.ipynb").write_text('{"cells": []}')
    checks = root / "graders" / "checks"
    (checks / "__pycache__").mkdir(parents=True)
    (checks / "__init__.py").write_text("")
    (checks / "model_checks.py").write_text("def check(): pass\n")
    (checks / "thresholds.json").write_text('{"budgets": {"fast": {"baseline": 0.49}}}')
    (checks / "__pycache__" / "model_checks.cpython-312.pyc").write_bytes(b"\x00")
    (root / "mnist.npz").write_bytes(b"pretend data")
    return root


def key_of(root, extra=None):
    return canary_key(
        [root / "source" / "hw5" / "hw5_part_b_cnn.ipynb", root / "graders" / "checks"],
        extra or {"budget": "fast"},
        data_file=root / "mnist.npz",
        digest_cache=CanaryCache(root).digests,
    )


@pytest.mark.parametrize(
    "change",
    [
        lambda root: (root / "graders/checks/model_checks.py").write_text("def check(): raise\n"),
        lambda root: (root / "graders/checks/thresholds.json").write_text('{"budgets": {"fast": {"baseline": 0.9}}}'),
        lambda root: (root / "graders/checks/training_checks.py").write_text(""),  # a new checks file
        lambda root: (root / "source/hw5/hw5_part_b_cnn.ipynb").write_text('{"cells": [1]}'),
        lambda root: (root / "mnist.npz").write_bytes(b"other, longer data"),
        lambda root: (root / "mnist.npz").unlink(),  # a key, not a crash: the canary says what is missing
    ],
    ids=["checks-file", "thresholds", "new-checks-file", "source-notebook", "data-file", "data-file-gone"],
)
def test_the_key_changes_with_what_the_verdict_depends_on(course, change):
    before = key_of(course)
    assert key_of(course) == before  # stable
    change(course)
    assert key_of(course) != before


def test_the_key_changes_with_the_settings_and_the_versions(course, monkeypatch):
    before = key_of(course)
    assert key_of(course, {"budget": "full"}) != before
    versions = canary.tool_versions()
    assert set(versions) == {"python", "tensorflow", "keras", "numpy", "nbgrader", "nbclient"}
    monkeypatch.setattr(canary, "tool_versions", lambda: {**versions, "keras": "9.9.9"})
    assert key_of(course) != before


def test_the_key_ignores_bytecode_and_where_the_course_lives(course, tmp_path):
    before = key_of(course)
    (course / "graders/checks/__pycache__/model_checks.cpython-312.pyc").write_bytes(b"\x01")
    assert key_of(course) == before
    moved = shutil.copytree(course, tmp_path / "elsewhere" / "course")
    assert key_of(moved) == before


def test_the_data_digest_is_cached_by_size_and_mtime(course):
    cache = CanaryCache(course).digests
    data = course / "mnist.npz"
    real = file_sha256(data, cache)
    stored = json.loads(cache.read_text())
    stored[str(data.resolve())]["sha256"] = "from-the-cache"
    cache.write_text(json.dumps(stored))
    assert file_sha256(data, cache) == "from-the-cache"  # not re-hashed
    data.write_bytes(b"pretend data, longer")  # size (and mtime) change: hashed again
    assert file_sha256(data, cache) not in (real, "from-the-cache")


def passing(calls):
    def grade():
        calls.append(1)
        return CanaryResult(score=20, max_score=20, seconds=61.0)

    return grade


def test_a_known_good_key_skips_the_grading(course):
    cache, calls = CanaryCache(course), []
    first = run_canary(passing(calls), cache, "k1")
    assert first.ok and not first.cached and calls == [1]
    assert CanaryCache(course).is_known_good("k1")  # persisted in .grading/canary.json
    assert (course / ".grading" / "canary.json").is_file()
    again = run_canary(passing(calls), CanaryCache(course), "k1")
    assert again.ok and again.cached and (again.score, again.max_score) == (20, 20)
    assert calls == [1]
    run_canary(passing(calls), cache, "k2")  # another key: graded
    assert calls == [1, 1]


def test_a_failure_is_not_remembered_and_names_each_cell(course):
    cache, calls = CanaryCache(course), []

    def failing():
        calls.append(1)
        return CanaryResult(
            15,
            20,
            58.0,
            [
                (
                    "test_todo2_training",
                    "GradingFailure: The trained model reaches 0.3100 test accuracy "
                    "under the 'fast' grading budget, lower than a correct solution reaches.",
                ),
                ("test_todo5_architecture", "AssertionError: conv2d has 32 filters"),
            ],
        )

    result = run_canary(failing, cache, "k")
    run_canary(failing, cache, "k")
    assert calls == [1, 1] and not cache.is_known_good("k") and not result.ok
    refusal = result.refusal()
    lines = refusal.splitlines()
    assert "15/20" in lines[0]
    assert any(line.startswith("  test_todo2_training: GradingFailure: The trained model") for line in lines)
    assert "  test_todo5_architecture: AssertionError: conv2d has 32 filters" in lines
    assert "thresholds.json fails the reference" in refusal


@pytest.mark.parametrize(
    "message, cause",
    [
        ("FileNotFoundError: HW5_MNIST_PATH='/opt/hw5-data/mnist.npz' does not name a file.", "MNIST file is missing"),
        ("gaierror: [Errno -3] Temporary failure in name resolution", "MNIST file is missing"),
        ("ModuleNotFoundError: No module named 'graders.checks.training_checks'", "graders/checks) do not import"),
        ("NameError: name 'x' is not defined", "cause unknown"),
    ],
)
def test_the_refusal_names_the_cause_where_it_can_tell(message, cause):
    refusal = CanaryResult(0, 20, 3.0, [("setup", message)]).refusal()
    assert cause in refusal
    assert f"  setup: {message}" in refusal.splitlines()


def test_a_canary_that_cannot_run_or_grades_nothing_is_no_pass(course):
    def broken():
        raise RuntimeError("no kernel")

    result = run_canary(broken, CanaryCache(course), "k")
    assert not result.ok and "canary: grading the reference raised RuntimeError: no kernel" in result.refusal()
    assert not CanaryCache(course).is_known_good("k")
    assert not CanaryResult(0, 0, 1.0).ok  # nothing graded
    assert not CanaryResult(20, 20, 1.0, [("setup", "OSError: x")]).ok  # full marks, yet a cell raised
    lost = CanaryResult(19, 20, 1.0)  # points lost without a failing cell
    assert not lost.ok and "no cell reported a failure" in lost.refusal()


def test_a_damaged_cache_is_empty_and_the_cache_keeps_the_latest_keys(course, monkeypatch):
    cache = CanaryCache(course)
    cache.folder.mkdir()
    cache.path.write_text("{not json")
    assert not cache.is_known_good("k")
    monkeypatch.setattr(canary, "KEEP_KEYS", 3)
    for key in "abcd":
        cache.remember(key, 1.0)
    assert [cache.is_known_good(key) for key in "abcd"] == [False, True, True, True]


def test_an_exception_of_the_graders_own_is_named_with_its_module_not_cause_unknown():
    from graders.grading.internal_errors import describe

    try:
        from graders.grading import blobs

        blobs.sha_of("not a reference")  # raises BlobError inside graders/grading/blobs.py
    except Exception as error:  # noqa: BLE001
        line = describe(error)
    assert line.startswith("BlobError in graders/grading/blobs.py:") and "(sha_of)" in line
    refusal = CanaryResult(0, 0, 3.0, [("canary", f"execution failed: {line}")]).refusal()
    assert "likely cause: BlobError raised by the grader's own code at graders/grading/blobs.py:" in refusal
    assert "cause unknown" not in refusal and "nbgrader validate" not in refusal


def test_nbgrader_validate_is_named_only_when_the_reference_itself_lost_points():
    lost = CanaryResult(1, 2, 3.0, [("test_add", "NameError: name 'x' is not defined")]).refusal()
    ours = CanaryResult(0, 0, 3.0, [("canary", "execution failed: sandbox did not start")]).refusal()
    assert "nbgrader validate" in lost
    assert "nbgrader validate" not in ours and "no cell of the reference lost points" in ours
