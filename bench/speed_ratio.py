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
3. With ``--class-size N``: a class of N copies of the reference, ``--workers 2``, graded
   by this checkout and by the old path (``--old-rev``, default the commit before issue
   19's work, checked out in a temporary git worktree), one after the other: each one's
   wall time, submissions per minute and CPU seconds per submission.

CPU seconds are the whole machine's busy time while a batch runs (``/proc/stat``: every
process, the sandboxes' included, which ``getrusage`` does not see), divided by the
submissions: run it on an otherwise quiet machine.

It prints the production path's median over the floor's (issue 19's goal: at most 1.5),
and with ``--record`` adds the run to ``bench/results/speed-ratio.json`` (a list, oldest first). Both are measured in the
same run because these machines are noisy; there is no timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.records import append_run, provenance  # noqa: E402

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


def machine_cpu() -> float:
    """The machine's busy CPU seconds since boot (user, nice, system, irq and softirq of
    every core, from ``/proc/stat``): every process's, the sandboxes' included."""
    with open("/proc/stat") as handle:
        fields = [int(value) for value in handle.readline().split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def grade(root: Path, students: list[str], workers: int, canary: bool = False) -> tuple[float, float, list[dict]]:
    """One ``hw5-autograde`` batch of ``students``: (wall s, CPU s of every process, report)."""
    from graders.grading import batch

    report = root / "bench-report.json"
    argv = ["hw5", "--course", str(root), "--force", "--workers", str(workers), "--report", str(report)]
    for student in students:
        argv += ["--student", student]
    if not canary:
        argv.append("--no-canary")
    cpu, wall = machine_cpu(), time.perf_counter()
    code = batch.main(argv)
    wall, cpu = time.perf_counter() - wall, machine_cpu() - cpu
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


#: Run in a checkout of the old path (cwd and PYTHONPATH): a scratch course with a class of
#: argv[1] copies of the reference, graded with 2 workers; prints the batch's exit status.
_OLD_CLASS_CODE = """
import contextlib, shutil, sys, tempfile
from pathlib import Path
from graders.authoring.release import make_scratch_course
from graders.authoring.sample_class import REFERENCE
from graders.grading import batch
with tempfile.TemporaryDirectory(prefix="hw5-old-path-") as scratch:
    root = make_scratch_course(Path(scratch) / "course")
    REFERENCE.write(root / "submitted", root=root)
    batch.main(["hw5", "--course", str(root), "--force", "--workers", "1", "--student", REFERENCE.name])
    argv = ["hw5", "--course", str(root), "--force", "--workers", "2", "--no-canary"]
    for index in range(int(sys.argv[1])):
        name = f"copy-{index}"
        shutil.copytree(root / "submitted" / REFERENCE.name, root / "submitted" / name)
        argv += ["--student", name]
    print("ready", flush=True)
    sys.stdin.readline()  # the clock starts now
    with contextlib.redirect_stdout(sys.stderr):  # the batch's own lines
        code = batch.main(argv)
    print(code, flush=True)
"""


def old_path_class(rev: str, size: int) -> dict:
    """A class of ``size`` copies of the reference graded with 2 workers by the checkout of
    ``rev`` (a temporary git worktree; the canary is graded before the clock starts)."""
    from graders.grading.data import resolve_mnist

    data = resolve_mnist(REPO, allow_download=False)
    with tempfile.TemporaryDirectory(prefix="hw5-old-rev-") as scratch:
        tree = Path(scratch) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), rev], cwd=REPO, check=True, capture_output=True
        )
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _OLD_CLASS_CODE, str(size)],
                cwd=tree,
                env={**os.environ, "PYTHONPATH": str(tree), "HW5_MNIST_PATH": str(data)},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            while (line := proc.stdout.readline()) and line.strip() != "ready":
                pass
            cpu, wall = machine_cpu(), time.perf_counter()
            proc.stdin.write("go\n")
            proc.stdin.flush()
            code = proc.stdout.readline().strip()
            wall, cpu = time.perf_counter() - wall, machine_cpu() - cpu
            proc.wait(timeout=120)
            if code != "0":
                raise SystemExit(f"the old path's batch failed (exit status {code or proc.returncode})")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, capture_output=True)
    return _throughput(rev, size, wall, cpu)


def _throughput(path: str, size: int, wall: float, cpu: float) -> dict:
    return {
        "path": path,
        "submissions": size,
        "workers": 2,
        "wall_s": round(wall, 1),
        "per_minute": round(60 * size / wall, 2),
        "cpu_s_per_submission": round(cpu / size, 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions for each median (at least 3)")
    parser.add_argument(
        "--class-size", type=int, default=0, help="also grade a class of N copies with 2 workers, here and on --old-rev"
    )
    parser.add_argument("--old-rev", default="5103f18", help="the old path's commit (default: before issue 19's work)")
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
            throughput = [_throughput("this checkout", args.class_size, wall, cpu)]
            throughput.append(old_path_class(args.old_rev, args.class_size))

    floor = statistics.median(floors)
    path = statistics.median(run["seconds"] for run in production)
    cold = statistics.median(run["seconds"] for run in alone)
    result = {
        **provenance(),
        "label": args.label,
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
    for row in throughput or ():
        print(
            f"class of {row['submissions']}, 2 workers, {row['path']}: {row['wall_s']} s, "
            f"{row['per_minute']}/min, {row['cpu_s_per_submission']} CPU s each"
        )
    if args.record:
        append_run(RESULTS, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
