"""Hostile notebooks through the rootless sandbox; run as an unprivileged uid by
tests/sandbox/test_rootless_sandbox.py, which reads the JSON this prints.

``python tests/rootless_checks.py SLEEP_ARG``: every case names its status, detail and
what it printed; sleepers started with ``sleep SLEEP_ARG`` must all be dead afterwards
(the caller checks, from outside).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nbformat  # noqa: E402

from graders.sandbox import SandboxLimits, execute_notebook, require_sandbox  # noqa: E402

LIMITS = SandboxLimits(
    memory_mb=512,
    pids=96,
    tmp_mb=16,
    shm_mb=8,
    scratch_mb=16,
    cell_timeout_s=4,
    notebook_timeout_s=20,
    max_output_bytes=4 * 1024 * 1024,
    max_cell_output_bytes=512 * 1024,
)


def notebook(*sources: str):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


def texts(result) -> list[str]:
    if result.notebook is None:
        return []
    out = []
    for cell in result.notebook.cells:
        parts = []
        for o in cell.outputs:
            if o.output_type == "stream":
                parts.append(o.text)
            elif o.output_type == "error":
                parts.append(f"{o.ename}: {o.evalue}")
            elif "data" in o:
                parts.append(str(o.data.get("text/plain", "")))
        out.append("".join(parts))
    return out


def main(sleep_arg: str) -> dict:
    report = require_sandbox(LIMITS)
    spawn = (
        f"import subprocess\np = subprocess.Popen(['sleep', '{sleep_arg}'], start_new_session=True)\nprint('started')"
    )
    fork_until_refused = (
        "import os, time\nn = 0\n"
        "try:\n"
        "    for _ in range(1000):\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(30); os._exit(0)\n"
        "        n += 1\n"
        "except OSError as e:\n"
        "    print('refused after', n, e.errno)\n"
    )
    fill = (
        "for i in range(12):\n"
        "    with open(f'fill{i}.bin', 'wb') as f:\n"
        "        f.write(b'x' * (15 * 1024 * 1024))\n"
        "import time; time.sleep(30)\n"
    )
    cases = {
        "ok": (notebook("print(6 * 7)"), LIMITS),
        "background": (notebook(spawn), LIMITS),
        "timeout": (
            notebook(
                spawn,
                "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.1)",
            ),
            replace(LIMITS, cell_timeout_s=60, notebook_timeout_s=8),
        ),
        "memory": (notebook("x = b'a' * (5 * 1024 ** 3)\nprint(len(x))"), LIMITS),
        "forks": (notebook(fork_until_refused), LIMITS),
        "disk": (notebook(fill), replace(LIMITS, cell_timeout_s=60)),
    }
    results = {"selftest": report.summary()}
    for name, (nb, limits) in cases.items():
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="hw5-rootless-artifacts-") as artifacts:
            # artifacts_to: the exports are read only once every process of the run is dead
            result = execute_notebook(nb, limits=limits, artifacts_to=artifacts)
        results[name] = {
            "status": result.status,
            "detail": result.detail,
            "texts": texts(result),
            "seconds": round(time.monotonic() - started, 2),
        }
    results["stale"] = stale_tree_removed()
    return results


def stale_tree_removed() -> bool:
    """A run tree left by a dead orchestrator (its files, a folder the student locked) is
    removed by the next start-up cleanup."""
    import os
    import subprocess

    from graders.sandbox.run import RUN_PREFIX
    from graders.sandbox.stale import cleanup_stale

    dead = subprocess.Popen(["true"])
    dead.wait()
    tree = Path(tempfile.gettempdir()) / f"{RUN_PREFIX}{dead.pid}-leftover"
    (tree / "work" / "locked").mkdir(parents=True)
    (tree / "work" / "locked" / "file").write_text("x")
    os.chmod(tree / "work" / "locked", 0)
    return str(tree) in cleanup_stale() and not tree.exists()


if __name__ == "__main__":
    print("ROOTLESS-CHECKS " + json.dumps(main(sys.argv[1])))
