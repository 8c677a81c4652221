"""Operator commands::

python -m graders.sandbox selftest            # exit 1 (and say why) if the sandbox does not hold
python -m graders.sandbox overhead --runs 3   # sandboxed vs plain nbclient, tiny notebook
python -m graders.sandbox cleanup             # remove trees/cgroups of dead orchestrators
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from .limits import SandboxLimits

_PLAIN = r"""
import sys
sys.modules["rfc3987_syntax"] = None  # the same import shortcut as execute_inside
import nbformat
from nbclient import NotebookClient
nb = nbformat.reads(sys.stdin.read(), as_version=4)
NotebookClient(nb, kernel_name="python3", timeout=60, allow_errors=True).execute()
print(nb.cells[0].outputs[0]["text"], end="")
"""


def _tiny_notebook():
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print(6 * 7)")]
    return nb


def overhead(runs: int) -> dict[str, list[float]]:
    """Wall seconds of a one-cell notebook, three ways: nbclient in this (warm) process,
    as nbgrader runs it; nbclient in a fresh process; :func:`execute_notebook`."""
    import nbformat
    from nbclient import NotebookClient

    from .notebook import execute_notebook
    from .selftest import require_sandbox

    limits = SandboxLimits()
    require_sandbox(limits)
    text = nbformat.writes(_tiny_notebook())
    warm, fresh, boxed = [], [], []
    for _ in range(runs):
        t0 = time.monotonic()
        nb = _tiny_notebook()
        NotebookClient(nb, kernel_name="python3", timeout=60).execute()
        warm.append(time.monotonic() - t0)
        assert nb.cells[0].outputs[0]["text"].strip() == "42"
        t0 = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-c", _PLAIN], input=text, text=True, capture_output=True, check=True
        ).stdout
        fresh.append(time.monotonic() - t0)
        assert out.strip() == "42", out
        t0 = time.monotonic()
        res = execute_notebook(_tiny_notebook(), limits=limits)
        boxed.append(time.monotonic() - t0)
        assert res.status == "ok", (res.status, res.detail)
    return {"in-process": warm, "fresh-proc": fresh, "sandboxed": boxed}


def add_selftest_arguments(parser: argparse.ArgumentParser) -> None:
    """The self-test's options (none: it checks the default limits), which ``hw5 selftest`` shares."""


def run_selftest(args: argparse.Namespace) -> int:
    """Exit 1, and say why, when the sandbox does not hold; else print the self-test's summary."""
    from .errors import SandboxUnavailable
    from .selftest import require_sandbox

    try:
        report = require_sandbox()
    except SandboxUnavailable as exc:
        print(exc, file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m graders.sandbox")
    sub = p.add_subparsers(dest="cmd", required=True)
    add_selftest_arguments(sub.add_parser("selftest"))
    o = sub.add_parser("overhead")
    o.add_argument("--runs", type=int, default=3)
    sub.add_parser("cleanup")
    args = p.parse_args(argv)
    if args.cmd == "selftest":
        return run_selftest(args)
    if args.cmd == "cleanup":
        from .stale import cleanup_stale

        for path in cleanup_stale():
            print("removed", path)
        return 0
    times = overhead(args.runs)
    for k, v in times.items():
        print(f"{k:10s} " + " ".join(f"{x:.2f}" for x in v) + f"   median {statistics.median(v):.2f} s")
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"overhead vs in-process nbclient: {med['sandboxed'] - med['in-process']:+.2f} s; "
        f"vs a fresh process: {med['sandboxed'] - med['fresh-proc']:+.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
