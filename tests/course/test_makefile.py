"""``make setup``'s system-packages step on a machine without bubblewrap (no apt, no network:
``apt-get`` and ``id`` are stand-ins on a PATH that holds nothing else)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from graders import python_check

ROOT = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make")

pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed (apt-get install -y make)")


def _fake_bin(folder: Path, uid: int) -> Path:
    """``id -u`` says ``uid``; ``apt-get`` logs its arguments and "installs" bwrap."""
    folder.mkdir()
    (folder / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (folder / "apt-get").write_text(
        f'#!/bin/sh\necho "$*" >> {folder}/apt.log\n'
        f'case "$*" in *install*bubblewrap*) printf "#!/bin/sh\\n" > {folder}/bwrap; '
        f"/bin/chmod +x {folder}/bwrap;; esac\n"
    )
    for tool in ("id", "apt-get"):
        (folder / tool).chmod(0o755)
    return folder


def _system_packages(fake: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MAKE, "-s", "system-packages"], cwd=ROOT, env={"PATH": str(fake)}, capture_output=True, text=True, timeout=60
    )


def test_as_root_with_apt_get_it_installs_bubblewrap(tmp_path):
    fake = _fake_bin(tmp_path / "bin", uid=0)
    result = _system_packages(fake)
    assert result.returncode == 0, result.stderr
    assert "installing bubblewrap" in result.stdout
    log = (fake / "apt.log").read_text().splitlines()
    assert log[0] == "update -qq" and "install -y -qq bubblewrap" in log[1]
    assert (fake / "bwrap").exists()
    again = _system_packages(fake)  # installed now: nothing to do
    assert again.stdout == "" and len((fake / "apt.log").read_text().splitlines()) == 2


def test_without_root_it_names_the_package_and_the_alternative(tmp_path):
    fake = _fake_bin(tmp_path / "bin", uid=1000)
    result = _system_packages(fake)
    assert result.returncode == 0, result.stderr
    assert "sudo apt-get install bubblewrap" in result.stdout and "--no-sandbox" in result.stdout
    assert not (fake / "apt.log").exists()


# -- the Python that builds the venv ----------------------------------------------------------


def _pretend_python(folder: Path, version: tuple[int, int, int]) -> Path:
    """A ``python3`` that runs the real interpreter but reports ``version`` to the script."""
    folder.mkdir(exist_ok=True)
    fake = folder / "python3"
    fake.write_text(
        "#!/bin/sh\n"
        f'exec {sys.executable} -c "import runpy, sys; sys.version_info = {version!r}; '
        'sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name=\'__main__\')" "$@"\n'
    )
    fake.chmod(0o755)
    return fake


@pytest.mark.parametrize("version", [(3, 9, 18), (3, 14, 0)])
def test_setup_refuses_a_python_outside_the_range_before_installing_and_names_the_range(tmp_path, version):
    fake = _pretend_python(tmp_path / "bin", version)
    venv = tmp_path / "venv"
    result = subprocess.run(
        [MAKE, "-s", f"{venv}/.installed", f"VENV={venv}", f"PYTHON3={fake}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    needed = python_check.required_range((ROOT / "pyproject.toml").read_text())[0]
    assert f"Python {'.'.join(map(str, version))} cannot run this course: it needs Python {needed}" in result.stderr
    assert not venv.exists()  # nothing was installed


@pytest.mark.parametrize(
    "version, fits",
    [
        ((3, 10, 12), True),
        ((3, 11, 2), True),
        ((3, 12, 3), True),
        ((3, 13, 0), True),
        ((3, 9, 18), False),
        ((3, 14, 0), False),
    ],
)
def test_the_supported_range_is_the_one_pyproject_states(version, fits):
    text = (ROOT / "pyproject.toml").read_text()
    assert (python_check.problem(version, True, text) is None) == fits


def test_a_python_without_venv_is_told_which_package_to_install():
    message = python_check.problem((3, 11, 2), False, (ROOT / "pyproject.toml").read_text())
    assert "sudo apt-get install python3.11-venv" in message


def test_this_python_passes_the_check():
    result = subprocess.run(
        [sys.executable, str(ROOT / "graders" / "python_check.py")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stderr == ""


# -- the lock file ------------------------------------------------------------------------------


def test_setup_installs_from_the_lock_file_and_the_lock_pins_every_dependency():
    import re

    recipe = (ROOT / "Makefile").read_text()
    assert "--constraint requirements.lock -e '.[course,test]'" in recipe
    lock = (ROOT / "requirements.lock").read_text()
    pinned = {
        re.split(r"[=;\s]", line, maxsplit=1)[0].lower().replace("_", "-")
        for line in lock.splitlines()
        if "==" in line and not line.startswith((" ", "#"))
    }
    declared = re.findall(
        r'^\s*"([A-Za-z0-9_.-]+)', (ROOT / "pyproject.toml").read_text().split("[project.scripts]")[0], re.M
    )
    assert {"nbgrader", "tensorflow-cpu", "pytest"} <= set(declared)  # base, course and test all read
    names = {name.lower().replace("_", "-") for name in declared} - {"setuptools"}
    assert names and names <= pinned, f"not pinned in requirements.lock: {sorted(names - pinned)}"
