"""Issue 17's cost: what the training evidence adds to a submission's grading, against the
old path, in one run.

    python bench/evidence_cost.py [--rounds 3] [--class-size 4] [--old-rev 17eaf9f] [--record]

Each round grades a class of ``--class-size`` copies of the reference on one worker
(``hw5-autograde --workers 1``, sandboxed, verifier included, the canary cached before the
clock starts) twice: with this checkout, then with the old path (``--old-rev``, default the
commit before the evidence, checked out in a temporary git worktree and kept warm in a
process of its own). The rounds alternate, so a noisy minute weighs on both sides.

For each side it reports the median, over the submissions after each worker's first (they
run in the sandboxes the worker readied, as in a class), of: a submission's seconds, its
Part B notebook's seconds (the kernel: owned order, snapshots, exports) and its verifier's
seconds after go (reading the evidence and one replayed epoch per trained model); and the
machine's CPU seconds per submission. The added cost is this checkout's median over the
old path's (the issue's bound: at most 10 % per submission). With ``--record`` the run is
added to ``bench/results/evidence-cost.json``. There is no timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.records import append_run, provenance  # noqa: E402
from bench.speed_ratio import class_of, grade  # noqa: E402

RESULTS = REPO / "bench" / "results" / "evidence-cost.json"
PART_B = "hw5_part_b_cnn.ipynb"

#: Run in a checkout of the old path (cwd and PYTHONPATH): a scratch course with the
#: reference; for each line on stdin, a class of argv[1] fresh copies graded on one worker,
#: answered with the report's path and the machine's CPU seconds for the batch.
_OLD_CODE = """
import contextlib, json, shutil, sys, tempfile, time
from pathlib import Path
from graders.authoring.release import make_scratch_course
from graders.authoring.sample_class import REFERENCE
from graders.grading import batch
def busy():
    with open("/proc/stat") as handle:
        fields = [int(value) for value in handle.readline().split()[1:8]]
    import os
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
with tempfile.TemporaryDirectory(prefix="hw5-old-path-") as scratch:
    root = make_scratch_course(Path(scratch) / "course")
    REFERENCE.write(root / "submitted", root=root)
    with contextlib.redirect_stdout(sys.stderr):
        batch.main(["hw5", "--course", str(root), "--force", "--workers", "1", "--student", REFERENCE.name])
    print("ready", flush=True)
    for round_number, _ in enumerate(sys.stdin):
        report = root / f"report-{round_number}.json"
        argv = ["hw5", "--course", str(root), "--force", "--workers", "1", "--no-canary", "--report", str(report)]
        for index in range(int(sys.argv[1])):
            name = f"old-{round_number}-{index}"
            shutil.copytree(root / "submitted" / REFERENCE.name, root / "submitted" / name)
            argv += ["--student", name]
        cpu = busy()
        with contextlib.redirect_stdout(sys.stderr):
            code = batch.main(argv)
        print(json.dumps({"code": code, "cpu": busy() - cpu, "report": json.loads(report.read_text())}), flush=True)
"""


class OldPath:
    """The old path's checkout, warm in a process of its own: ``grade()`` is one class."""

    def __init__(self, rev: str, size: int) -> None:
        self.rev, self.size = rev, size

    def __enter__(self) -> OldPath:
        from graders.grading.data import resolve_mnist

        data = resolve_mnist(REPO, allow_download=False)
        self.scratch = tempfile.TemporaryDirectory(prefix="hw5-old-rev-")
        self.tree = Path(self.scratch.name) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(self.tree), self.rev], cwd=REPO, check=True, capture_output=True
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _OLD_CODE, str(self.size)],
            cwd=self.tree,
            env={**os.environ, "PYTHONPATH": str(self.tree), "HW5_MNIST_PATH": str(data)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        while (line := self.proc.stdout.readline()) and line.strip() != "ready":
            pass
        return self

    def grade(self) -> tuple[float, float, list[dict]]:
        started = time.perf_counter()
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        if answer["code"] != 0:
            raise SystemExit(f"the old path's batch failed (exit status {answer['code']})")
        return time.perf_counter() - started, answer["cpu"], answer["report"]

    def __exit__(self, *exc_info) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=120)
        subprocess.run(["git", "worktree", "remove", "--force", str(self.tree)], cwd=REPO, capture_output=True)
        self.scratch.cleanup()


def warm_entries(entries: list[dict]) -> list[dict]:
    """The submissions a readied sandbox graded (every one after the worker's first)."""
    return [entry for entry in entries if entry["warm_notebooks"]]


def summary(rows: list[dict]) -> dict:
    """Medians over the rounds' warm submissions, and CPU seconds per submission."""
    warm = [entry for row in rows for entry in warm_entries(row["entries"])]
    return {
        "submissions": len(warm),
        "seconds": round(statistics.median(entry["seconds"] for entry in warm), 2),
        "notebook_s": round(statistics.median(entry["notebook_seconds"][PART_B] for entry in warm), 2),
        "verifier_s": round(statistics.median(entry["verify_seconds"] for entry in warm), 2),
        "cpu_s_per_submission": round(statistics.median(row["cpu"] / len(row["entries"]) for row in rows), 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each grading one class per side")
    parser.add_argument("--class-size", type=int, default=4, help="copies of the reference per class (at least 2)")
    parser.add_argument("--old-rev", default="17eaf9f", help="the old path's commit (default: before the evidence)")
    parser.add_argument("--record", action="store_true", help=f"add this run to {RESULTS.relative_to(REPO)}")
    args = parser.parse_args(argv)

    from graders.authoring.release import make_scratch_course
    from graders.authoring.sample_class import REFERENCE

    sides = {"this checkout": [], "old path": []}
    with tempfile.TemporaryDirectory(prefix="hw5-evidence-") as scratch, OldPath(args.old_rev, args.class_size) as old:
        root = make_scratch_course(Path(scratch) / "course")
        REFERENCE.write(root / "submitted", root=root)
        grade(root, [REFERENCE.name], workers=1, canary=True)  # the canary, cached from here on
        for number in range(args.rounds):
            names = class_of(root, args.class_size, prefix=f"new-{number}")
            wall, cpu, entries = grade(root, names, workers=1)
            sides["this checkout"].append({"wall": wall, "cpu": cpu, "entries": entries})
            wall, cpu, entries = old.grade()
            sides["old path"].append({"wall": wall, "cpu": cpu, "entries": entries})

    new, before = summary(sides["this checkout"]), summary(sides["old path"])
    added = {key: round(100 * (new[key] / before[key] - 1), 1) for key in new if key != "submissions"}
    for name, row in (("this checkout", new), (f"old path ({args.old_rev})", before)):
        print(
            f"{name:>22}: {row['seconds']:.1f} s per submission (notebook {row['notebook_s']:.1f} s, "
            f"verifier {row['verifier_s']:.2f} s), {row['cpu_s_per_submission']:.1f} CPU s; "
            f"{row['submissions']} warm submissions"
        )
    print(
        f"added by the evidence: {added['seconds']:+.1f} % per submission (issue 17: at most +10 %), "
        f"notebook {added['notebook_s']:+.1f} %, verifier {added['verifier_s']:+.1f} %, CPU {added['cpu_s_per_submission']:+.1f} %"
    )
    if args.record:
        append_run(
            RESULTS,
            {
                **provenance(),
                "old_rev": args.old_rev,
                "rounds": args.rounds,
                "class_size": args.class_size,
                "this_checkout": new,
                "old_path": before,
                "added_percent": added,
            },
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
