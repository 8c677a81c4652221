"""Jobs that carry content, not paths: what a Dask worker on another machine needs.

The orchestrator builds a :class:`~graders.grading.execution.Job` naming host paths (the
checks kit, the verifier kit, the support files, the data file). Before submitting it:

1. :func:`ship` packs each of those paths once per batch (:mod:`graders.grading.blobs`),
   and registers a Dask worker plugin carrying the bytes: every worker, including one
   that joins later, writes them into its own cache, verified by sha256;
2. :meth:`Shipment.address` rewrites the job's paths as ``sha256:<hex>`` references.

On the worker, :func:`materialize` (the first line of ``execute_job``) turns the
references back into paths of its cache, each verified by hash right before the job uses
it; a corrupted entry is written again from the plugin's bytes, or the job is refused.
A job that names plain paths (nothing shipped) is returned unchanged.

Local workers go through the same code: the cost is one packing per batch and one
hash of each blob per job (about 50 ms for HW5, MNIST's 11 MB included).
"""

from __future__ import annotations

import dataclasses
import hashlib

from distributed.diagnostics.plugin import WorkerPlugin

from graders.grading.blobs import Blob, BlobCache, BlobError, is_ref, pack, ref, sha_of

PLUGIN_PREFIX = "hw5-blobs-"


class BlobShipment(WorkerPlugin):
    """The bytes of one batch's blobs, on every worker: written into its cache when the
    plugin arrives, and kept in memory to rewrite an entry found corrupted later."""

    def __init__(self, blobs: dict[str, Blob]):
        self.blobs = blobs

    def setup(self, worker=None):
        cache = BlobCache()
        for sha256, blob in self.blobs.items():
            cache.put(blob, expected=sha256)


@dataclasses.dataclass
class Shipment:
    """One batch's packed content: host path -> reference, and the blobs by hash."""

    refs: dict[str, str]
    blobs: dict[str, Blob]
    plugins: list[str] = dataclasses.field(default_factory=list)  # registered on the cluster

    @classmethod
    def of(cls, paths) -> Shipment:
        refs, blobs = {}, {}
        for path in dict.fromkeys(p for p in paths if p):
            blob = pack(path)
            sha256 = blob.sha256
            refs[path], blobs[sha256] = ref(sha256), blob
        return cls(refs, blobs)

    @property
    def name(self) -> str:
        """The plugin's name: one per content, so two batches on one cluster never evict
        each other's bytes."""
        return PLUGIN_PREFIX + hashlib.sha256("".join(sorted(self.blobs)).encode()).hexdigest()[:16]

    def address(self, job):
        """``job`` with every shipped path replaced by its content reference."""

        def to_ref(path):
            if path is None:
                return None
            if path not in self.refs:
                raise BlobError(f"{path} was not shipped with this batch")
            return self.refs[path]

        return dataclasses.replace(
            job,
            checks_dir=to_ref(job.checks_dir),
            verifier_kit_dir=to_ref(job.verifier_kit_dir),
            data_file=to_ref(job.data_file),
            support_files={name: to_ref(path) for name, path in job.support_files.items()},
        )

    @property
    def size(self) -> int:
        return sum(len(blob.data) for blob in self.blobs.values())


def job_paths(job) -> list[str]:
    """Every host path a job names."""
    return [job.checks_dir, job.verifier_kit_dir, job.data_file, *job.support_files.values()]


def ship(client, job, shipped: Shipment | None = None) -> Shipment:
    """Put what ``job`` names on every worker of ``client``'s cluster (the plugin's setup
    writes each worker's cache before this returns). ``shipped``: what the batch shipped
    so far; only paths it lacks are packed and sent (every HW5 job names the same ones, so
    that is once per batch). Returns the batch's shipment so far."""
    shipped = shipped or Shipment({}, {})
    new = Shipment.of(path for path in job_paths(job) if path and path not in shipped.refs)
    if not new.refs:
        return shipped
    fresh = {sha256: blob for sha256, blob in new.blobs.items() if sha256 not in shipped.blobs}
    plugins = list(shipped.plugins)
    if fresh:
        name = Shipment({}, fresh).name
        client.register_plugin(BlobShipment(fresh), name=name)
        plugins.append(name)
    return Shipment({**shipped.refs, **new.refs}, {**shipped.blobs, **new.blobs}, plugins)


def unship(client, shipment: Shipment) -> None:
    """Drop the batch's bytes from the workers' memory (their caches keep the files)."""
    for name in shipment.plugins:
        try:
            client.unregister_worker_plugin(name)
        except Exception:  # noqa: BLE001 - a worker gone or a plugin already removed: nothing held
            pass


def _shipped(sha256: str) -> Blob | None:
    """The bytes of ``sha256`` that a batch shipped to this worker, if any."""
    try:
        from distributed import get_worker

        plugins = get_worker().plugins.values()
    except ValueError:  # not running in a Dask worker: nothing was shipped here
        return None
    for plugin in plugins:
        if isinstance(plugin, BlobShipment) and sha256 in plugin.blobs:
            return plugin.blobs[sha256]
    return None


def materialize(job, cache: BlobCache | None = None):
    """``job`` with every content reference replaced by a verified path of this worker's
    cache (a job of plain paths comes back as it is). Raises BlobError when some content
    is neither in the cache, intact, nor shipped."""
    if not any(is_ref(value) for value in job_paths(job)):
        return job
    cache = cache or BlobCache()

    def to_path(value):
        if value is None or not is_ref(value):
            return value
        sha256 = sha_of(value)
        return str(cache.get(sha256, _shipped(sha256)))

    return dataclasses.replace(
        job,
        checks_dir=to_path(job.checks_dir),
        verifier_kit_dir=to_path(job.verifier_kit_dir),
        data_file=to_path(job.data_file),
        support_files={name: to_path(value) for name, value in job.support_files.items()},
    )
