"""How hw5-autograde scales with Dask workers: 1, 2, 4, 8 and 16, side by side, in one run.

    python bench/cluster_scaling.py [--workers 1 2 4 8 16] [--per-worker 2] [--sleep 45]
                                    [--modes sandbox plain] [--json bench/results/cluster-scaling.json]

Toy submissions (tests/toy_course.py) whose solution cell sleeps ``--sleep`` seconds, so
TensorFlow's compute is out of the picture and what is measured is the grader: intake,
shipping the content, Dask, the sandbox, nbgrader's scoring. For each worker count N a
scheduler with N worker processes is started (not timed), then ``hw5-autograde
--scheduler`` grades ``--per-worker`` x N submissions through the real pipeline (the
content shipped by sha256, as to a remote cluster). Printed per N and mode:

- the wall time of the ``hw5-autograde`` run and its throughput (submissions per minute);
- the speed-up over 1 worker and the efficiency (speed-up / N; 1.0 is linear);
- the orchestrator's serial time per submission: intake (``Grader.prepare``) and scoring
  (``Grader.record``, nbgrader's autograde and the gradebook), which no worker count can
  shorten, and the once-per-batch packing and shipping.

The workers here share this machine's cores (2 on the development machine): each
notebook still costs CPU outside the sleep (a kernel's start-up, the sandbox, the
executor), so with many workers the figures measure this machine's CPU as much as the
grader; the JSON records the load average before and after each run. The measured
figures are in bench/results/cluster-scaling.json; docs/cluster.md sums them up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from toy_course import CORRECT, make_toy_course, submit  # noqa: E402

from graders.grading import batch  # noqa: E402
from graders.grading import grader as grader_module  # noqa: E402

SLEEPER = "import time\ntime.sleep({seconds})\n" + CORRECT


class SerialClock:
    """Time spent in the orchestrator's own per-submission steps, and in shipping."""

    def __init__(self):
        self.prepare = self.record = self.ship = 0.0

    def install(self):
        clock = self
        prepare, record, ship = grader_module.Grader.prepare, grader_module.Grader.record, grader_module.ship

        def timed_prepare(self, *args, **kwargs):
            started = time.perf_counter()
            try:
                return prepare(self, *args, **kwargs)
            finally:
                clock.prepare += time.perf_counter() - started

        def timed_record(self, *args, **kwargs):
            started = time.perf_counter()
            try:
                return record(self, *args, **kwargs)
            finally:
                clock.record += time.perf_counter() - started

        def timed_ship(*args, **kwargs):
            started = time.perf_counter()
            try:
                return ship(*args, **kwargs)
            finally:
                clock.ship += time.perf_counter() - started

        grader_module.Grader.prepare, grader_module.Grader.record = timed_prepare, timed_record
        grader_module.ship = timed_ship
        return lambda: (
            setattr(grader_module.Grader, "prepare", prepare),
            setattr(grader_module.Grader, "record", record),
            setattr(grader_module, "ship", ship),
        )


def grade(base: Path, workers: int, students: int, sleep: float, sandbox: bool) -> dict:
    from distributed import LocalCluster

    root = make_toy_course(base / f"w{workers}-{'sandbox' if sandbox else 'plain'}-{time.time_ns()}")
    for i in range(students):
        submit(root, f"student-{i:02d}", SLEEPER.format(seconds=sleep))
    report = root / "report.json"
    clock = SerialClock()
    with LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, memory_limit=0, dashboard_address=":0"
    ) as cluster:
        cluster.wait_for_workers(workers, timeout=300)
        load_before = os.getloadavg()[0]
        restore = clock.install()
        try:
            started = time.monotonic()
            code = batch.main(
                [
                    "toy",
                    "--course",
                    str(root),
                    "--scheduler",
                    cluster.scheduler_address,
                    "--no-canary",
                    "--cell-timeout",
                    str(int(sleep * 4 + 60)),
                    "--notebook-timeout",
                    str(int(sleep * 4 + 120)),
                    "--report",
                    str(report),
                ]
                + ([] if sandbox else ["--no-sandbox"])
            )
            wall = time.monotonic() - started
        finally:
            restore()
    entries = json.loads(report.read_text())
    wrong = [e["student"] for e in entries if e["status"] != "graded" or e["errors"] or e["score"] != 2]
    if code != 0 or wrong or len(entries) != students:
        raise SystemExit(f"grading failed (exit {code}) or wrong points for {wrong}: see {root}")
    shutil.rmtree(root, ignore_errors=True)
    return {
        "workers": workers,
        "sandbox": sandbox,
        "submissions": students,
        "wall_s": round(wall, 2),
        "submissions_per_min": round(students / wall * 60, 2),
        "job_s_mean": round(sum(e["seconds"] for e in entries) / students, 2),
        "serial_s_per_submission": round((clock.prepare + clock.record) / students, 3),
        "intake_s_per_submission": round(clock.prepare / students, 3),
        "scoring_s_per_submission": round(clock.record / students, 3),
        "ship_s_per_batch": round(clock.ship, 3),
        "load_avg_before": round(load_before, 2),
        "load_avg_after": round(os.getloadavg()[0], 2),
    }


def table(runs: list[dict]) -> str:
    lines = []
    for sandbox in sorted({run["sandbox"] for run in runs}, reverse=True):
        mine = [run for run in runs if run["sandbox"] == sandbox]
        one = next((run for run in mine if run["workers"] == 1), mine[0])
        lines.append(f"sandbox {'on' if sandbox else 'off (--no-sandbox)'}:")
        lines.append(
            "  workers  subs   wall s  subs/min  speed-up  efficiency  job s  serial s/sub "
            "(intake + scoring)  ship s  load before/after"
        )
        for run in mine:
            speedup = run["submissions_per_min"] / one["submissions_per_min"] * one["workers"]
            lines.append(
                f"  {run['workers']:7d}  {run['submissions']:4d}  {run['wall_s']:7.1f}  {run['submissions_per_min']:8.2f}"
                f"  x{speedup:7.2f}  {speedup / run['workers']:10.2f}  {run['job_s_mean']:5.1f}"
                f"  {run['serial_s_per_submission']:12.3f} ({run['intake_s_per_submission']:.3f} + "
                f"{run['scoring_s_per_submission']:.3f})  {run['ship_s_per_batch']:6.3f}"
                f"  {run['load_avg_before']:.1f}/{run['load_avg_after']:.1f}"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--per-worker", type=int, default=2, help="submissions per worker")
    parser.add_argument("--sleep", type=float, default=45.0, help="seconds each submission sleeps")
    parser.add_argument("--modes", nargs="+", choices=("sandbox", "plain"), default=["sandbox", "plain"])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if "HW5_MNIST_PATH" in os.environ:  # the toy course reads no data: ship none
        del os.environ["HW5_MNIST_PATH"]
    base = Path(tempfile.mkdtemp(prefix="hw5-scaling-"))
    runs = []
    try:
        for mode in args.modes:
            for workers in args.workers:
                runs.append(grade(base, workers, workers * args.per_worker, args.sleep, mode == "sandbox"))
                print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(
        f"toy submissions sleeping {args.sleep:g} s each, {args.per_worker} per worker, "
        f"{os.cpu_count()} cores on this machine:\n" + table(runs)
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "command": "python bench/cluster_scaling.py "
                    + " ".join(argv if argv is not None else sys.argv[1:]),
                    "sleep_s": args.sleep,
                    "per_worker": args.per_worker,
                    "cores": os.cpu_count(),
                    "runs": runs,
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
