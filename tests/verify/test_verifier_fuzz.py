"""Hostile exports against the real verifier in its sandbox: each one ends in "could not
verify" for its cell, the well-formed cell beside them still passes, and the host is
unchanged (no process, mount or cgroup left; the exports untouched)."""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile

import nbformat
import numpy as np
import pytest
from host_state import lasting_leftovers, orphaned_sandbox_leftovers, tree_hash
from nbformat.v4 import new_code_cell, new_notebook

from graders.checks.kernel_export import FORMAT
from graders.course import COURSE_ROOT
from graders.grading.kits import build_verifier_kit
from graders.grading.verifier_step import ToVerify, verify_submission

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


def _manifest(grade_id: str, items: dict) -> bytes:
    return json.dumps({"format": FORMAT, "grade_id": grade_id, "items": items, "calls": []}).encode()


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _zip_bomb() -> bytes:
    """A .npz whose one member inflates to 512 MiB of zeros from well under 1 MiB."""
    buffer = io.BytesIO()
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (128 * 1024 * 1024,)}
    )
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            zeros = bytes(16 * 1024 * 1024)
            for _ in range(32):
                member.write(zeros)
    return buffer.getvalue()


def _array_item(shape, dtype="float32"):
    return {"x": {"kind": "array", "key": "x", "dtype": dtype, "shape": shape}}


#: grade_id -> (manifest.json bytes, arrays.npz bytes or None); every one but "good" is hostile.
EXPORTS = {
    "good": (_manifest("good", {"x": {"kind": "value", "value": 1, "tuple": False}}), None),
    "malformed_json": (b'{"format": "hw5-export/1", "items": {', None),
    "wrong_dtype": (_manifest("wrong_dtype", _array_item([2], "complex128")), _npz(x=np.ones(2, dtype="complex128"))),
    "nan_in_shape": (
        _manifest("nan_in_shape", _array_item([2])).replace(b"[2]", b"[NaN]"),
        _npz(x=np.ones(2, dtype="float32")),
    ),
    "inf_value": (
        _manifest("inf_value", {"x": {"kind": "value", "value": 1, "tuple": False}}).replace(
            b'"value": 1', b'"value": Infinity'
        ),
        None,
    ),
    "huge_shape": (_manifest("huge_shape", _array_item([10**9, 10**9])), _npz(x=np.ones(2, dtype="float32"))),
    "zip_bomb": (_manifest("zip_bomb", _array_item([128 * 1024 * 1024])), _zip_bomb()),
    "deep_nesting": (
        b'{"format": "hw5-export/1", "grade_id": "deep_nesting", "items": {"x": '
        b'{"kind": "value", "tuple": false, "value": ' + b"[" * 100_000 + b"]" * 100_000 + b'}}, "calls": []}',
        None,
    ),
    "truncated_npz": (_manifest("truncated_npz", _array_item([2])), _npz(x=np.ones(2, dtype="float32"))[:40]),
    "symlinked_manifest": None,  # a symlink to a well-formed manifest elsewhere
}


@pytest.fixture(scope="module")
def verified(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    exports = base / "exports"
    elsewhere = base / "elsewhere.json"
    elsewhere.write_bytes(_manifest("symlinked_manifest", {"x": {"kind": "value", "value": 1, "tuple": False}}))
    for grade_id, files in EXPORTS.items():
        folder = exports / grade_id
        folder.mkdir(parents=True)
        if files is None:
            os.symlink(elsewhere, folder / "manifest.json")
            continue
        (folder / "manifest.json").write_bytes(files[0])
        if files[1] is not None:
            (folder / "arrays.npz").write_bytes(files[1])
    for path in [base, *base.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    cells = [
        new_code_cell(
            "assert x == 1, 'x should be 1'",
            metadata={
                "nbgrader": {"grade": True, "grade_id": grade_id, "points": 1, "locked": True, "solution": False}
            },
        )
        for grade_id in EXPORTS
    ]
    trusted = nbformat.writes(new_notebook(cells=cells))
    requests = {grade_id: {"grade_id": grade_id, "names": ["x"], "calls": []} for grade_id in EXPORTS}
    kit = build_verifier_kit(base / "kit", COURSE_ROOT / "graders")
    before = set(orphaned_sandbox_leftovers())
    exports_hash = tree_hash(exports)
    verifications, _ = verify_submission(
        {"fuzz.ipynb": ToVerify(trusted, requests, str(exports))},
        kit_dir=str(kit),
        support_files={},
        data_file=None,
        env={},
        sandbox=True,
    )
    verification = verifications["fuzz.ipynb"]
    return verification, before, exports_hash, exports


def test_the_well_formed_export_passes(verified):
    verification = verified[0]
    assert verification.failure is None, verification.failure
    assert verification.verdicts["good"] == {"passed": True, "verdict": "passed", "message": ""}


@pytest.mark.parametrize("grade_id", [g for g in EXPORTS if g != "good"])
def test_each_hostile_export_could_not_be_verified(verified, grade_id):
    verdict = verified[0].verdicts[grade_id]
    assert verdict["passed"] is False
    assert verdict["message"].startswith("could not verify"), verdict["message"]


def test_the_host_is_unchanged(verified):
    _, before, exports_hash, exports = verified
    assert tree_hash(exports) == exports_hash
    assert lasting_leftovers(before) == []
