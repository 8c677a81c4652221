"""graders/checks/expected.json is derived from graders/authoring/reference.py, never typed by hand."""

from graders.authoring.expectations import derive_expected, render
from graders.checks.expected_data import EXPECTED_PATH


def test_committed_expectations_equal_those_derived_from_the_reference():
    assert EXPECTED_PATH.read_text() == render(derive_expected()), (
        "expected.json is stale: run `python -m graders.authoring.expectations`"
    )


def test_expectations_hold_what_the_hidden_tests_need():
    expected = derive_expected()
    assert expected["batch_size"] == 32 and expected["epochs"] == 10
    assert set(expected["runs"]) == {"baseline", "eta_large", "eta_small", "momentum", "two_conv"}
    assert [layer["class"] for layer in expected["architectures"]["define_model"]["layers"]] == [
        "Conv2D",
        "MaxPooling2D",
        "Flatten",
        "Dense",
        "Dense",
    ]
