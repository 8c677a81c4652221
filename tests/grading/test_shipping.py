"""Jobs that carry content: packing, the worker's sha256 cache, and refusing what does
not verify (graders/grading/blobs.py, shipping.py, worker_check.py). Fast: no Dask
cluster, no kernel."""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from graders.grading import blobs, shipping, worker_check
from graders.grading.blobs import Blob, BlobCache, BlobError
from graders.grading.execution import Job
from graders.grading.kits import build_checks_kit

GRADERS = Path(__file__).resolve().parents[2] / "graders"


@pytest.fixture
def course_files(tmp_path):
    kit = build_checks_kit(tmp_path / "kit", GRADERS)
    support = tmp_path / "hw5_data.py"
    support.write_text("LOADER = 'trusted'\n")
    data = tmp_path / "mnist.npz"
    data.write_bytes(os.urandom(4096))
    job = Job(
        student="s",
        notebooks={},
        support_files={"hw5_data.py": str(support)},
        checks_dir=str(kit),
        data_file=str(data),
        verifier_kit_dir=str(kit),
    )
    return job, kit, support, data


def _shipped_to(monkeypatch, shipment):
    """Pretend the batch's plugin reached this process (what a Dask worker holds)."""
    plugin = shipping.BlobShipment(shipment.blobs)
    monkeypatch.setattr(shipping, "_shipped", lambda sha: plugin.blobs.get(sha))
    return plugin


def test_a_folder_packs_to_the_same_hash_wherever_and_whenever_it_is_built(tmp_path):
    first = build_checks_kit(tmp_path / "a", GRADERS)
    os.utime(first / "graders" / "checks" / "kernel_export.py", (1, 1))
    second = build_checks_kit(tmp_path / "b", GRADERS)
    assert blobs.pack(first).sha256 == blobs.pack(second).sha256
    (second / "graders" / "checks" / "kernel_export.py").write_text("# changed\n")
    assert blobs.pack(first).sha256 != blobs.pack(second).sha256


def test_a_shipped_job_names_no_host_path_and_materializes_to_the_same_content(tmp_path, course_files, monkeypatch):
    job, kit, support, data = course_files
    shipment = shipping.Shipment.of(shipping.job_paths(job))
    addressed = shipment.address(job)
    assert all(blobs.is_ref(value) for value in shipping.job_paths(addressed))
    assert str(tmp_path) not in repr(addressed)
    plugin = _shipped_to(monkeypatch, shipment)
    monkeypatch.setenv("HW5_BLOB_CACHE", str(tmp_path / "worker-cache"))
    plugin.setup()  # the plugin's arrival fills the worker's cache
    local = shipping.materialize(addressed)
    assert Path(local.data_file).read_bytes() == data.read_bytes()
    assert Path(local.support_files["hw5_data.py"]).read_text() == "LOADER = 'trusted'\n"
    assert (Path(local.checks_dir) / "graders" / "checks" / "model_checks.py").read_bytes() == (
        kit / "graders" / "checks" / "model_checks.py"
    ).read_bytes()
    assert all(str(tmp_path / "worker-cache") in value for value in shipping.job_paths(local))
    assert oct(Path(local.data_file).stat().st_mode & 0o777) == "0o644"  # the sandbox uid reads it


def test_content_is_shipped_once_and_a_job_naming_a_new_file_ships_only_that(tmp_path, course_files):
    """A batch ships its kits and data once; a job that names another support file (a
    course whose jobs differ) ships only that file, in a plugin of its own."""
    job, *_ = course_files

    class Client:
        registered: list = []

        def register_plugin(self, plugin, name):
            self.registered.append((name, sorted(plugin.blobs)))

    client = Client()
    first = shipping.ship(client, job)
    assert shipping.ship(client, job, first) is first and len(client.registered) == 1
    other = tmp_path / "other_helper.py"
    other.write_text("OTHER = True\n")
    second_job = dataclasses.replace(job, support_files={**job.support_files, "hw5_data.py": str(other)})
    second = shipping.ship(client, second_job, first)
    assert len(client.registered) == 2 and client.registered[1][1] == [blobs.pack(other).sha256]
    assert second.plugins == [name for name, _ in client.registered]
    assert blobs.is_ref(second.address(second_job).support_files["hw5_data.py"])
    assert second.address(job) == first.address(job)  # the first job's references are unchanged


def test_a_job_of_plain_paths_is_left_as_it_is(course_files):
    job = course_files[0]
    assert shipping.materialize(job) is job


@pytest.mark.parametrize("what", ["data_file", "checks_dir"])
def test_a_corrupted_cached_blob_is_fetched_again_never_used(tmp_path, course_files, monkeypatch, what):
    job = course_files[0]
    shipment = shipping.Shipment.of(shipping.job_paths(job))
    addressed = shipment.address(job)
    cache = BlobCache(tmp_path / "worker-cache")
    for sha, blob in shipment.blobs.items():
        cache.put(blob, expected=sha)
    entry = cache.entry(blobs.sha_of(getattr(addressed, what)))
    if what == "data_file":
        entry.write_bytes(b"not mnist")  # a corrupted disk, a half-copied file
    else:
        (entry / "graders" / "checks" / "model_checks.py").write_text("def check_run_model(*a): return True\n")
    _shipped_to(monkeypatch, shipment)
    local = shipping.materialize(addressed, cache)
    original = getattr(job, what)
    assert blobs.pack(getattr(local, what)).sha256 == blobs.pack(original).sha256  # written again, intact


def test_a_corrupted_cached_blob_with_nothing_shipped_is_refused(tmp_path, course_files):
    job = course_files[0]
    shipment = shipping.Shipment.of(shipping.job_paths(job))
    addressed = shipment.address(job)
    cache = BlobCache(tmp_path / "worker-cache")
    for sha, blob in shipment.blobs.items():
        cache.put(blob, expected=sha)
    entry = cache.entry(blobs.sha_of(addressed.data_file))
    entry.write_bytes(b"not mnist")
    with pytest.raises(BlobError, match="not in this worker's cache"):
        shipping.materialize(addressed, cache)  # outside a Dask worker: nothing shipped
    assert not entry.exists()  # and the corrupted entry is gone, not left for the next job


def test_shipped_bytes_that_do_not_match_the_reference_are_refused(tmp_path):
    cache = BlobCache(tmp_path / "cache")
    good, evil = Blob(blobs.FILE, b"kit"), Blob(blobs.FILE, b"tampered")
    with pytest.raises(BlobError, match="refused"):
        cache.get(good.sha256, evil)
    assert not cache.entry(good.sha256).exists() and not cache.entry(evil.sha256).exists()


def test_a_folder_with_a_symlink_is_not_shipped(tmp_path):
    (tmp_path / "kit").mkdir()
    (tmp_path / "kit" / "link").symlink_to("/etc/passwd")
    with pytest.raises(BlobError, match="symbolic link"):
        blobs.pack(tmp_path / "kit")


def test_a_worker_without_the_package_gets_one_line_naming_what_to_install(tmp_path):
    """The probe runs from its source text in a Python that cannot import graders."""
    expression = worker_check.remote_expression(sandbox=True)
    code = f"import sys; sys.path = [p for p in sys.path if 'site-packages' not in p]; print(repr({expression}))"
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    ).stdout
    answer = eval(out)  # noqa: S307 - our own repr of a dict of strings
    assert answer["digest"] is None
    assert "\n" not in answer["problem"] and "pip install hw5-cnn-course" in answer["problem"]


def test_a_worker_with_the_package_passes_and_shares_the_orchestrators_code():
    answer = eval(worker_check.remote_expression(sandbox=False))  # noqa: S307 - as a worker does
    assert answer == {
        "problem": None,
        "digest": worker_check.code_digest(GRADERS),
        "versions": worker_check.library_versions(),
    }


class _WorkersSaying:
    """A stand-in Dask client: each worker answers the probe, with its libraries edited."""

    def __init__(self, **edits):
        self.edits = edits

    def run(self, function, expression):
        answer = function(expression)  # the real probe, run here
        answer["versions"].update(self.edits)
        return {"tcp://10.0.0.7:4000": answer}


def test_a_worker_with_other_library_versions_refuses_the_batch_naming_them():
    assert worker_check.check_workers(_WorkersSaying(), sandbox=False) == []
    problems = worker_check.check_workers(_WorkersSaying(keras="3.0.0", numpy="absent"), sandbox=False)
    assert len(problems) == 1 and problems[0].startswith("worker tcp://10.0.0.7:4000: ")
    assert "keras 3.0.0 here" in problems[0] and "numpy absent here" in problems[0]
    assert "tensorflow" not in problems[0] and "requirements.lock" in problems[0]


def test_a_worker_that_is_not_root_grades_rootless_or_says_why_not(monkeypatch):
    """Not root: the worker needs bwrap, prlimit and user namespaces (the rootless sandbox)."""
    from graders.sandbox import rootless

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(shutil, "which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(rootless, "userns_problem", lambda bwrap: None)
    assert worker_check.probe(sandbox=True)["problem"] is None
    monkeypatch.setattr(rootless, "userns_problem", lambda bwrap: "user namespaces are disabled (sysctl x=0)")
    problem = worker_check.probe(sandbox=True)["problem"]
    assert "rootless sandbox cannot start: user namespaces are disabled" in problem and "\n" not in problem


def test_byte_code_left_in_a_cached_kit_is_removed_before_use(tmp_path, course_files):
    """An unsandboxed kernel may write __pycache__ into the kit it imported: a forged .pyc
    would outlive the hash check, so it goes."""
    job = course_files[0]
    shipment = shipping.Shipment.of(shipping.job_paths(job))
    addressed = shipment.address(job)
    cache = BlobCache(tmp_path / "worker-cache")
    for sha, blob in shipment.blobs.items():
        cache.put(blob, expected=sha)
    forged = cache.entry(blobs.sha_of(addressed.checks_dir)) / "graders" / "checks" / "__pycache__"
    forged.mkdir()
    (forged / "model_checks.cpython-311.pyc").write_bytes(b"forged")
    local = shipping.materialize(addressed, cache)
    assert not forged.exists() and Path(local.checks_dir, "graders", "checks", "model_checks.py").is_file()


@pytest.mark.batch
def test_content_a_worker_cannot_verify_is_never_a_students_zero(tmp_path, monkeypatch, capsys):
    """Every job refused by the worker's cache: nothing is recorded for anyone (exit 1).
    The worker runs in this process (threads), so the refusal can be forced here."""
    from distributed import LocalCluster
    from toy_course import CORRECT, make_toy_course, points, submit

    from graders.grading import batch

    root = make_toy_course(tmp_path / "course")
    for student in ("alice", "bob"):
        submit(root, student, CORRECT)

    def refuse(self, sha256, shipped=None):
        raise BlobError(f"content sha256:{sha256[:16]}... does not verify")

    monkeypatch.setattr(BlobCache, "get", refuse)
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster:
        code = batch.main(
            ["toy", "--course", str(root), "--no-sandbox", "--no-canary", "--scheduler", cluster.scheduler_address]
        )
    out = capsys.readouterr().out
    assert code == 1 and "could not use the grading content" in out, out  # ours: exit 1, nothing recorded
    assert points(root, "alice") == {} and points(root, "bob") == {}


# -- unpacking a shipped folder: the same checks on every Python -------------------------------


def _tar_of(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    """A tar with these raw members (what a hostile or damaged shipment could hold)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _member(
    name: str, kind: bytes = tarfile.REGTYPE, data: bytes | None = b"x", linkname: str = "", size: int | None = None
) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    if kind in (tarfile.REGTYPE, tarfile.AREGTYPE):
        info.size = len(data) if size is None else size
    else:
        data = None
    return info, data


HOSTILE = {
    "absolute path": ([_member("/tmp/hw5-escaped-absolute")], "does not name a place inside"),
    "dot-dot": ([_member("kit/../../hw5-escaped-dotdot")], "does not name a place inside"),
    "symlink": ([_member("link", tarfile.SYMTYPE, linkname="/etc/passwd")], "symbolic link"),
    "symlink then a file through it": (
        [_member("d", tarfile.SYMTYPE, linkname="/tmp"), _member("d/hw5-escaped-through-link")],
        "symbolic link",
    ),
    "hard link": ([_member("hard", tarfile.LNKTYPE, linkname="/etc/passwd")], "hard link"),
    "character device": ([_member("null", tarfile.CHRTYPE)], "a device"),
    "block device": ([_member("sda", tarfile.BLKTYPE)], "a device"),
    "fifo": ([_member("pipe", tarfile.FIFOTYPE)], "a fifo"),
    "empty name": ([_member(".")], "empty name"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_folder_archive_is_refused_before_anything_is_written(tmp_path, case):
    members, reason = HOSTILE[case]
    dest = tmp_path / "unpack" / "here"
    dest.mkdir(parents=True)
    with pytest.raises(BlobError, match=reason) as refused:
        blobs.unpack_tree(_tar_of(_member("first-file"), *members), dest)
    assert "refused" in str(refused.value)
    assert list(dest.iterdir()) == []  # checked first: not even the harmless member is written
    assert not list(tmp_path.glob("**/hw5-escaped-*")) and not Path("/tmp/hw5-escaped-absolute").exists()


def test_an_oversized_or_overfull_folder_archive_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(blobs, "SHIPPED_FOLDER_MAX_BYTES", 1000)
    with pytest.raises(BlobError, match="more than 1000 bytes"):
        blobs.unpack_tree(_tar_of(_member("a", data=b"x" * 600), _member("b", data=b"y" * 600)), tmp_path)
    monkeypatch.setattr(blobs, "SHIPPED_FOLDER_MAX_MEMBERS", 3)
    with pytest.raises(BlobError, match="more than the 3 allowed"):
        blobs.unpack_tree(_tar_of(*(_member(f"f{i}") for i in range(4))), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_or_repeating_folder_archive_is_refused(tmp_path):
    with pytest.raises(BlobError, match="not a readable tar"):
        blobs.unpack_tree(b"\x00garbage" * 100, tmp_path / "a")
    (tmp_path / "b").mkdir()
    with pytest.raises(BlobError, match="could not be unpacked"):
        blobs.unpack_tree(_tar_of(_member("same", data=b"1"), _member("same", data=b"2")), tmp_path / "b")


def test_a_hostile_shipped_folder_never_enters_the_cache(tmp_path):
    hostile = Blob(blobs.TREE, _tar_of(_member("../../hw5-escaped-cache")))
    with pytest.raises(BlobError, match="does not name a place inside"):
        BlobCache(tmp_path / "cache").put(hostile)
    assert not (tmp_path / "cache" / hostile.sha256).exists() and not list(tmp_path.glob("**/hw5-escaped-*"))
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []  # no staging folder left


def test_a_real_kit_round_trips_through_pack_and_unpack(tmp_path):
    kit = build_checks_kit(tmp_path / "kit", GRADERS)
    blob = blobs.pack(kit)
    entry = BlobCache(tmp_path / "cache").put(blob)
    assert blobs.hash_entry(entry) == blob.sha256
    assert sorted(p.relative_to(entry).as_posix() for p in entry.rglob("*")) == sorted(
        p.relative_to(kit).as_posix() for p in kit.rglob("*") if "__pycache__" not in p.parts
    )
