"""Run a command as a throw-away unprivileged uid, for the rootless sandbox's tests.

As root, :func:`runner` returns a function that runs argv as ``UID`` (no passwd entry is
needed: ``setpriv --reuid``, no groups, no capabilities), inside a private mount
namespace in which that uid can reach the Python environment: a prefix under a folder it
may not enter (a pyenv under ``/root``, mode 0700) is shown alone, on a tmpfs over that
folder, at its own path. Nothing changes on the host. As a non-root user the command
simply runs as that user.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from graders.sandbox.hostfs import reachable_by

#: A uid no account uses (override with HW5_ROOTLESS_UID).
UID = int(os.environ.get("HW5_ROOTLESS_UID", "64999"))
REPO = Path(__file__).resolve().parents[1]


def python_paths() -> list[str]:
    """The folders the Python environment needs (venv and base installation)."""
    paths: list[str] = []
    candidates = {
        os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable)))
    }
    for real in sorted(candidates, key=len):  # one view per outermost folder
        if not any(real == p or real.startswith(p + "/") for p in paths):
            paths.append(real)
    return paths


def blocking_folder(path: str, uid: int) -> str | None:
    """The highest folder above ``path`` that ``uid`` cannot enter, or None."""
    parts = Path(path).parts
    for i in range(2, len(parts) + 1):
        folder = str(Path(*parts[:i]))
        if not reachable_by(folder, uid, uid):
            return folder if folder != path else None
    return None


def view_script(uid: int, home: str, stash: str, env: dict[str, str]) -> str:
    """Shell commands (run as root in a private mount namespace) that show the Python
    prefixes to ``uid`` and then exec ``"$@"`` as ``uid``."""
    blocked: dict[str, list[str]] = {}
    for path in python_paths():
        folder = blocking_folder(path, uid)
        if folder:
            blocked.setdefault(folder, []).append(path)
    lines = ["set -e"]
    for i, (folder, paths) in enumerate(blocked.items()):
        for j, path in enumerate(paths):
            lines += [f"mkdir -p {stash}/{i}-{j}", f"mount --rbind {shlex.quote(path)} {stash}/{i}-{j}"]
        lines.append(f"mount -t tmpfs -o mode=0755,size=1m hw5-rootless-view {shlex.quote(folder)}")
        for j, path in enumerate(paths):
            lines += [f"mkdir -p {shlex.quote(path)}", f"mount --move {stash}/{i}-{j} {shlex.quote(path)}"]
    assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    lines.append(
        f"exec setpriv --reuid={uid} --regid={uid} --clear-groups --inh-caps=-all "
        f'--bounding-set=-all env -i {assignments} "$@"'
    )
    return "\n".join(lines) + "\n"


def user_env(home: str, tmp: str) -> dict[str, str]:
    env = {
        "PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": tmp,
        "USER": "hw5-rootless",
        "LOGNAME": "hw5-rootless",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    if os.environ.get("HW5_MNIST_PATH"):
        env["HW5_MNIST_PATH"] = os.environ["HW5_MNIST_PATH"]
    return env


class Runner:
    """``runner(argv, timeout=...)`` -> CompletedProcess, run as the unprivileged uid with
    the repository as the working folder. ``home``: that uid's HOME (writable by it)."""

    def __init__(self) -> None:
        self.root = os.geteuid() == 0
        self.uid = UID if self.root else os.geteuid()
        self.base = tempfile.mkdtemp(prefix="hw5-rootless-")
        os.chmod(self.base, 0o755)
        self.home = os.path.join(self.base, "home")
        self.tmp = os.path.join(self.base, "tmp")  # the sandboxes' trees, cleaned with the rest
        for folder in (self.home, self.tmp):
            os.mkdir(folder, 0o700)
            if self.root:
                os.chown(folder, self.uid, self.uid)
        os.mkdir(os.path.join(self.base, "stash"), 0o700)
        self.script = os.path.join(self.base, "as-user.sh")
        Path(self.script).write_text(
            view_script(self.uid, self.home, os.path.join(self.base, "stash"), user_env(self.home, self.tmp))
        )

    def own(self, path: str | os.PathLike) -> None:
        """Give ``path`` (a tree) to the unprivileged uid."""
        if self.root:
            subprocess.run(["chown", "-R", f"{self.uid}:{self.uid}", str(path)], check=True)

    def argv(self, argv: list[str]) -> list[str]:
        if not self.root:
            return list(argv)
        return ["unshare", "--mount", "--propagation", "private", "sh", self.script, *argv]

    def __call__(self, argv: list[str], timeout: float = 600, **kw) -> subprocess.CompletedProcess:
        env = None if self.root else {**os.environ, **user_env(self.home, self.tmp)}
        return subprocess.run(self.argv(argv), cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env, **kw)

    def close(self) -> None:
        subprocess.run(["rm", "-rf", "--one-file-system", self.base], check=False)
