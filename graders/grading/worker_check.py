"""What a grading worker must have installed, checked on the worker before a batch.

The jobs ship the kits, the support files and the data (:mod:`graders.grading.shipping`),
but not the executor: the sandbox, the verifier's runner and the kernel's Python come
from the worker's own installation of this package. A worker without it could not even
unpickle a job, so this module uses the standard library only, and the orchestrator
sends its *source text* to each worker (:func:`remote_expression`, evaluated there by
the builtin ``eval``): it runs where ``graders`` cannot be imported, and answers with
one line naming what to install.
"""

from __future__ import annotations

#: Compared between the orchestrator and each worker: the code a worker runs itself.
CODE_PACKAGES = ("grading", "sandbox", "verify")
#: Compared too: the libraries whose versions change a verdict (the first installed name of
#: each group), read from package metadata so that no worker imports TensorFlow for it.
VERSIONED = (("tensorflow", "tensorflow-cpu"), ("keras",), ("numpy",), ("nbgrader",), ("nbclient",))
INSTALL_HINT = (
    "install this course's package (pip install hw5-cnn-course from the course repository, "
    "the same version as the orchestrator) into the Python that runs `dask worker`"
)


def code_digest(graders_dir) -> str:
    """sha256 over the worker-side code (``.py`` files of CODE_PACKAGES, by relative path)."""
    import hashlib
    import os

    digest = hashlib.sha256()
    for package in CODE_PACKAGES:
        base = os.path.join(graders_dir, package)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in sorted(f for f in filenames if f.endswith(".py")):
                path = os.path.join(dirpath, name)
                digest.update(os.path.relpath(path, graders_dir).encode() + b"\0")
                with open(path, "rb") as handle:
                    digest.update(handle.read() + b"\0")
    return digest.hexdigest()


def library_versions() -> dict:
    """{library: installed version or "absent"} for VERSIONED, from package metadata."""
    from importlib import metadata

    versions = {}
    for names in VERSIONED:
        for name in names:
            try:
                versions[names[0]] = metadata.version(name)
                break
            except metadata.PackageNotFoundError:
                continue
        else:
            versions[names[0]] = "absent"
    return versions


def probe(sandbox: bool) -> dict:
    """On the worker: {"problem": one line or None, "digest": the code digest or None}."""
    import os
    import shutil

    try:
        import graders
        import graders.grading.execution  # noqa: F401
        import graders.sandbox.execute_inside  # noqa: F401  (what the sandboxed executor runs)
    except Exception as error:  # noqa: BLE001 - any import failure: the package is not usable here
        return {
            "problem": f"the HW5 grading package cannot be imported ({type(error).__name__}: {error}); " + INSTALL_HINT,
            "digest": None,
        }
    digest = code_digest(os.path.dirname(graders.__file__))
    versions = library_versions()
    if sandbox:
        rootless = os.geteuid() != 0  # then bwrap's own user namespace, rlimits set by prlimit
        tools = ("bwrap", "prlimit") if rootless else ("bwrap", "setpriv")
        missing = [tool for tool in tools if shutil.which(tool) is None]
        if missing:
            return {
                "problem": f"{' and '.join(missing)} not found: install bubblewrap and util-linux "
                "(Debian: apt-get install -y bubblewrap util-linux), or grade with --no-sandbox",
                "digest": digest,
            }
        if rootless:
            from graders.sandbox.rootless import userns_problem

            problem = userns_problem(shutil.which("bwrap"))
            if problem:
                return {
                    "problem": f"not root, and the rootless sandbox cannot start: {problem}; run "
                    "`dask worker` as root, or grade with --no-sandbox",
                    "digest": digest,
                }
    return {"problem": None, "digest": digest, "versions": versions}


def remote_expression(sandbox: bool) -> str:
    """A Python expression that runs :func:`probe` from this module's source text."""
    import inspect
    import sys

    source = inspect.getsource(sys.modules[__name__])
    return f"(lambda ns: (exec({source!r}, ns), ns['probe']({bool(sandbox)!r}))[1])({{}})"


def check_workers(client, sandbox: bool) -> list[str]:
    """One line per worker that cannot grade (empty when all can)."""
    import os

    import graders

    expected = code_digest(os.path.dirname(graders.__file__))
    problems = []
    for address, answer in sorted(client.run(eval, remote_expression(sandbox)).items()):
        if answer["problem"]:
            problems.append(f"worker {address}: {answer['problem']}")
        elif answer["digest"] != expected:
            problems.append(
                f"worker {address}: its grading code ({', '.join(CODE_PACKAGES)}) differs from the "
                f"orchestrator's; {INSTALL_HINT}"
            )
        elif mismatch := version_mismatch(answer.get("versions") or {}, library_versions()):
            problems.append(
                f"worker {address}: {mismatch}; install the orchestrator's versions "
                "(pip install --constraint requirements.lock hw5-cnn-course)"
            )
    return problems


def version_mismatch(worker: dict, ours: dict) -> str | None:
    """``"keras 3.12.4 here, 3.15.1 on the orchestrator"`` for each library that differs, or None."""
    differ = [
        f"{name} {worker.get(name, 'absent')} here, {version} on the orchestrator"
        for name, version in sorted(ours.items())
        if worker.get(name, "absent") != version
    ]
    return ", ".join(differ) or None
