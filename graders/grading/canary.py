"""The canary: grade the reference solution before a batch, and refuse the batch if it
does not get every point.

Whatever breaks grading for everyone (a missing data file, a thresholds file the
reference cannot meet, a checks module that does not import, a new TensorFlow) shows
up first as the reference losing points. Grading it costs a minute, so a passing
run is remembered under a key over everything the verdict depends on
(:func:`canary_key`), and the canary runs again only when one of them changes.

The grading itself is the caller's (``grade_reference``); this module holds the key,
the cache and the verdict, so it is tested without TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from graders.grading.internal_errors import describe, located
from graders.grading.worker_check import library_versions

CACHE_DIR = ".grading"  # under the course root (already git-ignored)
CACHE_FILE = "canary.json"
DIGESTS_FILE = "digests.json"
KEEP_KEYS = 20  # a few recent good states (e.g. both budgets), not an ever-growing file
SKIPPED = {"__pycache__", ".ipynb_checkpoints"}


def tool_versions() -> dict[str, str]:
    """Python's version and each verdict-changing library's (worker_check.VERSIONED, read
    from metadata: importing TF takes seconds)."""
    return {"python": sys.version.split()[0], **library_versions()}


def _files(path: Path) -> list[tuple[str, Path]]:
    """(name relative to ``path``'s parent, file) for ``path`` or every file under it, sorted."""
    if path.is_file():
        return [(path.name, path)]
    found = []
    for file in sorted(path.rglob("*")):
        relative = file.relative_to(path.parent)
        if file.is_file() and not SKIPPED & set(relative.parts) and file.suffix != ".pyc":
            found.append((relative.as_posix(), file))
    return found


def file_sha256(path: Path, digest_cache: Path | None = None) -> str:
    """sha256 of ``path``'s bytes, remembered in ``digest_cache`` (a JSON file) by
    (path, size, mtime), so a 50 MB data file is hashed once, not every batch."""
    path = Path(path).resolve()
    stat = path.stat()
    stamp = [stat.st_size, stat.st_mtime_ns]
    known = _read_json(digest_cache) if digest_cache else {}
    entry = known.get(str(path))
    if isinstance(entry, dict) and entry.get("stamp") == stamp and isinstance(entry.get("sha256"), str):
        return entry["sha256"]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest_cache:
        known[str(path)] = {"stamp": stamp, "sha256": digest.hexdigest()}
        _write_json(digest_cache, known)
    return digest.hexdigest()


def canary_key(
    paths: list[Path], extra: dict, *, data_file: Path | None = None, digest_cache: Path | None = None
) -> str:
    """A sha256 (hex) over everything the reference's verdict depends on.

    ``paths``: files or folders hashed by content (the source notebooks, ``graders/checks``
    with its ``thresholds.json``, ``hw5_data.py``); a folder by every file under it, named
    relative to the folder's parent, so moving the course does not change the key.
    ``extra``: JSON-able settings that change the verdict (budget, time limits, the
    thresholds in force if they come from elsewhere). ``data_file``: hashed through
    :func:`file_sha256` with ``digest_cache``. The versions of :func:`tool_versions` are
    always included.
    """
    digest = hashlib.sha256()

    def add(label: str, value: str) -> None:
        digest.update(f"{len(label)}:{label}{len(value)}:{value}".encode())  # no ambiguous joins

    for path in paths:
        path = Path(path)
        if not path.exists():
            add("missing", str(path.name))  # its absence is part of the state
            continue
        for name, file in _files(path):
            add("file:" + name, hashlib.sha256(file.read_bytes()).hexdigest())
    add("extra", json.dumps(extra, sort_keys=True, default=str))
    if data_file and Path(data_file).is_file():
        add("data", file_sha256(data_file, digest_cache))
    else:  # no data file is a state too; the canary then fails and says so
        add("data", f"missing:{data_file}" if data_file else "none")
    add("versions", json.dumps(tool_versions(), sort_keys=True))
    return digest.hexdigest()


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):  # absent or damaged: a cache never blocks grading
        return {}
    return value if isinstance(value, dict) else {}


def _write_json(path: Path, value: dict) -> None:
    """Write atomically: an interrupted write leaves the old file, never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(handle, "w") as out:
        json.dump(value, out, indent=1, sort_keys=True)
    os.replace(temporary, path)


class CanaryCache:
    """Canary keys that passed, in ``<root>/.grading/canary.json``."""

    def __init__(self, root: Path):
        self.folder = Path(root) / CACHE_DIR
        self.path = self.folder / CACHE_FILE
        self.digests = self.folder / DIGESTS_FILE  # for canary_key(digest_cache=...)

    def _passed(self) -> dict:
        passed = _read_json(self.path).get("passed", {})
        return passed if isinstance(passed, dict) else {}

    def is_known_good(self, key: str) -> bool:
        """Whether ``key`` passed before (then the canary need not run)."""
        return key in self._passed()

    def entry(self, key: str) -> dict | None:
        """What :meth:`remember` stored for ``key``, or None."""
        value = self._passed().get(key)
        return value if isinstance(value, dict) else None

    def remember(self, key: str, seconds: float, score: float | None = None, max_score: float | None = None) -> None:
        """Record that ``key`` passed, taking ``seconds``; keeps the KEEP_KEYS latest."""
        passed = self._passed()
        passed.pop(key, None)
        passed[key] = {
            "seconds": round(seconds, 1),
            "score": score,
            "max_score": max_score,
            "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        _write_json(self.path, {"passed": dict(list(passed.items())[-KEEP_KEYS:])})


@dataclass
class CanaryResult:
    """The reference's grade. ``failing``: (grade_id, message) of each cell that lost points
    or raised; ``cached``: the verdict came from the cache, nothing was graded."""

    score: float
    max_score: float
    seconds: float
    failing: list[tuple[str, str]] = field(default_factory=list)
    cached: bool = False

    @property
    def ok(self) -> bool:
        """Every point, and no failing cell (a canary that graded nothing is no pass)."""
        return self.max_score > 0 and self.score == self.max_score and not self.failing

    def causes(self) -> list[str]:
        """The likely causes that the messages show, as sentences saying what to do."""
        text = " ".join(message for _, message in self.failing)
        found = []
        if any(
            s in text
            for s in (
                "HW5_MNIST_PATH",
                "mnist.npz",
                "DataUnavailable",
                "URLError",
                "name resolution",
                "Network is unreachable",
            )
        ):
            found.append(
                "the MNIST file is missing or unreadable in the kernel: set "
                "HW5_MNIST_PATH=/path/to/mnist.npz or run make setup MNIST=/path"
            )
        if "graders" in text and any(
            s in text for s in ("ModuleNotFoundError", "ImportError", "SyntaxError", "No module named")
        ):
            found.append(
                "the grading checks (graders/checks) do not import: run the checks' "
                "unit tests (make test) and fix the import"
            )
        if "lower than a correct solution reaches" in text or "history's last val_accuracy" in text:
            found.append(
                "graders/checks/thresholds.json fails the reference: recalibrate "
                "(python -m graders.authoring.calibrate --write-thresholds) or restore the file"
            )
        for _, message in self.failing:  # an exception of the grader's own: name it and where
            chain = located(message)
            if chain:
                name, place = chain[-1]  # the innermost: where it was raised
                cause = (
                    f"{name} raised by the grader's own code at {place}, not by the reference "
                    "solution: fix it there (the message above is the exception's)"
                )
                if cause not in found:
                    found.append(cause)
        return found

    @property
    def lost_points(self) -> bool:
        """Whether some graded cell of the reference failed (not only the grader around it)."""
        return any(grade_id != "canary" for grade_id, _ in self.failing) or (
            not self.failing and self.score < self.max_score
        )

    def refusal(self) -> str:
        """Why grading is refused: several lines naming each failing cell and its message."""
        lines = [
            f"refusing to grade: the reference solution scored {self.score:g}/{self.max_score:g} "
            "(it must get every point; a broken grader would give students zeros)."
        ]
        for grade_id, message in self.failing:
            lines.append(f"  {grade_id}: {' '.join(message.split())[:300]}")
        if not self.failing:
            lines.append("  no cell reported a failure (did any graded cell run?)")
        causes = self.causes()
        if causes:
            lines += [f"  likely cause: {cause}" for cause in causes]
        elif self.lost_points:
            lines.append("  cause unknown: grade source/ with nbgrader validate to see the failing cells")
        else:
            lines.append(
                "  cause unknown: no cell of the reference lost points; the lines above are the grader's own messages"
            )
        return "\n".join(lines)


def run_canary(grade_reference: Callable[[], CanaryResult], cache: CanaryCache, key: str) -> CanaryResult:
    """Grade the reference unless ``key`` is known good; remember a pass.

    ``grade_reference``: grades the reference solution with the batch's settings and
    returns its CanaryResult. Returns that result, or a cached one (``cached=True``,
    from :meth:`CanaryCache.entry`). A ``grade_reference`` that raises gives a failed
    result naming the exception: a canary that cannot run is no pass.
    """
    if cache.is_known_good(key):
        entry = cache.entry(key) or {}
        score = entry.get("score") if entry.get("score") is not None else 1.0
        max_score = entry.get("max_score") if entry.get("max_score") is not None else score
        return CanaryResult(score, max_score, 0.0, cached=True)  # no score stored: 1/1
    started = time.monotonic()
    try:
        result = grade_reference()
    except Exception as error:  # the canary itself broke: refuse, and say how
        return CanaryResult(
            0.0, 0.0, time.monotonic() - started, [("canary", f"grading the reference raised {describe(error)}")]
        )
    if result.ok:
        cache.remember(key, result.seconds, result.score, result.max_score)
    return result


# -- the canary of hw5-autograde ------------------------------------------------------------------


def cache_home() -> Path:
    """Where passing canary keys are kept: keyed by content, so any copy of the course
    (a scratch course in a test, a second checkout) reuses a pass."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hw5-cnn-course"


def course_key(root: Path, assignment: str, extra: dict, data_file: str | None, cache: CanaryCache) -> str:
    """The canary key of a course: its source, its config, and the grading code that decides."""
    graders_dir = Path(__file__).resolve().parents[1]
    paths = [
        root / "source" / assignment,
        root / "nbgrader_config.py",
        *(graders_dir / name for name in ("checks", "verify", "sandbox", "grading")),
    ]
    return canary_key(paths, extra, data_file=Path(data_file) if data_file else None, digest_cache=cache.digests)


def grade_reference(root: Path, assignment: str, **grader_options) -> CanaryResult:
    """Grade the source notebooks (the reference solutions) as a student of a scratch copy
    of the course, through the very pipeline the class goes through."""
    import nbformat

    from graders.authoring.release import copy_course, generate_release
    from graders.grading.grader import Grader, run_batch

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hw5-canary-") as scratch:
        course = copy_course(Path(scratch) / "course", root)
        saved = os.environ.get("HW5_DB_URL")
        os.environ["HW5_DB_URL"] = f"sqlite:///{course / 'gradebook.db'}"  # never the class's gradebook
        try:
            generate_release(course, assignment)
            submitted = course / "submitted" / "canary" / assignment
            submitted.mkdir(parents=True)
            for notebook in (course / "source" / assignment).glob("*.ipynb"):
                shutil.copy2(notebook, submitted / notebook.name)
            grader = Grader(course, assignment, **grader_options)
            try:
                report = run_batch(grader, ["canary"], 1, None, progress=False)["canary"]
            finally:
                grader.close()
        finally:
            if saved is None:
                os.environ.pop("HW5_DB_URL", None)
            else:
                os.environ["HW5_DB_URL"] = saved
        failing = [("canary", line) for line in report.errors + report.flags]
        for path in sorted((course / "autograded" / "canary" / assignment).glob("*.ipynb")):
            for cell in nbformat.read(path, as_version=4).cells:
                meta = cell.get("metadata", {}).get("nbgrader", {})
                errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
                if cell.cell_type == "code" and meta.get("grade") and errors:
                    failing.append(
                        (meta.get("grade_id", "?"), f"{errors[0].get('ename')}: {str(errors[0].get('evalue'))[:300]}")
                    )
    return CanaryResult(report.score or 0.0, report.max_score or 0.0, time.monotonic() - started, failing)
