"""Content-addressed blobs: a file or a folder named by the sha256 of its bytes, and a
worker's cache of them, verified by hash before every use.

A cluster worker shares no filesystem with the course, so what a job needs (the checks
kit, the verifier kit, ``hw5_data.py``, the data file) travels as bytes named by their
sha256 (:mod:`graders.grading.shipping` moves them through Dask). A folder travels as a
*deterministic* tar (sorted names, no times, owners or modes), so the same kit always
has the same hash and a worker's cache stays valid from one batch to the next.

Cache layout (``HW5_BLOB_CACHE``, default ``~/.cache/hw5-cnn-course/blobs``): one entry
per hash, ``<root>/<sha256>``, a file or an unpacked folder. Entries are world-readable
(the sandboxes' unprivileged uids read them through read-only binds) and written
atomically (a temporary name, then a rename), so worker processes sharing a machine may
fill the same cache at once. An entry whose content no longer hashes to its name (a
corrupted disk, a hand edit, a half-copied folder) is never used: it is removed and
written again from the bytes the batch shipped, or refused when there are none.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from graders.sandbox.limits import SHIPPED_FOLDER_MAX_BYTES, SHIPPED_FOLDER_MAX_MEMBERS

#: How a job names content instead of a host path: ``sha256:<64 hex digits>``.
REF_PREFIX = "sha256:"
FILE, TREE = "file", "tree"
#: Byte-code caches a Python run may add to an unpacked kit: neither packed nor hashed.
IGNORED = frozenset({"__pycache__"})


class BlobError(RuntimeError):
    """A blob that cannot be used: missing from the cache and not shipped, or corrupted."""


@dataclass(frozen=True)
class Blob:
    """The bytes of one file (``kind="file"``) or of one folder's deterministic tar."""

    kind: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def is_ref(value: object) -> bool:
    return isinstance(value, str) and value.startswith(REF_PREFIX) and len(value) == len(REF_PREFIX) + 64


def ref(sha256: str) -> str:
    return REF_PREFIX + sha256


def sha_of(reference: str) -> str:
    if not is_ref(reference):
        raise BlobError(f"not a content reference: {reference!r}")
    return reference[len(REF_PREFIX) :]


def pack(path: str | os.PathLike) -> Blob:
    """A file's bytes, or a folder's deterministic tar (symlinks refused: a kit holds
    plain files only)."""
    path = Path(path)
    if path.is_symlink():
        raise BlobError(f"{path} is a symbolic link; only plain files and folders are shipped")
    if path.is_file():
        return Blob(FILE, path.read_bytes())
    if not path.is_dir():
        raise BlobError(f"{path} does not exist")
    return Blob(TREE, _tar(path))


def _tar(root: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(name for name in dirnames if name not in IGNORED)
            for name in sorted([*dirnames, *filenames]):
                full = Path(dirpath, name)
                if full.is_symlink():
                    raise BlobError(f"{full} is a symbolic link; a shipped folder holds plain files only")
                info = tarfile.TarInfo(str(full.relative_to(root)))
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                if full.is_dir():
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                else:
                    data = full.read_bytes()
                    info.size, info.mode = len(data), 0o644
                    tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def unpack_tree(data: bytes, dest: Path) -> None:
    """Unpack a shipped folder's tar into ``dest`` (an existing empty folder).

    The same checks on every Python (tarfile's own ``filter="data"`` exists only from
    3.10.12 and 3.11.4): every member is checked before anything is written, and the
    archive is refused with a BlobError naming the member when one is not a plain file or
    folder (links, devices, fifos, sparse files), has an absolute name or a ``..`` part,
    or when the sizes or the count pass SHIPPED_FOLDER_MAX_BYTES / _MEMBERS.
    """
    try:
        tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:")
    except tarfile.TarError as error:
        raise BlobError(f"a shipped folder is not a readable tar archive ({error}): refused") from error
    with tar:
        members = tar.getmembers()
        if len(members) > SHIPPED_FOLDER_MAX_MEMBERS:
            raise BlobError(
                f"a shipped folder has {len(members)} entries, more than the "
                f"{SHIPPED_FOLDER_MAX_MEMBERS} allowed: refused"
            )
        plan, total = [], 0
        for member in members:
            parts = _safe_parts(member.name)
            if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE):
                raise BlobError(
                    f"a shipped folder's entry {member.name!r} is {_kind(member)}; "
                    "only plain files and folders are unpacked: refused"
                )
            total += max(member.size, 0)
            if total > SHIPPED_FOLDER_MAX_BYTES:
                raise BlobError(
                    f"a shipped folder unpacks to more than {SHIPPED_FOLDER_MAX_BYTES} "
                    f"bytes (at {member.name!r}): refused"
                )
            plan.append((member, dest.joinpath(*parts)))
        for member, target in plan:
            try:
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                with source, open(target, "xb") as out:  # "x": a repeated name is refused, not overwritten
                    shutil.copyfileobj(source, out)
            except OSError as error:
                raise BlobError(
                    f"a shipped folder's entry {member.name!r} could not be unpacked "
                    f"({error.strerror or error}): refused"
                ) from error


def _safe_parts(name: str) -> tuple[str, ...]:
    """The path parts of a member's name, refused when absolute, empty or climbing out."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or "\\" in name or "\0" in name or any(part == ".." for part in path.parts):
        raise BlobError(f"a shipped folder's entry {name!r} does not name a place inside the folder: refused")
    if not path.parts:
        raise BlobError(f"a shipped folder has an entry with an empty name ({name!r}): refused")
    return path.parts


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return f"a symbolic link to {member.linkname!r}"
    if member.islnk():
        return f"a hard link to {member.linkname!r}"
    if member.ischr() or member.isblk():
        return "a device"
    if member.isfifo():
        return "a fifo"
    if member.issparse():
        return "a sparse file"
    return f"of tar type {member.type!r}"


def hash_entry(path: Path) -> str | None:
    """The sha256 a cache entry's content has now (a folder: of its deterministic tar);
    None when there is no usable entry."""
    try:
        if path.is_symlink():
            return None
        if path.is_file():
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            return digest.hexdigest()
        if path.is_dir():
            return hashlib.sha256(_tar(path)).hexdigest()
    except (OSError, BlobError):
        return None
    return None


def default_root() -> Path:
    return Path(os.environ.get("HW5_BLOB_CACHE") or Path.home() / ".cache" / "hw5-cnn-course" / "blobs")


class BlobCache:
    """A folder of verified blobs, keyed by sha256."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_root()

    def entry(self, sha256: str) -> Path:
        return self.root / sha256

    def get(self, sha256: str, shipped: Blob | None = None) -> Path:
        """The path of verified content for ``sha256``. A missing or corrupted entry is
        (re)written from ``shipped`` (itself checked against the hash) or refused."""
        path = self.entry(sha256)
        if path.is_dir() and not path.is_symlink():
            for stale in list(path.rglob("__pycache__")):  # byte code an unsandboxed run wrote: not hashed, so not kept
                shutil.rmtree(stale, ignore_errors=True)
        if hash_entry(path) == sha256:
            return path
        if path.exists() or path.is_symlink():
            _remove(path)  # corrupted: never used, never left for the next job
        if shipped is None:
            raise BlobError(
                f"content sha256:{sha256[:16]}... is not in this worker's cache ({self.root}) "
                "and this batch did not ship it"
            )
        self.put(shipped, expected=sha256)
        if hash_entry(path) != sha256:
            raise BlobError(f"content sha256:{sha256[:16]}... does not verify after being written to {path}")
        return path

    def put(self, blob: Blob, expected: str | None = None) -> Path:
        """Write ``blob`` under its hash (atomically; a valid entry is kept as it is)."""
        sha256 = blob.sha256
        if expected is not None and sha256 != expected:
            raise BlobError(
                f"shipped content hashes to sha256:{sha256[:16]}..., not the "
                f"sha256:{expected[:16]}... the job names: refused"
            )
        path = self.entry(sha256)
        if hash_entry(path) == sha256:
            return path
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)  # the sandboxes' uids read entries through binds
        scratch = Path(tempfile.mkdtemp(prefix=f".{sha256[:12]}-", dir=self.root))
        try:
            staged = scratch / "entry"
            if blob.kind == FILE:
                staged.write_bytes(blob.data)
                os.chmod(staged, 0o644)
            elif blob.kind == TREE:
                staged.mkdir()
                unpack_tree(blob.data, staged)
                for dirpath, _, filenames in os.walk(staged):
                    os.chmod(dirpath, 0o755)
                    for name in filenames:
                        os.chmod(os.path.join(dirpath, name), 0o644)
            else:
                raise BlobError(f"unknown blob kind {blob.kind!r}")
            if hash_entry(staged) != sha256:
                raise BlobError(f"content sha256:{sha256[:16]}... does not unpack to itself: refused")
            if path.exists() or path.is_symlink():
                _remove(path)  # a corrupted entry another process has not removed yet
            try:
                os.rename(staged, path)
            except OSError:  # another worker process wrote it first
                if hash_entry(path) != sha256:
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
