"""Name an exception raised by the grader's own code: its class, and where in ``graders/``.

A failure of ours (shipping a kit, starting a sandbox, verifying) must say what broke and
where, so an instructor fixes the grader instead of re-checking the reference solution.
"""

from __future__ import annotations

import os
import re
import sysconfig
import traceback

#: What :func:`describe` writes, read back by :func:`located`: ``TypeError in graders/x.py:12``.
_LOCATED = re.compile(r"\b([A-Za-z_]\w*) in (graders/[\w/]+\.py):(\d+)")


def where(error: BaseException) -> str | None:
    """``graders/<module>.py:<line> (<function>)``: the innermost frame of the grader's own
    code in ``error``'s traceback (a Dask worker's traceback travels with the error), when
    every frame below it is Python's or an installed library's. None otherwise: the error
    came from code that is not ours (a test's stand-in, a student's notebook)."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [index for index, frame in enumerate(frames) if _is_ours(frame.filename)]
    if not ours or not all(_is_library(frame.filename) for frame in frames[ours[-1] + 1 :]):
        return None
    frame = frames[ours[-1]]
    path = "graders/" + frame.filename.replace("\\", "/").rsplit("/graders/", 1)[1]
    return f"{path}:{frame.lineno} ({frame.name})"


def _is_ours(filename: str) -> bool:
    return "/graders/" in filename.replace("\\", "/")


def _is_library(filename: str) -> bool:
    """Python's own modules and installed packages (what our code calls into)."""
    if filename.startswith("<"):  # <frozen importlib._bootstrap> and the like
        return True
    if re.search(r"/(site|dist)-packages/|/lib/python3\.\d+/", filename):  # also a remote worker's paths
        return True
    roots = {sysconfig.get_path(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")}
    return any(root and filename.startswith(root + os.sep) for root in roots)


def describe(error: BaseException, limit: int = 300) -> str:
    """One line: ``TypeError in graders/grading/blobs.py:172 (put): <message>``. The
    location is left out when the traceback has no frame of ours."""
    message = " ".join(str(error).split())[:limit]
    location = where(error)
    name = type(error).__name__
    return f"{name} in {location}: {message}" if location else f"{name}: {message}"


def located(text: str) -> list[tuple[str, str]]:
    """(exception class, ``graders/...py:line``) of every :func:`describe` line in ``text``,
    outermost first."""
    return [(match.group(1), f"{match.group(2)}:{match.group(3)}") for match in _LOCATED.finditer(text)]
