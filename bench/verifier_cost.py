"""What the out-of-kernel verifier and the canary add to grading HW5, measured in one run.

    python bench/verifier_cost.py [--runs 3] [--students 2]

Grades copies of the reference submission with ``hw5-autograde`` (sandboxed, one worker,
fast budget) ``--runs`` times. Each student's report splits its worker time into the
sandboxed execution and the verifier (``verify_seconds``), measured within the same job,
so the ratio is side by side by construction on these noisy machines. Then it times the
canary twice: with an empty cache (the reference graded in a scratch course) and with the
pass cached. Prints the figures and records them in ``bench/results/verifier-cost.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graders.authoring.release import make_scratch_course  # noqa: E402
from graders.authoring.sample_class import REFERENCE  # noqa: E402
from graders.course import COURSE_ROOT  # noqa: E402
from graders.grading import batch  # noqa: E402


def grade(root: Path, students: list[str]) -> list[dict]:
    report = root / "bench-report.json"
    code = batch.main(
        [
            "hw5",
            "--course",
            str(root),
            "--force",
            "--workers",
            "1",
            "--no-canary",
            "--report",
            str(report),
            "--student",
            *students,
        ]
    )
    entries = json.loads(report.read_text())
    if code != 0 or any(entry["status"] != "graded" or entry["errors"] for entry in entries):
        raise SystemExit(f"grading failed: {entries}")
    return entries


def canary_seconds(root: Path, options: dict) -> float:
    started = time.monotonic()
    refusal = batch.check_canary(root, "hw5", options)
    if refusal:
        raise SystemExit(refusal)
    return time.monotonic() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--students", type=int, default=2, help="copies of the reference per run")
    args = parser.parse_args(argv)
    if not os.environ.get("HW5_MNIST_PATH"):
        raise SystemExit("set HW5_MNIST_PATH to a local mnist.npz (the benchmark never downloads)")

    with tempfile.TemporaryDirectory(prefix="hw5-bench-") as scratch:
        root = make_scratch_course(Path(scratch) / "course")
        names = [f"reference-{i}" for i in range(args.students)]
        for name in names:
            replace(REFERENCE, name=name).write(root / "submitted", root=root)
        entries = [entry for _ in range(args.runs) for entry in grade(root, names)]
        os.environ["XDG_CACHE_HOME"] = str(Path(scratch) / "cache")  # an empty canary cache
        options = dict(
            sandbox=True,
            budget="fast",
            threads=os.cpu_count() or 1,
            data_file=os.path.abspath(os.environ["HW5_MNIST_PATH"]),
            limits={},
        )
        canary = {"uncached_s": canary_seconds(root, options), "cached_s": canary_seconds(root, options)}

    totals = [entry["seconds"] for entry in entries]
    verifier = [entry["verify_seconds"] for entry in entries]
    shares = [v / (t - v) for t, v in zip(totals, verifier)]
    result = {
        "what": "reference submission, hw5-autograde, sandboxed, 1 worker, fast budget",
        "cores": os.cpu_count(),
        "submissions": len(entries),
        "worker_seconds_median": round(statistics.median(totals), 1),
        "verifier_seconds_median": round(statistics.median(verifier), 1),
        "verifier_added_fraction_median": round(statistics.median(shares), 3),
        "verifier_added_fraction_range": [round(min(shares), 3), round(max(shares), 3)],
        "canary": {key: round(value, 1) for key, value in canary.items()},
        "command": "python bench/verifier_cost.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    print(f"\n{result['what']}, {result['cores']} cores, {len(entries)} gradings")
    print(f"  worker time per submission: median {result['worker_seconds_median']} s")
    print(f"  of which the verifier:       median {result['verifier_seconds_median']} s")
    print(
        f"  the verifier adds:           median {100 * result['verifier_added_fraction_median']:.1f} % "
        f"(range {100 * min(shares):.1f}-{100 * max(shares):.1f} %) to execution alone"
    )
    print(f"  canary: {canary['uncached_s']:.1f} s with an empty cache, {canary['cached_s']:.2f} s cached")
    record = COURSE_ROOT / "bench" / "results" / "verifier-cost.json"
    record.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  recorded in {record.relative_to(COURSE_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
