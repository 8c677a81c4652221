"""Generate the student release from the source notebooks, and compare it with the committed one.

``hw5-release`` regenerates ``release/hw5`` with ``nbgrader generate_assignment``;
``hw5-release --check`` only reports whether the committed release is current
(the golden test runs the same comparison).
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat

from graders.course import ASSIGNMENT, COURSE_ROOT, release_dir, run_nbgrader

#: What a scratch course needs to generate the release.
_COURSE_FILES = ("nbgrader_config.py",)


def generate_release(root: Path = COURSE_ROOT, assignment: str = ASSIGNMENT) -> Path:
    """Run ``nbgrader generate_assignment`` in ``root``; returns the release folder."""
    result = run_nbgrader(["generate_assignment", assignment, "--force"], root=root, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"nbgrader generate_assignment failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    return root / "release" / assignment


def copy_course(target: Path, root: Path = COURSE_ROOT) -> Path:
    """Copy the course's hand-edited inputs (the config and ``source/``) into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for name in _COURSE_FILES:
        shutil.copy2(root / name, target / name)
    shutil.copytree(root / "source", target / "source")
    return target


def make_scratch_course(target: Path, root: Path = COURSE_ROOT) -> Path:
    """A throw-away course in ``target``: a copy of the inputs, a fresh release and gradebook."""
    scratch_release(copy_course(target, root))
    return target


#: Scratch releases generated in this process: content key -> folder holding the
#: release and the gradebook that nbgrader wrote for those inputs.
_SCRATCH_RELEASES: dict[str, Path] = {}


def scratch_release(root: Path, assignment: str = ASSIGNMENT) -> Path:
    """``generate_release`` for a throw-away course: the same inputs (config and source
    folder, byte for byte) give the same release and gradebook, so nbgrader runs once per
    process for them and later courses get a copy (each course still owns its files).
    A course whose gradebook lies elsewhere (HW5_DB_URL) always runs nbgrader."""
    if os.environ.get("HW5_DB_URL"):
        return generate_release(root, assignment)
    key = _inputs_key(root, assignment)
    made = _SCRATCH_RELEASES.get(key)
    if made is None:
        release = generate_release(root, assignment)
        made = Path(tempfile.mkdtemp(prefix="hw5-scratch-release-"))
        atexit.register(shutil.rmtree, made, ignore_errors=True)
        shutil.copytree(release, made / "release" / assignment)
        shutil.copy2(root / "gradebook.db", made / "gradebook.db")
        _SCRATCH_RELEASES[key] = made
        return release
    shutil.copytree(made / "release" / assignment, root / "release" / assignment, dirs_exist_ok=True)
    shutil.copy2(made / "gradebook.db", root / "gradebook.db")
    return root / "release" / assignment


def _inputs_key(root: Path, assignment: str) -> str:
    """A digest of what generate_assignment reads: the config and the assignment's source."""
    digest = hashlib.sha256(assignment.encode())
    files = [root / name for name in _COURSE_FILES]
    files += sorted(path for path in (root / "source" / assignment).rglob("*") if path.is_file())
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def generate_release_elsewhere(root: Path = COURSE_ROOT) -> tuple[Path, tempfile.TemporaryDirectory]:
    """Generate the release in a scratch copy of the course, leaving ``root`` untouched.

    Returns the scratch release folder and the TemporaryDirectory that owns it.
    """
    scratch = tempfile.TemporaryDirectory(prefix="hw5-release-")
    return generate_release(copy_course(Path(scratch.name), root)), scratch


def normalized(path: Path) -> dict:
    """A notebook as a dict with cell ids removed (nbgrader may renumber them)."""
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        cell.pop("id", None)
    return notebook


def differences(expected_dir: Path, actual_dir: Path) -> list[str]:
    """Human-readable differences between two release folders (empty when they agree)."""
    problems = []
    expected_files = {p.relative_to(expected_dir) for p in expected_dir.rglob("*") if p.is_file()}
    actual_files = {p.relative_to(actual_dir) for p in actual_dir.rglob("*") if p.is_file()}
    for missing in sorted(expected_files - actual_files):
        problems.append(f"missing from the committed release: {missing}")
    for extra in sorted(actual_files - expected_files):
        problems.append(f"not generated from source (stale?): {extra}")
    for name in sorted(expected_files & actual_files):
        left, right = expected_dir / name, actual_dir / name
        if name.suffix == ".ipynb":
            if normalized(left) != normalized(right):
                problems.append(f"differs from a fresh generate_assignment: {name}")
        elif left.read_bytes() != right.read_bytes():
            problems.append(f"differs from source: {name}")
    return problems


def check_release(root: Path = COURSE_ROOT) -> list[str]:
    """Regenerate in a scratch course and compare with ``root``'s committed release."""
    fresh, scratch = generate_release_elsewhere(root)
    with scratch:
        return differences(fresh, release_dir(root))


def refresh_release(root: Path = COURSE_ROOT) -> Path:
    """Regenerate ``root/release/hw5`` in place; this also records the assignment
    (every cell's source, hidden tests included) in the course's gradebook, which
    autograding needs."""
    return generate_release(root)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """hw5-release's options, which ``hw5 release`` shares."""
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if stale")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="hw5-release", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    if args.check:
        problems = check_release()
        for problem in problems:
            print(problem)
        print("release is current" if not problems else "release is stale: run hw5-release")
        return 1 if problems else 0
    target = refresh_release()
    print(f"regenerated {target.relative_to(COURSE_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
