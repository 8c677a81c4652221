"""Issue 19's measure: one submission's grading time against the bare training, in one run.

    python bench/speed_ratio.py [--runs 3] [--class-size 4] [--record]

1. **The floor**: the five trainings of a fast-budget grading (baseline, TODO 1, 2, 4, 6),
   bare, in one warm process (TensorFlow imported and the budget's data loaded before the
   clock starts), as the kernel runs them: op determinism, the notebook's seed. Median of
   ``--runs``, each repetition run just before one of the production path's.
2. **The production path**: ``hw5-autograde --workers 1`` on a class of ``--runs`` + 1
   copies of the reference submission, sandboxed, verifier included: each submission's
   own seconds from the report (Dask's start-up, once per batch, is left out), median of
   those after the worker's first (they run in the sandboxes the worker readied while the
   one before ran). Also printed: the class's wall time and CPU seconds per submission,
   and ``--runs`` one-submission batches (nothing readied: the cold latency), alternating
   with the floor. The canary is graded once before the clock starts (its verdict is
   cached by content).
3. With ``--class-size N``: a class of N copies of the reference, ``--workers 2``: its
   wall time, the submissions per minute, and the CPU seconds per submission.

It prints the production path's median over the floor's (issue 19's goal: at most 1.5),
and with ``--record`` adds the run to ``bench/results/speed-ratio.json`` (a list, oldest first). Both are measured in the
same run because these machines are noisy; there is no timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RESULTS = REPO / "bench" / "results" / "speed-ratio.json"
TRAINING_RUNS = ("baseline", "eta_large", "eta_small", "momentum", "two_conv")

#: A warm process of its own (nothing of the grading runs shares it): TensorFlow imported
#: and the budget's data loaded once; each line "go" on stdin runs the five trainings once
#: and answers their seconds, so that the floor and the production path alternate.
_FLOOR_CODE = """
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras, tensorflow as tf
from graders.authoring import reference
from graders.course import hw5_data as course_loader
hw5_data = course_loader()
(x_train, y_train), (x_test, y_test) = hw5_data.load_mnist(hw5_data.BUDGETS["fast"])
x_train, y_train = hw5_data.preprocess(x_train, y_train)
x_test, y_test = hw5_data.preprocess(x_test, y_test)
tf.config.experimental.enable_op_determinism()
print("ready", flush=True)
for line in sys.stdin:
    keras.utils.set_random_seed(0)
    started = time.perf_counter()
    for run in json.loads(sys.argv[1]):
        reference.train(reference.build_run(run), x_train, y_train, x_test, y_test)
    print(json.dumps(time.perf_counter() - started), flush=True)
"""


class Floor:
    """The five trainings, bare, in one warm process: ``once()`` is one repetition's seconds."""

    def __enter__(self) -> Floor:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _FLOOR_CODE, json.dumps(TRAINING_RUNS)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self.proc.stdout.readline().strip() != "ready":
            raise SystemExit("the floor's process did not start")
        return self

    def once(self) -> float:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def __exit__(self, *exc_info) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def grade(root: Path, students: list[str], workers: int, canary: bool = False) -> tuple[float, float, list[dict]]:
    """One ``hw5-autograde`` batch of ``students``: (wall s, CPU s of every process, report)."""
    from graders.grading import batch

    report = root / "bench-report.json"
    argv = ["hw5", "--course", str(root), "--force", "--workers", str(workers), "--report", str(report)]
    for student in students:
        argv += ["--student", student]
    if not canary:
        argv.append("--no-canary")
    cpu, wall = _children_cpu() + _own_cpu(), time.perf_counter()
    code = batch.main(argv)
    wall, cpu = time.perf_counter() - wall, _children_cpu() + _own_cpu() - cpu
    entries = json.loads(report.read_text())
    bad = [entry for entry in entries if entry["status"] != "graded" or entry["errors"]]
    if code != 0 or bad:
        raise SystemExit(f"grading failed: {bad or code}")
    return wall, cpu, entries


def _submission(entry: dict, cpu: float) -> dict:
    """One report entry's timings (``cpu``: the CPU seconds charged to it)."""
    return {
        "seconds": round(entry["seconds"], 2),
        "notebooks_s": entry["notebook_seconds"],
        "verifier_s": round(entry["verify_seconds"], 2),
        "warm_notebooks": entry["warm_notebooks"],
        "cpu_s": round(cpu, 1),
    }


def class_of(root: Path, size: int, prefix: str = "copy") -> list[str]:
    """``size`` copies of the reference submission in ``root/submitted``: their names."""
    from graders.authoring.sample_class import REFERENCE

    source = root / "submitted" / REFERENCE.name
    names = [f"{prefix}-{index}" for index in range(size)]
    for name in names:
        shutil.copytree(source, root / "submitted" / name, dirs_exist_ok=True)
    return names


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions for each median (at least 3)")
    parser.add_argument("--class-size", type=int, default=0, help="also grade a class of N copies with 2 workers")
    parser.add_argument("--record", action="store_true", help=f"add this run to {RESULTS.relative_to(REPO)}")
    parser.add_argument("--label", default="", help="what this run measures (kept with it)")
    args = parser.parse_args(argv)

    from graders.authoring.release import make_scratch_course
    from graders.authoring.sample_class import REFERENCE

    with tempfile.TemporaryDirectory(prefix="hw5-speed-") as scratch:
        root = make_scratch_course(Path(scratch) / "course")
        REFERENCE.write(root / "submitted", root=root)
        grade(root, [REFERENCE.name], workers=1, canary=True)  # the canary, cached from here on

        floors, alone = [], []
        with Floor() as floor_process:
            for _ in range(args.runs):  # alternating: a noisy minute weighs on both sides
                floors.append(floor_process.once())
                _, cpu, (entry,) = grade(root, [REFERENCE.name], workers=1)
                alone.append(_submission(entry, cpu))
            # A class on one worker: each submission after the first runs in sandboxes
            # the worker readied while the one before it ran.
            names = class_of(root, args.runs + 1, prefix="in-class")
            class_wall, class_cpu, entries = grade(root, names, workers=1)
            floors.append(floor_process.once())
        in_class = [_submission(entry, class_cpu / len(entries)) for entry in entries]
        production = [run for run in in_class if run["warm_notebooks"]]
        throughput = None
        if args.class_size:
            names = class_of(root, args.class_size)
            wall, cpu, _ = grade(root, names, workers=2)
            throughput = {
                "submissions": args.class_size,
                "workers": 2,
                "wall_s": round(wall, 1),
                "per_minute": round(60 * args.class_size / wall, 2),
                "cpu_s_per_submission": round(cpu / args.class_size, 1),
            }

    floor = statistics.median(floors)
    path = statistics.median(run["seconds"] for run in production)
    cold = statistics.median(run["seconds"] for run in alone)
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True)
    result = {
        "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit.stdout.strip(),
        "label": args.label,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "floor_s": [round(value, 2) for value in floors],
        "floor_median_s": round(floor, 2),
        "production": production,
        "production_median_s": round(path, 2),
        "ratio": round(path / floor, 2),
        "one_worker_class": {
            "submissions": len(in_class),
            "wall_s": round(class_wall, 1),
            "wall_per_submission_s": round(class_wall / len(in_class), 2),
            "cpu_s_per_submission": round(class_cpu / len(in_class), 1),
        },
        "alone": alone,
        "alone_median_s": round(cold, 2),
        "alone_ratio": round(cold / floor, 2),
        "class": throughput,
    }
    print(f"floor (five trainings, bare, warm):  median {floor:.1f} s  {[round(v, 1) for v in floors]}")
    print(f"production path, in a class on one worker (spares ready): median {path:.1f} s")
    print(f"ratio: {path / floor:.2f}  (issue 19's goal: at most 1.5)")
    for run in in_class:
        print(
            f"  {run['seconds']:.1f} s: notebooks {run['notebooks_s']}, verifier {run['verifier_s']} s, "
            f"readied ahead: {run['warm_notebooks'] or 'none, the first of the worker'}"
        )
    print(
        f"  the class of {len(in_class)}: {class_wall:.1f} s wall ({class_wall / len(in_class):.1f} s each, "
        f"Dask's start-up and the cold first included), {class_cpu / len(in_class):.1f} CPU s each"
    )
    print(
        f"one submission alone (a batch of its own, nothing readied): median {cold:.1f} s "
        f"{[run['seconds'] for run in alone]}, ratio {cold / floor:.2f}"
    )
    if throughput:
        print(
            f"class of {throughput['submissions']}, 2 workers: {throughput['wall_s']} s, "
            f"{throughput['per_minute']}/min, {throughput['cpu_s_per_submission']} CPU s each"
        )
    if args.record:
        runs = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
        RESULTS.write_text(json.dumps([*runs, result], indent=2) + "\n")
        print("recorded in", RESULTS.relative_to(REPO))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
