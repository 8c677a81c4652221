"""Run INSIDE the sandbox: execute one notebook with nbclient, always send a result.

    python -P -m graders.sandbox.execute_inside IN.ipynb --result-fd N \\
        --cell-timeout N --kernel python3

Results go to the host through the pipe ``N`` (see :mod:`graders.sandbox.channel`),
never through a file: the student's kernel runs as the same uid, and could rewrite any
file this process writes (a background process did exactly that to the old
``executed.ipynb``). The pipe is sealed before the kernel starts: it is not inherited
(close-on-exec), and this process makes itself non-dumpable, so no process of the
sandbox uid can open it through ``/proc/<pid>/fd`` or take it with ``pidfd_getfd``.

* A ``cell`` frame follows every executed cell, so when the kernel dies, or the host
  kills everything at the notebook time limit, the outputs of the cells that ran are
  already on the host.
* A ``status`` frame comes last: ``{"status": "ok"|"kernel_died"|"timeout"|"error",
  "detail": ...}`` plus a few counters. No status frame means this process was killed.
* Outputs from the input notebook are cleared first (forged outputs never survive),
  a timed-out cell gets an explicit error output (nbgrader counts a test cell with no
  output as passed), so does a cell whose execute reply says it raised while it shows
  no traceback (a hidden exception), cells that never ran get a "not executed" error
  output, and the outputs kept per cell and in total are capped.

What the kernel prints is still the student's: a kernel can lie about its own cells
(in-kernel cheats: see docs/security.md, "The judge is outside the student's kernel"). It can
no longer lie about the others.

Only nbformat, nbclient and this package's kit are needed; nothing of the course is imported.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

from .outputs import (
    HIDDEN_ERROR_ENAME,
    TIMEOUT_ENAME,
    TOO_LARGE_ENAME,
    error_output,
    has_error,
    mark_unfinished,
)

STATUS_OK = "ok"
STATUS_KERNEL_DIED = "kernel_died"
STATUS_TIMEOUT = "timeout"
STATUS_ERROR = "error"


def seal_result_channel(fd: int) -> None:
    """Keep the result pipe to this process: close-on-exec, and this process not
    dumpable (``/proc/<pid>/fd`` then belongs to root, and ptrace and ``pidfd_getfd``
    are refused to every process of the sandbox uid). Raises OSError when it cannot."""
    import ctypes

    os.set_inheritable(fd, False)
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_dumpable = 4
    if libc.prctl(pr_set_dumpable, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def send_frame(fd: int, frame: dict) -> None:
    """One length-prefixed JSON frame (see graders.sandbox.channel)."""
    from .channel import encode_frame

    view = memoryview(encode_frame(frame))
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _make_client_class():
    from nbclient import NotebookClient

    class CappedClient(NotebookClient):
        """NotebookClient that drops outputs beyond a per-cell and a total byte cap."""

        max_cell_output_bytes = 2 * 1024 * 1024
        max_total_output_bytes = 16 * 1024 * 1024

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._cell_bytes: dict[int, int] = {}
            self._total_bytes = 0
            self.truncated: set[int] = set()

        def output(self, outs, msg, display_id, cell_index):
            try:
                size = len(json.dumps(msg.get("content", {}), default=str))
            except Exception:  # noqa: BLE001 - unserialisable content: count as huge
                size = self.max_cell_output_bytes + 1
            used = self._cell_bytes.get(cell_index, 0) + size
            if msg.get("msg_type") != "error" and (
                used > self.max_cell_output_bytes or self._total_bytes + size > self.max_total_output_bytes
            ):
                self.truncated.add(cell_index)
                return None
            self._cell_bytes[cell_index] = used
            self._total_bytes += size
            return super().output(outs, msg, display_id, cell_index)

    return CappedClient


def _read_requests(path: str) -> dict:
    if not path:
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def export_code(request: dict, export_dir: str, exporter_path: str = "") -> str:
    """The code of one export cell. It loads the exporter from its file, so a student's
    ``sys.modules`` entry or import hook for ``graders`` does not silence the export of
    the cells their work honestly passes (what it exports is still only a claim). The
    student's trace and profile hooks are off while it runs and back on after it: a
    tracer that slows every call must not decide whether the export ends in time."""
    call = f'export_cell(__import__("json").loads({json.dumps(request)!r}), {export_dir!r})'
    if not exporter_path:
        return f'__import__("graders.checks.kernel_export", fromlist=["export_cell"]).{call}'
    return (
        "def __hw5_export__():\n"
        "    import importlib.util, sys\n"
        "    trace, profile = sys.gettrace(), sys.getprofile()\n"
        "    sys.settrace(None)\n"
        "    sys.setprofile(None)\n"
        "    try:\n"
        f'        spec = importlib.util.spec_from_file_location("hw5_export", {exporter_path!r})\n'
        "        module = importlib.util.module_from_spec(spec)\n"
        "        spec.loader.exec_module(module)\n"
        f"        module.{call}\n"
        "    finally:\n"
        "        sys.settrace(trace)\n"
        "        sys.setprofile(profile)\n"
        "__hw5_export__()\n"
        "del __hw5_export__\n"
    )


def insert_export_cells(nb, requests: dict, export_dir: str, exporter_path: str = "") -> list[int | None]:
    """After each graded test cell named in ``requests``, insert a cell that has the
    kernel write what the out-of-kernel verifier needs (``graders.checks.kernel_export``).

    What the kernel writes is only a claim: the verifier checks it, and a missing or
    malformed export fails that test cell. Returns, per executed cell, the index of the
    cell in the notebook as sent (None for an inserted export cell)."""
    import nbformat

    cells, origin = [], []
    for index, cell in enumerate(nb.cells):
        cells.append(cell)
        origin.append(index)
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if cell.get("cell_type") == "code" and grade_id in requests and export_dir:
            request = {**requests[grade_id], "grade_id": grade_id}
            cells.append(nbformat.v4.new_code_cell(export_code(request, export_dir, exporter_path)))
            origin.append(None)
    nb.cells = cells
    return origin


def _skip_slow_imports() -> None:
    """jsonschema imports ``rfc3987_syntax`` when installed, which builds a Lark
    grammar at import time (about 2 s here, per sandboxed notebook). nbformat's schema
    uses no format that needs it, and jsonschema treats it as optional."""
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def _kernel_env(args: argparse.Namespace) -> dict[str, str]:
    kernel_env = dict(os.environ)
    kernel_env.pop("PYTHONSAFEPATH", None)
    if args.kernel_pythonpath:
        kernel_env["PYTHONPATH"] = args.kernel_pythonpath
    else:
        kernel_env.pop("PYTHONPATH", None)  # the kernel does not see this kit
    kernel_env["NBGRADER_EXECUTION"] = "autograde"
    return kernel_env


def _new_client(client_cls, nb, args: argparse.Namespace, on_cell_executed):
    return client_cls(
        nb,
        timeout=args.cell_timeout,
        startup_timeout=args.startup_timeout,
        kernel_name=args.kernel,
        allow_errors=True,
        interrupt_on_timeout=True,
        error_on_timeout={
            "ename": TIMEOUT_ENAME,
            "evalue": f"cell timed out after {args.cell_timeout} s",
            "traceback": [f"{TIMEOUT_ENAME}: cell timed out after {args.cell_timeout} s"],
        },
        record_timing=False,
        shutdown_kernel="immediate",  # every cell has run: a graceful exit of TensorFlow costs seconds
        resources={"metadata": {"path": os.path.dirname(os.path.abspath(args.notebook))}},
        on_cell_executed=on_cell_executed,
    )


def warm_up_code(modules: list[str]) -> str:
    """Code that imports ``modules`` (each one that fails is left for the notebook to meet);
    an entry ``module:function`` also calls that function of it, without arguments."""
    return (
        "def __hw5_warm_up__():\n"
        "    import importlib\n"
        f"    for entry in {sorted(set(modules))!r}:\n"
        "        name, _, function = entry.partition(':')\n"
        "        try:\n"
        "            module = importlib.import_module(name)\n"
        "            if function:\n"
        "                getattr(module, function)()\n"
        "        except Exception:\n"
        "            pass\n"
        "__hw5_warm_up__()\n"
        "del __hw5_warm_up__\n"
    )


def _start_kernel(client, kernel_env: dict[str, str], warm_up: str) -> None:
    """Start the kernel ahead of its notebook, and import ``warm_up``'s modules in it (a
    comma-separated list, :func:`warm_up_code`): silently, outside the notebook's history
    and execution counts."""
    client.km = client.create_kernel_manager()
    client.start_new_kernel(env=kernel_env)
    client.start_new_kernel_client()
    modules = [name for name in warm_up.split(",") if name]
    if modules:
        msg_id = client.kc.execute(warm_up_code(modules), silent=True, store_history=False)
        client.wait_for_reply(msg_id)


def _stop_kernel(client) -> None:
    try:
        client._cleanup_kernel()  # noqa: SLF001 - idempotent; may already be gone
    except Exception:  # noqa: BLE001
        pass


def receive_input(fd: int, cap: int) -> tuple[bytes, dict, str]:
    """A warm run's input, read from ``fd`` to end of file: ``{"notebook": JSON text,
    "name": file name, "requests": {grade_id: request}}``. Raises ValueError beyond
    ``cap`` bytes or when it is not that."""
    chunks, size = [], 0
    with os.fdopen(fd, "rb") as pipe:
        while chunk := pipe.read(1 << 20):
            size += len(chunk)
            if size > cap:
                raise ValueError(f"more than {cap} bytes of input")
            chunks.append(chunk)
    document = json.loads(b"".join(chunks).decode("utf-8"))
    if not isinstance(document, dict) or not isinstance(document.get("notebook"), str):
        raise ValueError("no notebook in the input")
    requests = document.get("requests") or {}
    if not isinstance(requests, dict):
        raise ValueError("export requests that are not a mapping")
    name = os.path.basename(str(document.get("name") or "submission.ipynb"))
    if not name.endswith(".ipynb") or name.startswith("."):
        raise ValueError(f"a notebook name that is not one: {name[:100]!r}")
    return document["notebook"].encode("utf-8"), requests, name


def run(args: argparse.Namespace) -> int:
    _skip_slow_imports()
    import nbformat
    from nbclient.exceptions import DeadKernelError

    started = time.monotonic()
    status: dict = {"status": STATUS_ERROR, "detail": "", "cells_executed": 0, "cell_timeouts": [], "truncated": []}

    fd = args.result_fd

    def send_status() -> None:
        status["wall_s"] = round(time.monotonic() - started, 3)
        send_frame(fd, {"kind": "status", **status})

    def send_cell(index: int, cell) -> None:
        """``index``: of the executed notebook; the frame names the sent notebook's cell."""
        if origin[index] is None:
            return
        send_frame(
            fd,
            {
                "kind": "cell",
                "index": origin[index],
                "outputs": cell.get("outputs", []),
                "execution_count": cell.get("execution_count"),
            },
        )

    origin: list[int | None] = []

    try:
        seal_result_channel(fd)
    except OSError as exc:  # fail closed: nothing runs on a channel the kernel could reach
        status["detail"] = f"cannot seal the result channel: {exc}"[:2000]
        send_status()
        return 0

    kernel_env = _kernel_env(args)
    client_cls = _make_client_class()
    client = None
    if args.notebook_fd is not None:  # a warm run: the kernel starts before the notebook is known
        client = _new_client(client_cls, nbformat.v4.new_notebook(), args, on_cell_executed=None)
        try:
            _start_kernel(client, kernel_env, args.warm_up)
        except Exception as exc:  # noqa: BLE001 - the kernel did not start: a status, as below
            status["detail"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:2000]
            _stop_kernel(client)
            send_status()
            return 0
    try:
        if args.notebook_fd is not None:
            raw, requests, name = receive_input(args.notebook_fd, args.max_output_bytes)
            # The kernel's folder holds its notebook under its name, as in a cold run.
            with open(os.path.join(os.path.dirname(os.path.abspath(args.notebook)), name), "wb") as fh:
                fh.write(raw)
        else:
            with open(args.notebook, "rb") as fh:
                raw = fh.read()
            requests = _read_requests(args.export_requests)
        nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
    except Exception as exc:  # noqa: BLE001
        status["detail"] = f"cannot read notebook: {type(exc).__name__}: {exc}"[:2000]
        if client is not None:
            _stop_kernel(client)
        send_status()
        return 0

    for cell in nb.cells:  # forged outputs never survive
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None

    # origin[i]: the sent notebook's index of executed cell i; None for an export cell.
    exporter = (
        os.path.join(args.kernel_pythonpath.split(os.pathsep)[0], "graders", "checks", "kernel_export.py")
        if args.kernel_pythonpath
        else ""
    )
    origin = insert_export_cells(nb, requests, args.export_dir, exporter)
    executed: set[int] = set()

    def on_cell_executed(cell, cell_index, execute_reply, **_):
        executed.add(cell_index)
        if origin[cell_index] is None:  # our export cell: its outputs go nowhere
            return
        content = (execute_reply or {}).get("content", {}) or {}
        if content.get("ename") == TIMEOUT_ENAME:
            cell.outputs.append(
                error_output(
                    TIMEOUT_ENAME, f"cell exceeded the per-cell time limit of {args.cell_timeout} s and was interrupted"
                )
            )
            status["cell_timeouts"].append(origin[cell_index])
        elif content.get("status") == "error" and not has_error(cell):
            # The kernel says the cell raised, but showed no traceback: a replaced
            # showtraceback, sys.excepthook or set_custom_exc handler hid it.
            cell.outputs.append(
                error_output(
                    HIDDEN_ERROR_ENAME,
                    f"the cell raised {str(content.get('ename', 'an exception'))[:100]}, "
                    "but its traceback was not shown",
                )
            )
        send_cell(cell_index, cell)  # on the host before the next cell starts

    if client is None:
        client = _new_client(client_cls, nb, args, on_cell_executed)
    else:
        client.nb = nb
        client.on_cell_executed = on_cell_executed
    client.max_cell_output_bytes = args.max_cell_output_bytes
    client.max_total_output_bytes = max(0, args.max_output_bytes - len(raw) - 256 * 1024)

    try:
        client.execute(env=kernel_env)
        status["status"] = STATUS_TIMEOUT if status["cell_timeouts"] else STATUS_OK
        if status["cell_timeouts"]:
            status["detail"] = f"cell(s) {status['cell_timeouts']} exceeded {args.cell_timeout} s and were interrupted"
    except DeadKernelError as exc:
        status["status"] = STATUS_KERNEL_DIED
        status["detail"] = f"kernel died: {exc}"[:2000]
    except Exception as exc:  # noqa: BLE001 - kernel start failure, protocol errors...
        status["status"] = STATUS_ERROR
        status["detail"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:2000]
    finally:
        _stop_kernel(client)

    status["cells_executed"] = sum(origin[i] is not None for i in executed)
    status["truncated"] = sorted(origin[i] for i in client.truncated if origin[i] is not None)
    for i in client.truncated:
        nb.cells[i].outputs.append(
            error_output(
                TOO_LARGE_ENAME,
                f"cell output exceeded {args.max_cell_output_bytes} bytes "
                "(or the notebook total); the rest was dropped",
            )
        )
    if status["status"] != STATUS_OK:
        mark_unfinished(nb, status["status"])
    # The final word on every code cell: display updates may have changed earlier ones.
    for i, cell in enumerate(nb.cells):
        if cell.get("cell_type") == "code":
            send_cell(i, cell)
    send_status()
    return 0


def main(argv: list[str] | None = None) -> int:
    # The limits have no defaults here: SandboxLimits holds them, and the host passes them.
    p = argparse.ArgumentParser(prog="execute_inside", description=__doc__.split("\n")[0])
    p.add_argument("notebook")
    p.add_argument("--result-fd", type=int, required=True)
    p.add_argument("--cell-timeout", type=int, required=True)
    p.add_argument("--startup-timeout", type=int, default=120)
    p.add_argument("--kernel", default="python3")
    p.add_argument("--max-output-bytes", type=int, required=True)
    p.add_argument("--max-cell-output-bytes", type=int, required=True)
    p.add_argument("--kernel-pythonpath", default="")
    p.add_argument(
        "--export-requests", default="", help="JSON file: grade_id -> what the kernel exports after that test cell"
    )
    p.add_argument("--export-dir", default="", help="where the kernel writes the exports")
    p.add_argument(
        "--notebook-fd",
        type=int,
        help="a warm run: start the kernel first, then read the notebook and export requests from this pipe "
        "(JSON, to end of file) and write the notebook to NOTEBOOK",
    )
    p.add_argument(
        "--warm-up",
        default="",
        help="modules the kernel imports before the notebook (comma-separated; module:function also calls it)",
    )
    args = p.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
