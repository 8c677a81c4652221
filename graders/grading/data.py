"""Find the MNIST file on the host, before any kernel runs.

Kernels grade in a sandbox without network, so a kernel that has to download MNIST
fails every setup cell and costs correct work its points. The grader therefore
resolves the file here, on the host, and refuses to grade (:class:`DataUnavailable`)
when it cannot. Where it looks, in order:

1. ``HW5_MNIST_PATH`` (an explicit setting: when it is wrong, that is an error, and
   no other place is tried, so a typo is never hidden by another copy);
2. the path recorded in the course root's ``.hw5-data`` (``record_data_path``, which
   ``make setup MNIST=/path`` calls);
3. Keras's cache, ``~/.keras/datasets/mnist.npz``;
4. a one-time download on the host into that cache, checked by sha256.

Every file found is validated (an ``.npz`` holding the four MNIST arrays with the right
shapes); the validation is remembered by (path, size, mtime), so it costs nothing the
second time in one process.

Command line (for the Makefile)::

    python -m graders.grading.data record PATH   # validate PATH and record it
    python -m graders.grading.data resolve       # print the file that grading will use
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from graders.course import hw5_data

VARIABLE = "HW5_MNIST_PATH"
RECORD_FILE = ".hw5-data"  # in the course root; one line: an absolute path
MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
#: The file at MNIST_URL (the hash keras.datasets.mnist checks): a download must match it.
KERAS_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
#: ../shared/data/mnist.npz: the same arrays, saved again, so different bytes.
SHARED_SHA256 = "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64"
KNOWN_SHA256 = frozenset({KERAS_SHA256, SHARED_SHA256})
DOWNLOAD_TIMEOUT_S = 20  # per socket operation: no network fails at once, a slow one soon

HOW_TO_FIX = f"set {VARIABLE}=/path/to/mnist.npz or run: make setup MNIST=/path/to/mnist.npz"


class DataUnavailable(RuntimeError):
    """No usable MNIST file: the message is one line, where we looked and what to set."""


class InvalidDataFile(ValueError):
    """A file that is not MNIST as Keras ships it; the message says what is wrong."""


_valid: set[tuple[str, int, int]] = set()  # (resolved path, size, mtime_ns) validated already


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """The four arrays of an MNIST archive and their shapes: the notebook's loader's own
    (``hw5_data.MNIST_SHAPES``), so that the grader accepts what the kernels will."""
    return hw5_data().MNIST_SHAPES


def validate_mnist(path: Path) -> Path:
    """Check that ``path`` is an MNIST ``.npz``; returns it resolved, else raises InvalidDataFile.

    It must open with ``np.load(allow_pickle=False)`` and hold x_train, y_train, x_test and
    y_test as uint8 arrays of the Keras shapes, labels in 0..9.
    """
    path = Path(path).expanduser().resolve()
    try:
        stat = path.stat()
    except OSError as error:
        raise InvalidDataFile(f"{path}: {error.strerror or error}") from None
    stamp = (str(path), stat.st_size, stat.st_mtime_ns)
    if stamp in _valid:
        return path
    try:
        with np.load(path, allow_pickle=False) as archive:
            shapes = expected_shapes()
            missing = sorted(set(shapes) - set(archive.files))
            if missing:
                raise InvalidDataFile(f"{path}: not an MNIST archive (missing {', '.join(missing)})")
            for key, shape in shapes.items():
                array = archive[key]
                if array.shape != shape or array.dtype != np.uint8:
                    raise InvalidDataFile(f"{path}: {key} is {array.dtype} {array.shape}, expected uint8 {shape}")
                if key.startswith("y") and array.max() > 9:
                    raise InvalidDataFile(f"{path}: {key} holds labels above 9")
    except InvalidDataFile:
        raise
    except Exception as error:  # a truncated, corrupt or pickled file: any reader error
        raise InvalidDataFile(
            f"{path}: cannot be read as an .npz ({type(error).__name__}: {' '.join(str(error).split())[:200]})"
        ) from None
    _valid.add(stamp)
    return path


def record_file(course_root: Path) -> Path:
    return Path(course_root) / RECORD_FILE


def record_data_path(course_root: Path, path: Path) -> Path:
    """Validate ``path`` and record it, absolute, in the course's ``.hw5-data``.

    Returns the record file. Raises InvalidDataFile (nothing recorded) when ``path`` is
    not MNIST, so ``make setup MNIST=/wrong`` fails at setup, not at grading.
    """
    data = validate_mnist(path)
    target = record_file(course_root)
    target.write_text(f"{data}\n")
    return target


def recorded_data_path(course_root: Path) -> Path | None:
    """The path recorded in the course's ``.hw5-data``, or None when there is no record."""
    try:
        text = record_file(course_root).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not text:
        return None
    return Path(course_root) / text  # an absolute path stays as it is; a relative one is the course's


def keras_cache_path(home: Path | None = None) -> Path:
    """Where ``keras.datasets.mnist.load_data()`` keeps its download."""
    return Path(home if home is not None else Path.home()) / ".keras" / "datasets" / "mnist.npz"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_mnist(target: Path, url: str | None = None, timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Download MNIST from ``url`` (default MNIST_URL) into ``target``, atomically.

    The bytes must hash to one of KNOWN_SHA256. Returns ``target``; raises OSError
    (urllib's errors are OSErrors) or InvalidDataFile (a wrong hash: nothing is written).
    """
    target, url = Path(target), url or MNIST_URL
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=".mnist-", suffix=".part", dir=target.parent)
    try:
        digest = hashlib.sha256()
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
        if digest.hexdigest() not in KNOWN_SHA256:  # a proxy's error page, a truncated file
            raise InvalidDataFile(f"{url}: sha256 {digest.hexdigest()[:16]}... is not MNIST's ({KERAS_SHA256[:16]}...)")
        os.replace(partial, target)  # a half-written file never sits at the cache path
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return target


def _problem(path: Path) -> str | None:
    """Why ``path`` cannot be used (absent, or invalid), or None when it is good."""
    if not path.is_file():
        return "absent" if not path.exists() else "not a file"
    try:
        validate_mnist(path)
    except InvalidDataFile as error:
        return f"refused ({error})"
    return None


def resolve_mnist(course_root: Path, environ=os.environ, home: Path | None = None, allow_download: bool = True) -> Path:
    """The MNIST file to grade with: an absolute, validated path. See the module docstring.

    ``environ``: where ``HW5_MNIST_PATH`` is read; ``home``: the home folder of Keras's
    cache (default ``Path.home()``); ``allow_download``: whether step 4 may run.
    Raises DataUnavailable, with a one-line message naming every place looked at.
    """
    configured = environ.get(VARIABLE, "").strip()
    if configured:
        path = Path(configured).expanduser().resolve()
        problem = _problem(path)
        if problem is None:
            return path
        raise DataUnavailable(
            f"MNIST not usable: {VARIABLE}={path} is {problem}; point {VARIABLE} at an MNIST .npz, or unset it"
        )
    looked = [f"{VARIABLE}: unset"]
    record = record_file(course_root)
    recorded = recorded_data_path(course_root)
    if recorded is None:
        looked.append(f"{record}: absent")
    else:
        problem = _problem(recorded)
        if problem is None:
            return recorded.resolve()
        looked.append(f"{record} names {recorded}, which is {problem}")
    cache = keras_cache_path(home)
    problem = _problem(cache)
    if problem is None:
        return cache.resolve()
    looked.append(f"{cache}: {problem}")
    if not allow_download:
        looked.append("download: not tried (not allowed here)")
    else:
        try:
            return validate_mnist(download_mnist(cache))
        except (OSError, InvalidDataFile) as error:  # no network, a proxy page, a full disk
            reason = " ".join(str(getattr(error, "reason", None) or error).split())[:200]
            looked.append(f"download from {MNIST_URL} into the cache: failed ({type(error).__name__}: {reason})")
    raise DataUnavailable("MNIST not found; looked at " + "; ".join(looked) + f". To fix: {HOW_TO_FIX}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``record PATH`` or ``resolve`` (see the module docstring), which ``hw5 data`` shares."""
    actions = parser.add_subparsers(dest="data_action", required=True, metavar="{record,resolve}")
    record = actions.add_parser("record", help="validate PATH and record it in the course's .hw5-data")
    record.add_argument("path", type=Path, metavar="PATH", help="an mnist.npz")
    actions.add_parser("resolve", help="print the file that grading will use")


def main(argv: list[str] | None = None) -> int:
    """``record PATH`` or ``resolve``; 0 on success, 1 on a refusal, 2 on a usage error."""
    parser = argparse.ArgumentParser(prog="python -m graders.grading.data", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    root = Path.cwd()
    try:
        if args.data_action == "record":
            print(f"recorded {validate_mnist(args.path)} in {record_data_path(root, args.path)}")
        else:
            print(resolve_mnist(root))
    except (DataUnavailable, InvalidDataFile) as error:
        print(f"hw5: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
