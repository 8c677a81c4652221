"""``make setup``'s system-packages step on a machine without bubblewrap (no apt, no network:
``apt-get`` and ``id`` are stand-ins on a PATH that holds nothing else)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")

pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed (apt-get install -y make)")


def _fake_bin(folder: Path, uid: int) -> Path:
    """``id -u`` says ``uid``; ``apt-get`` logs its arguments and "installs" bwrap."""
    folder.mkdir()
    (folder / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (folder / "apt-get").write_text(
        f'#!/bin/sh\necho "$*" >> {folder}/apt.log\n'
        f'case "$*" in *install*bubblewrap*) printf "#!/bin/sh\\n" > {folder}/bwrap; '
        f'/bin/chmod +x {folder}/bwrap;; esac\n')
    for tool in ("id", "apt-get"):
        (folder / tool).chmod(0o755)
    return folder


def _system_packages(fake: Path) -> subprocess.CompletedProcess:
    return subprocess.run([MAKE, "-s", "system-packages"], cwd=ROOT, env={"PATH": str(fake)},
                          capture_output=True, text=True, timeout=60)


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
