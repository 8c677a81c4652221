"""Derive ``graders/checks/expected.json`` from the reference implementations.

Run ``python -m graders.authoring.expectations`` after changing ``graders/authoring/reference.py``;
``tests/authoring/test_expectations.py`` fails while the committed file is stale.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from graders.authoring import reference  # noqa: E402
from graders.checks.describe import describe_model  # noqa: E402
from graders.checks.expected_data import EXPECTED_PATH  # noqa: E402


def derive_expected() -> dict:
    """The expectations as a JSON-ready dict, built from the reference models."""
    builders = {
        "define_model": lambda: reference.define_model(0.01),
        "define_model_with_momentum": lambda: reference.define_model_with_momentum(0.01, 0.9),
        "define_model_2_conv": lambda: reference.define_model_2_conv(0.01),
    }
    architectures = {}
    for name, build in builders.items():
        description = describe_model(build())
        architectures[name] = {
            "input_shape": description["input_shape"],
            "layers": description["layers"],
            "total_params": description["total_params"],
            "loss": description["loss"],
        }
    return {
        "generated_by": "python -m graders.authoring.expectations (from graders/authoring/reference.py)",
        "batch_size": reference.BATCH_SIZE,
        "epochs": reference.EPOCHS,
        "optimizer_class": "SGD",
        "architectures": architectures,
        "runs": reference.RUNS,
    }


def render(expected: dict) -> str:
    return json.dumps(expected, indent=2, sort_keys=True) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options (``hw5 expectations`` shares this): it always writes the committed file."""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m graders.authoring.expectations", description=__doc__.splitlines()[0]
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    text = render(derive_expected())
    EXPECTED_PATH.write_text(text)
    print(f"wrote {EXPECTED_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
