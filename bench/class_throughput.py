"""Class-grading throughput of hw5-autograde: 1 vs 2 workers, sandbox on vs off, in one run.

    python bench/class_throughput.py [--students 8] [--work-seconds 6] [--repeat 1] [--json OUT]
    python bench/class_throughput.py --hw5 [--students 8] [--repeat 1] [--json OUT]

Measured runs are kept in bench/results/ (written with --json).

Builds the toy course (tests/toy_course.py) with ``--students`` correct submissions whose
solution cell does about ``--work-seconds`` of real, single-threaded CPU work (a NumPy
loop with a fixed iteration count, calibrated once on this machine), then grades the
class with ``hw5-autograde`` under four configurations - 1 or 2 workers, sandboxed or
``--no-sandbox`` - each in a fresh copy of the course, and prints submissions per minute
for each, the speed-up of 2 workers over 1, and the sandbox's overhead in percent.
``--hw5`` grades the real thing instead: a scratch HW5 course with ``--students`` copies of
the reference submission (both notebooks, fast budget), each of which must get every
autograded point.

The sandbox costs a fixed time per notebook (a bwrap, a Python that imports nbclient, a
cgroup and tmpfs mounts), so its overhead in percent depends on how long the notebooks
run; the benchmark also prints that fixed cost per submission.

The wall time is the whole ``hw5-autograde`` run (Dask start, the sandbox self-test in
each worker, execution, nbgrader autograde), i.e. what an instructor waits for. All
configurations run in the same process, interleaved, because these machines are noisy;
``--repeat N`` runs the set N times and reports the median.

Measured on the 2-core development machine, quiet, ``--repeat 2`` (walls 57-62, 52-53,
38-39, 33-34 s): 8.1 / 9.1 / 12.4 / 14.4 submissions/min for 1 worker sandboxed /
unsandboxed and 2 workers sandboxed / unsandboxed; 2 vs 1 workers x1.54 (sandbox on),
x1.58 (off); sandbox overhead +12 % (1 worker), +16 % (2 workers). Under load from
other jobs on the machine the numbers swing by tens of percent.

With ``--hw5`` (8 reference submissions, fast budget, quiet, one run; walls 401.7, 407.1,
283.6, 257.2 s): 1.20 / 1.18 / 1.69 / 1.87 submissions/min; 2 vs 1 workers x1.42
(sandbox on), x1.58 (off); sandbox overhead -1 % (1 worker: the second core absorbs the
sandbox's own work) and +10 % (2 workers, both cores busy).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from toy_course import make_toy_course, submit  # noqa: E402

from graders.grading import batch  # noqa: E402

WORK = """import numpy as np
x = np.random.default_rng(0).random(200_000)
for _ in range({rounds}):
    x = np.sqrt(x * x + 1.0) - 0.5
print('work done', float(x.sum()))

def add(a, b):
    return a + b
"""

CONFIGS = [(1, True), (1, False), (2, True), (2, False)]  # (workers, sandbox), interleaved


def calibrate(seconds: float) -> int:
    """Iterations of the WORK loop that take ``seconds`` here (single-threaded NumPy)."""
    import numpy as np

    x = np.random.default_rng(0).random(200_000)
    rounds, started = 0, time.perf_counter()
    while time.perf_counter() - started < 1.0:
        x = np.sqrt(x * x + 1.0) - 0.5
        rounds += 1
    per_round = (time.perf_counter() - started) / rounds
    return max(1, int(seconds / per_round))


def toy_template(base: Path, students: int, rounds: int) -> Path:
    template = make_toy_course(base / "template")
    for i in range(students):
        submit(template, f"student-{i:02d}", WORK.format(rounds=rounds))
    return template


def hw5_template(base: Path, students: int) -> Path:
    """A scratch HW5 course with ``students`` copies of the reference submission."""
    from dataclasses import replace

    from graders.authoring.release import make_scratch_course
    from graders.authoring.sample_class import REFERENCE

    root = make_scratch_course(base / "template")
    for i in range(students):
        replace(REFERENCE, name=f"student-{i:02d}").write(root / "submitted", root=root)
    return root


def grade_once(base: Path, template: Path, assignment: str, students: int, workers: int, sandbox: bool) -> float:
    root = base / f"w{workers}-{'sandbox' if sandbox else 'nosandbox'}-{time.time_ns()}"
    shutil.copytree(template, root)
    report = root / "bench-report.json"
    argv = [
        assignment,
        "--course",
        str(root),
        "--workers",
        str(workers),
        "--report",
        str(report),
        "--budget",
        "fast",
    ] + ([] if sandbox else ["--no-sandbox"])
    started = time.monotonic()
    code = batch.main(argv)
    wall = time.monotonic() - started
    entries = {entry["student"]: entry for entry in json.loads(report.read_text())} if report.exists() else {}
    wrong = [
        s
        for s in (f"student-{i:02d}" for i in range(students))
        if s not in entries or entries[s]["errors"] or entries[s]["score"] != entries[s]["max_score"]
    ]
    if code != 0 or wrong:
        raise SystemExit(f"grading failed (exit {code}) or wrong points for {wrong}: see {root}")
    shutil.rmtree(root, ignore_errors=True)
    return wall


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=8)
    parser.add_argument("--work-seconds", type=float, default=6.0)
    parser.add_argument(
        "--hw5", action="store_true", help="grade copies of the HW5 reference submission instead of toy ones"
    )
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)

    rounds = 0 if args.hw5 else calibrate(args.work_seconds)
    base = Path(tempfile.mkdtemp(prefix="hw5-throughput-"))
    try:
        if args.hw5:
            template, assignment = hw5_template(base, args.students), "hw5"
        else:
            template, assignment = toy_template(base, args.students, rounds), "toy"
        walls: dict[tuple[int, bool], list[float]] = {config: [] for config in CONFIGS}
        for _ in range(args.repeat):
            for workers, sandbox in CONFIGS:
                walls[(workers, sandbox)].append(
                    grade_once(base, template, assignment, args.students, workers, sandbox)
                )
    finally:
        shutil.rmtree(base, ignore_errors=True)

    wall = {config: statistics.median(values) for config, values in walls.items()}
    rate = {config: args.students / (seconds / 60) for config, seconds in wall.items()}
    what = (
        "HW5 reference submissions (fast budget)"
        if args.hw5
        else f"toy submissions, ~{args.work_seconds:g} s of CPU work each ({rounds} NumPy rounds)"
    )
    lines = [f"{args.students} {what}, {os.cpu_count()} cores, median of {args.repeat}:"]
    for workers, sandbox in CONFIGS:
        lines.append(
            f"  {workers} worker(s), sandbox {'on ' if sandbox else 'off'}: "
            f"{wall[(workers, sandbox)]:6.1f} s  {rate[(workers, sandbox)]:5.2f} submissions/min"
        )
    speedup = {sb: rate[(2, sb)] / rate[(1, sb)] for sb in (True, False)}
    overhead = {w: (wall[(w, True)] / wall[(w, False)] - 1) * 100 for w in (1, 2)}
    lines.append(f"  2 vs 1 workers: x{speedup[True]:.2f} (sandbox on), x{speedup[False]:.2f} (sandbox off)")
    # the extra worker-seconds the sandbox cost per submission
    fixed = {w: (wall[(w, True)] - wall[(w, False)]) * w / args.students for w in (1, 2)}
    lines.append(
        f"  sandbox overhead: {overhead[1]:+.0f} % (1 worker), {overhead[2]:+.0f} % (2 workers); "
        f"{fixed[1]:+.2f} s / {fixed[2]:+.2f} s of worker time per submission"
    )
    print("\n".join(lines))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "students": args.students,
                    "hw5": args.hw5,
                    "work_seconds": None if args.hw5 else args.work_seconds,
                    "rounds": rounds,
                    "sandbox_seconds_per_submission": {"1_worker": fixed[1], "2_workers": fixed[2]},
                    "repeat": args.repeat,
                    "cores": os.cpu_count(),
                    "configs": [
                        {
                            "workers": w,
                            "sandbox": sb,
                            "wall_s": wall[(w, sb)],
                            "walls_s": walls[(w, sb)],
                            "submissions_per_min": rate[(w, sb)],
                        }
                        for w, sb in CONFIGS
                    ],
                    "speedup_2_vs_1": {"sandbox": speedup[True], "no_sandbox": speedup[False]},
                    "sandbox_overhead_pct": {"1_worker": overhead[1], "2_workers": overhead[2]},
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
