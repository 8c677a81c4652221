"""Copy what the kernel exported out of a finished run's scratch, as untrusted bytes.

After each graded test cell the kernel writes ``<export dir>/<grade_id>/manifest.json``
and ``arrays.npz`` (:mod:`graders.checks.kernel_export`). Everything there was written by the
student's uid and is only a claim. The host copies it only after every process of the
run is dead (nothing can change it while it is read), and copies only:

* folders whose name is a plain grade_id, and in each only the two fixed file names;
* regular files, opened without following symlinks, under a size cap each and in total;

into a folder the student's uid never had. What is refused is listed, so the verifier
can say why that cell could not be verified. Parsing is the verifier's job
(:mod:`graders.verify.export_reader`); nothing here interprets the bytes.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from graders.checks.kernel_export import ARRAYS, MANIFEST, MAX_ARRAYS_BYTES, MAX_MANIFEST_BYTES

from .hostfs import read_capped
from .limits import MiB

#: The folder, relative to the kernel's working directory, that the kernel exports into.
EXPORT_FOLDER = ".hw5-exports"
FILE_CAPS = {MANIFEST: MAX_MANIFEST_BYTES, ARRAYS: MAX_ARRAYS_BYTES}
TOTAL_CAP = 256 * MiB
MAX_CELLS = 64
_GRADE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def _plain_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)  # lstat: a symlink is not a folder
    except OSError:
        return False


def collect_artifacts(source: str, target: str) -> list[str]:
    """Copy the exports under ``source`` into ``target`` (created, mode 0755); returns the
    problems found (one line each). Call only when nothing can write ``source`` any more."""
    problems: list[str] = []
    Path(target).mkdir(mode=0o755, parents=True, exist_ok=True)
    if not os.path.lexists(source):
        return problems
    if not _plain_dir(source):
        return [f"{EXPORT_FOLDER} is not a plain folder"]
    total = 0
    names = []
    with os.scandir(source) as entries:  # a million entries must not all be listed
        for entry in entries:
            if len(names) == MAX_CELLS:
                problems.append(f"more than {MAX_CELLS} entries in {EXPORT_FOLDER}; the rest were not read")
                break
            names.append(entry.name)
    for name in sorted(names):
        folder = os.path.join(source, name)
        if not _GRADE_ID.match(name) or not _plain_dir(folder):
            problems.append(f"{EXPORT_FOLDER}/{name[:100]!r}: not a plain folder named by a grade_id")
            continue
        copied = os.path.join(target, name)
        os.mkdir(copied, 0o755)
        for file_name, cap in FILE_CAPS.items():
            try:
                data = read_capped(os.path.join(folder, file_name), min(cap, max(0, TOTAL_CAP - total)))
            except (OverflowError, ValueError, OSError) as error:
                problems.append(f"{name}/{file_name}: refused ({str(error)[:200]})")
                continue
            if data is None:
                continue
            total += len(data)
            with open(os.path.join(copied, file_name), "wb") as handle:
                handle.write(data)
            os.chmod(os.path.join(copied, file_name), 0o644)
    return problems
