"""How long one submission takes to grade, under the fast and the full budget, in one run.

    python bench/grade_time.py [--fast-runs 3] [--full-runs 1] [--skip-full] [--via hw5-autograde]

Autogrades the reference submission with ``nbgrader autograde`` in a scratch course,
first under the fast budget (several times, for a median), then under the full one,
and prints the wall time of each, their ratio, and where the time goes: nbgrader and
kernel start, data loading (the setup cell), each training cell, the test cells.
The phases come from the cells' execution timestamps in the autograded notebook.
Both budgets are measured in the same run because these machines are noisy.

``--via hw5-autograde`` measures the production path instead: ``hw5-autograde`` with
one worker, sandboxed, and the submission's own grading time from its report (Dask's
start-up, once per batch, is left out). Its graded notebooks carry no execution
timestamps (the sandbox's are not trusted), so it prints no phases.

Measured on the 2-core development machine, quiet (2026-11-27):
- plain nbgrader: fast median 64.4 s (61.5, 64.4, 66.4), full 1578.4 s, ratio x24.5; per
  phase (fast / full): start 6.3 / 6.5, setup cell 6.2 / 4.7, the five trainings
  7.3-11.1 / 239-361 each, test cells 2.6 / 6.5, the rest 6.3 / 7.8 s. Verdicts agree.
- ``--via hw5-autograde --skip-full``: fast median 58.5 s (59.2, 55.7, 58.5), the same
  recomputed accuracies as plain nbgrader.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nbgrader_autograde import autograde_student  # noqa: E402

from graders.authoring.release import make_scratch_course  # noqa: E402
from graders.authoring.sample_class import REFERENCE  # noqa: E402
from graders.course import COURSE_ROOT, course_db_url  # noqa: E402
from graders.gradebook import student_grades  # noqa: E402
from graders.reporting.score_table import autograded_points  # noqa: E402

TRAINING_CELLS = ("train_baseline", "todo1", "todo2", "todo4", "todo6")


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def phases(notebook_path: Path, started: float, wall: float) -> dict[str, float]:
    """Seconds per phase of one autograde, from the executed cells' timestamps."""
    notebook = nbformat.read(notebook_path, as_version=4)
    timed = []
    for cell in notebook.cells:
        execution = cell.metadata.get("execution", {})
        if "iopub.execute_input" in execution and "shell.execute_reply" in execution:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
            meta = cell.metadata.get("nbgrader", {})
            begin, end = _stamp(execution["iopub.execute_input"]), _stamp(execution["shell.execute_reply"])
            timed.append((grade_id, bool(meta.get("grade")), begin, end))
    result = {"nbgrader + kernel start": timed[0][2] - started}
    for grade_id, _, begin, end in timed:
        if grade_id == "setup":
            result["data load (setup cell)"] = end - begin
        if grade_id in TRAINING_CELLS:
            result[f"training: {grade_id}"] = end - begin
    result["test cells"] = sum(end - begin for _, graded, begin, end in timed if graded)
    result["other cells, Part A, saving grades"] = wall - sum(result.values())
    return result


def _via_hw5_autograde(root: Path, budget: str) -> float:
    """hw5-autograde (sandboxed, one worker): the submission's grading seconds."""
    from graders.grading import batch

    report = root / "bench-report.json"
    code = batch.main(
        [
            "hw5",
            "--course",
            str(root),
            "--student",
            REFERENCE.name,
            "--force",
            "--budget",
            budget,
            "--workers",
            "1",
            "--report",
            str(report),
        ]
    )
    (entry,) = json.loads(report.read_text())
    if code != 0 or entry["status"] != "graded" or entry["errors"]:
        raise SystemExit(f"grading failed under the {budget} budget: {entry}")
    return entry["seconds"]


def grade_once(root: Path, budget: str, via: str = "nbgrader") -> tuple[float, dict[str, float], dict]:
    """Wall time, phases, and the verdicts: points per test cell and the accuracy lines."""
    started = time.time()
    if via == "hw5-autograde":
        wall = _via_hw5_autograde(root, budget)
    else:
        outcome = autograde_student(REFERENCE.name, root=root, env={"HW5_GRADING_BUDGET": budget})
        wall = time.time() - started
        if not outcome.ok:
            raise SystemExit(f"grading failed under the {budget} budget: {outcome.detail}")
    notebook = root / "autograded" / REFERENCE.name / "hw5" / "hw5_part_b_cnn.ipynb"
    verdicts = {
        "points": autograded_points(student_grades(course_db_url(root), REFERENCE.name)),
        "accuracy_lines": [
            line
            for cell in nbformat.read(notebook, as_version=4).cells
            for output in cell.get("outputs", [])
            if output.get("name") == "stdout"
            for line in output["text"].splitlines()
            if " updates, test accuracy " in line
        ],
    }
    return wall, (phases(notebook, started, wall) if via == "nbgrader" else {}), verdicts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast-runs", type=int, default=3)
    parser.add_argument("--full-runs", type=int, default=1)
    parser.add_argument("--skip-full", action="store_true", help="fast budget only (minutes instead of ~30)")
    parser.add_argument(
        "--via",
        choices=("nbgrader", "hw5-autograde"),
        default="nbgrader",
        help="plain nbgrader autograde (with phases), or the sandboxed production path",
    )
    args = parser.parse_args(argv)
    if not os.environ.get("HW5_MNIST_PATH"):
        raise SystemExit("set HW5_MNIST_PATH to a local mnist.npz (the benchmark never downloads)")

    with tempfile.TemporaryDirectory(prefix="hw5-bench-") as scratch:
        root = make_scratch_course(Path(scratch))
        REFERENCE.write(root / "submitted", root=root)
        results = {"fast": [grade_once(root, "fast", args.via) for _ in range(args.fast_runs)]}
        if not args.skip_full:
            results["full"] = [grade_once(root, "full", args.via) for _ in range(args.full_runs)]

    medians = {budget: statistics.median(run[0] for run in runs) for budget, runs in results.items()}
    how = "nbgrader autograde" if args.via == "nbgrader" else "hw5-autograde, sandboxed, 1 worker"
    print(f"\nreference submission, {how}, {os.cpu_count()} CPU cores")
    for budget, runs in results.items():
        walls = ", ".join(f"{run[0]:.1f}" for run in runs)
        print(f"  {budget:4s} budget: median {medians[budget]:7.1f} s   (runs: {walls})")
    if "full" in medians:
        print(f"  ratio full / fast: {medians['full'] / medians['fast']:.1f}x")
    if args.via != "nbgrader":
        print("\n(no phases with --via hw5-autograde: run with --via nbgrader for them)")
    else:
        print("\ntime per phase (s), median run of each budget:")
        columns = list(results)
        per_phase = {}
        for budget in columns:
            runs = sorted(results[budget], key=lambda run: run[0])
            per_phase[budget] = runs[len(runs) // 2][1]
        names = list(dict.fromkeys(name for budget in columns for name in per_phase[budget]))
        print("  " + "phase".ljust(36) + "".join(budget.rjust(10) for budget in columns))
        for name in names:
            print("  " + name.ljust(36) + "".join(f"{per_phase[b].get(name, 0.0):10.1f}" for b in columns))

    verdicts = {budget: runs[0][2] for budget, runs in results.items()}
    print("\nverdicts (points per test cell) and recomputed accuracies:")
    for budget, verdict in verdicts.items():
        print(f"  {budget}: {sum(verdict['points'].values()):g} points")
        for line in verdict["accuracy_lines"]:
            print(f"    {line}")
    if "full" in verdicts:
        agree = verdicts["fast"]["points"] == verdicts["full"]["points"]
        print(f"  fast and full verdicts agree on every test cell: {'yes' if agree else 'NO'}")
        suffix = "" if args.via == "nbgrader" else f"-{args.via}"
        record = COURSE_ROOT / "calibration" / f"fast-vs-full{suffix}.json"
        record.parent.mkdir(exist_ok=True)
        record.write_text(
            json.dumps({"via": args.via, "medians_s": medians, "verdicts": verdicts, "agree": agree}, indent=2) + "\n"
        )
        print(f"  recorded in {record.relative_to(COURSE_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
