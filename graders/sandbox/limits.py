"""Resource limits for one sandboxed notebook run.

Everything here is plain data; :mod:`graders.sandbox.run` turns it into cgroup
settings (memory, pids), sized tmpfs mounts, RLIMITs and thread variables.
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024

#: RLIMIT_AS below this makes TensorFlow abort while creating its thread pools.
MIN_ADDRESS_SPACE_MB = 4096

#: A folder shipped to a worker (a kit: a few hundred kB of code and JSON) is refused
#: beyond these, before anything is written (:mod:`graders.grading.blobs`).
SHIPPED_FOLDER_MAX_BYTES = 64 * MiB
SHIPPED_FOLDER_MAX_MEMBERS = 10_000

#: The out-of-kernel verifier's sandbox (:mod:`graders.grading.verifier_step`): a uid of its
#: own, so that nothing the student's uid left can touch it, and its own limits.
VERIFIER_UID = 65533
VERIFIER_TIMEOUT_S = 300
VERIFIER_MEMORY_MB = 4096

#: Rootless: how long a run's end waits for its namespace's pid 1 to be gone, after the
#: outer bwrap has exited (:meth:`graders.sandbox.run.SandboxRun.wait`).
PID1_EXIT_WAIT_S = 10


@dataclass(frozen=True)
class SandboxLimits:
    """Limits for one sandboxed run (all sizes in MiB unless the name says bytes).

    ``pids`` counts threads too (cgroup ``pids.max``): an idle ipykernel uses about
    10, TensorFlow adds about 20 more with the thread variables below.
    """

    memory_mb: int = 4096  # cgroup memory limit (RAM, tmpfs pages included)
    pids: int = 512  # cgroup pids.max: processes + threads
    tmp_mb: int = 256  # tmpfs /tmp inside (HOME and caches live there)
    shm_mb: int = 64  # tmpfs /dev/shm inside
    scratch_mb: int = 512  # per-run scratch tmpfs = the kernel's cwd
    cell_timeout_s: int = 300  # per cell, interrupt (SIGINT) then error output
    notebook_timeout_s: int = 900  # whole run, enforced from the host (kill all)
    max_output_bytes: int = 20 * MiB  # the executed notebook read back
    max_cell_output_bytes: int = 2 * MiB  # outputs kept per cell (the rest dropped)
    max_log_bytes: int = 256 * 1024  # sandbox stdout / stderr kept, each
    threads: int = 2  # OMP / TF intra+inter-op / BLAS threads
    nofile: int = 4096  # RLIMIT_NOFILE
    address_space_mb: int | None = None  # RLIMIT_AS; None: none (memory cgroup bounds RAM)
    uid: int = 65534  # the unprivileged uid/gid the sandbox runs as
    gid: int = 65534

    def __post_init__(self) -> None:
        for name in (
            "memory_mb",
            "pids",
            "tmp_mb",
            "shm_mb",
            "scratch_mb",
            "cell_timeout_s",
            "notebook_timeout_s",
            "max_output_bytes",
            "max_cell_output_bytes",
            "max_log_bytes",
            "threads",
            "nofile",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"SandboxLimits.{name} must be a positive int, got {value!r}")
        if self.pids < 16:
            raise ValueError("SandboxLimits.pids < 16 cannot even start a Jupyter kernel")
        if self.memory_mb < 128:
            raise ValueError("SandboxLimits.memory_mb < 128 cannot even start a Jupyter kernel")
        if self.address_space_mb is not None and self.address_space_mb < MIN_ADDRESS_SPACE_MB:
            raise ValueError(
                f"SandboxLimits.address_space_mb must be None or >= {MIN_ADDRESS_SPACE_MB} "
                "(TensorFlow aborts creating threads under a smaller RLIMIT_AS)"
            )
        if self.uid == 0 or self.gid == 0:
            raise ValueError("the sandbox must not run as uid/gid 0")

    # -- derived values ---------------------------------------------------------
    @property
    def memory_bytes(self) -> int:
        return self.memory_mb * MiB

    @property
    def fsize_bytes(self) -> int:
        """RLIMIT_FSIZE: no single file may exceed the largest writable filesystem."""
        return max(self.scratch_mb * MiB, self.tmp_mb * MiB, self.shm_mb * MiB)

    def thread_env(self) -> dict[str, str]:
        n = str(self.threads)
        return {
            "OMP_NUM_THREADS": n,
            "OPENBLAS_NUM_THREADS": n,
            "MKL_NUM_THREADS": n,
            "TF_NUM_INTRAOP_THREADS": n,
            "TF_NUM_INTEROP_THREADS": n,
        }
