"""verify_notebook on the trusted source notebooks' graded cells, with honest and rigged exports."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from graders.checks.kernel_export import export_cell
from graders.verify.requests import export_requests, fresh_calls, setup_names
from graders.verify.verifier import verify_notebook
from tests import verify_helpers as vh

pytestmark = pytest.mark.needs_mnist
SUPPORT = vh.ROOT / "source" / "hw5"
SUPPORT_MODULES = frozenset({"hw5_data"})  # the verifier imports its trusted copy itself


@pytest.fixture(scope="module")
def kernel_values():
    """An honest Part B kernel (trained tiny: 64 images, 1 epoch) plus Part A answers."""
    return {**vh.reference_kernel(*vh.tiny_data(64)), **vh.PART_A_ANSWERS}


@pytest.fixture(autouse=True)
def grading_env(monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")


def _export_all(notebook, out_dir, seed=3):
    requests = fresh_calls(export_requests(notebook, SUPPORT_MODULES), random.Random(seed))
    for request in requests.values():
        export_cell(request, str(out_dir))
    return requests


def _in_kernel_verdict(notebook, grade_id, values) -> str:
    """The cell run on the ORIGINAL objects, as the student's kernel would: '' or the message."""
    import keras
    import matplotlib.pyplot as plt
    import numpy as np
    from keras import layers
    from keras.optimizers import SGD

    source = next(
        cell.source for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id
    )
    import hw5_data

    namespace = {"keras": keras, "layers": layers, "SGD": SGD, "np": np, "plt": plt, "hw5_data": hw5_data, **values}
    try:
        exec(source, namespace)
    except AssertionError as error:
        return str(error)
    return ""


def test_requests_read_the_trusted_cells():
    part_b, part_a = vh.read(vh.PART_B), vh.read(vh.PART_A)
    assert {"keras", "layers", "SGD", "np", "plt"} <= setup_names(part_b)
    assert {"image", "kernel", "np"} <= setup_names(part_a)
    requests = export_requests(part_b)
    assert requests["test_todo1_training"]["names"] == ["history_eta_large", "model_eta_large"]
    optimizer = requests["test_todo3_optimizer"]["calls"]
    assert [call["args"] for call in optimizer] == [[0.01, 0.9], [0.05, 0.5], [0.2, 0.0]]
    assert requests["test_todo4_model"]["calls"][0]["args"] == [0.01, 0.9]
    fresh = fresh_calls(requests, random.Random(0))
    added = [c for c in fresh["test_todo3_optimizer"]["calls"] if c["fresh"]]
    assert 1 <= len(added) <= 2 and all(len(c["args"]) == 2 for c in added)
    assert not any(c["fresh"] for c in fresh["test_todo4_model"]["calls"])
    assert export_requests(part_a)["test_answer_3_conv"]["names"] == ["answer_3_conv"]


def test_honest_exports_get_the_verdicts_of_the_kernel(kernel_values, monkeypatch, tmp_path):
    vh.kernel_namespace(monkeypatch, kernel_values)
    for path in (vh.PART_B, vh.PART_A):
        notebook = vh.read(path)
        requests = _export_all(notebook, tmp_path)
        verdicts = verify_notebook(notebook, tmp_path, requests, support_dir=SUPPORT)
        assert list(verdicts) == list(requests)
        for grade_id, verdict in verdicts.items():
            if "training" in grade_id:  # trained tiny: the kernel's check fails these too, in the same words
                assert not verdict["passed"]
                assert verdict["message"] == _in_kernel_verdict(notebook, grade_id, kernel_values)
            else:
                assert verdict == {"passed": True, "verdict": "passed", "message": ""}, grade_id


def test_rigged_learning_rate_and_update_count_fail(kernel_values, monkeypatch, tmp_path):
    vh.kernel_namespace(monkeypatch, kernel_values)
    notebook = vh.read(vh.PART_B)
    requests = _export_all(notebook, tmp_path)
    manifest_path = tmp_path / "test_todo4_model" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["items"]["model_momentum"]["compile"]["optimizer"]["learning_rate"] = 0.5
    manifest_path.write_text(json.dumps(manifest))
    training_path = tmp_path / "test_todo4_training" / "manifest.json"
    manifest = json.loads(training_path.read_text())
    manifest["items"]["history_momentum"]["params"]["epochs"] = 10
    manifest["items"]["history_momentum"]["epoch"] = list(range(10))
    manifest["items"]["history_momentum"]["history"] = {
        key: values * 10 for key, values in manifest["items"]["history_momentum"]["history"].items()
    }
    training_path.write_text(json.dumps(manifest))
    verdicts = verify_notebook(notebook, tmp_path, requests, support_dir=SUPPORT)
    assert not verdicts["test_todo4_model"]["passed"]
    assert not verdicts["test_todo4_training"]["passed"]
    # The rigged learning rate makes the model differ from the one the training cell exports.
    assert "changed between the test cells" in verdicts["test_todo4_training"]["message"]
    (tmp_path / "test_todo4_model" / "manifest.json").unlink()  # now the update count speaks
    verdicts = verify_notebook(notebook, tmp_path, requests, support_dir=SUPPORT)
    assert (
        "optimizer updates" in verdicts["test_todo4_training"]["message"]
        or "SGD updates" in verdicts["test_todo4_training"]["message"]
    )
    (tmp_path / "test_todo3_architecture" / "manifest.json").unlink()
    verdicts = verify_notebook(notebook, tmp_path, requests, support_dir=SUPPORT)
    assert verdicts["test_todo3_architecture"]["message"].startswith("could not verify: ")


def test_a_lookup_table_builder_fails_the_fresh_arguments(kernel_values, monkeypatch, tmp_path):
    from graders.authoring import reference

    known = {(0.01, 0.9), (0.05, 0.5), (0.2, 0.0)}

    def define_model_with_momentum(learning_rate, momentum):
        if (learning_rate, momentum) in known:
            return reference.define_model_with_momentum(learning_rate, momentum)
        return reference.define_model_with_momentum(0.01, 0.9)

    vh.kernel_namespace(monkeypatch, {**kernel_values, "define_model_with_momentum": define_model_with_momentum})
    notebook = vh.read(vh.PART_B)
    requests = _export_all(notebook, tmp_path)
    verdicts = verify_notebook(notebook, tmp_path, requests, support_dir=SUPPORT)
    assert verdicts["test_todo3_architecture"]["passed"]
    assert not verdicts["test_todo3_optimizer"]["passed"]
    assert "Make sure your function uses its arguments" in verdicts["test_todo3_optimizer"]["message"]
    # without the fresh arguments the table would have passed
    plain = export_requests(notebook, SUPPORT_MODULES)
    assert verify_notebook(notebook, tmp_path, plain, support_dir=SUPPORT)["test_todo3_optimizer"]["passed"]


def test_the_cli_verifies_a_whole_submission_in_one_process(kernel_values, monkeypatch, tmp_path):
    """One job, two notebooks: the good one gets its verdicts (read from plain JSON, whose
    sources are lists of lines), the unreadable one alone gets a failure."""
    vh.kernel_namespace(monkeypatch, kernel_values)
    notebook = vh.read(vh.PART_A)
    requests = _export_all(notebook, tmp_path / "exports")
    (tmp_path / "broken.ipynb").write_text("{not json")
    job = {
        "part_a.ipynb": {"notebook": str(vh.PART_A), "exports": str(tmp_path / "exports"), "requests": requests},
        "broken.ipynb": {"notebook": str(tmp_path / "broken.ipynb"), "exports": str(tmp_path), "requests": {}},
    }
    (tmp_path / "job.json").write_text(json.dumps(job))
    result = subprocess.run(
        [sys.executable, "-m", "graders.verify", "--job", str(tmp_path / "job.json"), "--support-dir", str(SUPPORT)],
        capture_output=True,
        text=True,
        cwd=vh.ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("HW5-VERDICTS ")
    results = json.loads(lines[0][len("HW5-VERDICTS ") :])
    assert results["part_a.ipynb"] == {
        "verdicts": {grade_id: {"passed": True, "verdict": "passed", "message": ""} for grade_id in requests}
    }
    assert results["broken.ipynb"]["failure"].startswith("JSONDecodeError")
