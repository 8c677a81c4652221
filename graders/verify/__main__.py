"""CLI: ``python -m graders.verify --job JOB.json [--support-dir DIR]``.

``JOB.json`` names every notebook of one submission, so that one process (one
TensorFlow import) verifies them all::

    {"hw5_part_b_cnn.ipynb": {"notebook": "TRUSTED.ipynb", "exports": "DIR",
                              "requests": {grade_id: request, ...},
                              "replay_key": HEX (optional: the host's secret that draws
                                             the replayed epochs)}, ...}

With ``--go-fd N`` it first warms up (TensorFlow, Keras, the checks) and then waits for
the names of the notebooks to verify on pipe ``N`` (:class:`graders.grading.verifier_step.EarlyVerifier`).

Prints exactly one line on stdout: ``HW5-VERDICTS `` followed by the JSON of
``{notebook name: {"verdicts": {grade_id: {"passed": bool, "message": str}}}}``, or
``{"failure": str}`` in place of ``verdicts`` for a notebook whose verification
itself broke (that notebook alone: "could not verify"). Everything else (Keras
logs, check feedback) goes to stderr or is swallowed. Exit status 0 when verdicts
were printed, 2 on a usage or input error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

#: What starts the verdict line (:mod:`graders.grading.verifier_step` reads it).
MARKER = "HW5-VERDICTS "


def _read_notebook(path: str) -> dict:
    """The trusted notebook as plain JSON (nbformat's import alone costs 2 s here; the
    verifier reads only cell types, sources and nbgrader metadata)."""
    with open(path, encoding="utf-8") as handle:
        notebook = json.load(handle)
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise ValueError(f"{path} is not a notebook")
    return notebook


def verify_job(job: dict, support_dir: str | None) -> dict[str, dict]:
    from graders.verify.verifier import verify_notebook

    results = {}
    for name, entry in job.items():
        try:
            notebook = _read_notebook(entry["notebook"])
            support = support_dir or os.path.dirname(os.path.abspath(entry["notebook"]))
            results[name] = {
                "verdicts": verify_notebook(
                    notebook,
                    entry["exports"],
                    entry.get("requests") or {},
                    support_dir=support,
                    replay_key=bytes.fromhex(entry["replay_key"]) if entry.get("replay_key") else None,
                )
            }
        except Exception as error:  # noqa: BLE001 - this notebook could not be verified; go on
            results[name] = {"failure": f"{type(error).__name__}: {str(error)[:600]}"}
    return results


def warm_up(support_dir: str) -> None:
    """What every verification imports and loads, before the word go: the kernel's run
    hides it. ``support_dir``: the trusted ``hw5_data.py``'s folder, whose data the checks
    read (:mod:`graders.checks.preload`: about a second)."""
    import keras  # noqa: F401 - TensorFlow with it: about 4 s

    from graders.checks.preload import load_grading_data
    from graders.verify.verifier import use_support_dir

    try:
        use_support_dir(support_dir)
    except OSError:
        return  # verify_job meets it again, per notebook
    if load_grading_data():
        import hw5_data
        from graders.verify import replay

        replay.training_rows(hw5_data.active_budget().name)  # the replay's data, from the same arrays
        try:
            replay.warm_up()  # each graded run's training step, traced
        except Exception:  # noqa: BLE001 - a replay then traces its step when it needs it
            pass


def await_go(fd: int) -> set[str]:
    """The names of the notebooks to verify: a JSON list read from ``fd`` to end of file.
    Raises ValueError when it is not one (the host died or sent nothing)."""
    with os.fdopen(fd, "rb") as pipe:
        raw = pipe.read(1024 * 1024)
    names = json.loads(raw.decode("utf-8")) if raw else None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError("no word to go: nothing verified")
    return set(names)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m graders.verify", description=__doc__.splitlines()[0])
    parser.add_argument("--job", required=True, help="JSON {notebook name: {notebook, exports, requests}}")
    parser.add_argument("--support-dir", help="folder of the trusted hw5_data.py (default: each notebook's)")
    parser.add_argument(
        "--go-fd",
        type=int,
        help="warm up (TensorFlow, Keras, the checks), then read the names of the notebooks to verify "
        "from this pipe (a JSON list, to end of file) before reading anything else",
    )
    options = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("NBGRADER_EXECUTION", "autograde")  # the grading budget, as in the kernel
    os.environ.setdefault("MPLBACKEND", "Agg")
    stdout = sys.stdout
    sys.stdout = sys.stderr  # only the verdict line goes to the real stdout
    try:
        wanted = None
        if options.go_fd is not None:
            warm_up(options.support_dir or os.path.dirname(os.path.abspath(options.job)))
            wanted = await_go(options.go_fd)
        with open(options.job, encoding="utf-8") as handle:
            job = json.load(handle)
        if not isinstance(job, dict) or not all(isinstance(entry, dict) for entry in job.values()):
            raise ValueError(f"{options.job} is not a verifier job")
        if wanted is not None:
            job = {name: entry for name, entry in job.items() if name in wanted}
        results = verify_job(job, options.support_dir)
    except (OSError, ValueError) as error:
        print(f"graders.verify: {error}", file=sys.stderr)
        return 2
    finally:
        sys.stdout = stdout
    stdout.write(MARKER + json.dumps(results, sort_keys=False) + "\n")
    stdout.flush()
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the verdicts are out: TensorFlow's orderly teardown would cost about a second
