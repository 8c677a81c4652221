"""CLI: ``python -m graders.verify --notebook TRUSTED.ipynb --exports DIR --requests REQ.json
[--support-dir DIR]``.

Prints exactly one line on stdout: ``HW5-VERDICTS `` followed by the JSON of
``{grade_id: {"passed": bool, "message": str}}``. Everything else (Keras logs,
check feedback) goes to stderr or is swallowed. Exit status 0 when verdicts
were printed, 2 on a usage or input error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

MARKER = "HW5-VERDICTS "


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m graders.verify", description=__doc__)
    parser.add_argument("--notebook", required=True, help="the TRUSTED notebook with hidden tests")
    parser.add_argument("--exports", required=True, help="folder of <grade_id>/ exports")
    parser.add_argument("--requests", required=True, help="JSON {grade_id: request} (with fresh calls)")
    parser.add_argument("--support-dir", help="folder of the trusted hw5_data.py (default: the notebook's)")
    options = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("NBGRADER_EXECUTION", "autograde")  # the grading budget, as in the kernel
    os.environ.setdefault("MPLBACKEND", "Agg")
    stdout = sys.stdout
    sys.stdout = sys.stderr  # only the verdict line goes to the real stdout
    try:
        import nbformat

        from graders.verify.verifier import verify_notebook

        notebook = nbformat.read(options.notebook, as_version=4)
        with open(options.requests, encoding="utf-8") as handle:
            requests = json.load(handle)
        support = options.support_dir or os.path.dirname(os.path.abspath(options.notebook))
        verdicts = verify_notebook(notebook, options.exports, requests, support_dir=support)
    except (OSError, ValueError) as error:
        print(f"graders.verify: {error}", file=sys.stderr)
        return 2
    finally:
        sys.stdout = stdout
    stdout.write(MARKER + json.dumps(verdicts, sort_keys=False) + "\n")
    stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
