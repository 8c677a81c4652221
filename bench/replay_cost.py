"""Issue 17, item 3, chosen by measurement: what replaying one epoch of each graded training
out of kernel would cost, on the fast budget, in one process.

    python bench/replay_cost.py [--reps 3] [--record]

The design measured: the recorder owns the data order (each epoch's batches drawn from a
permutation ``default_rng([seed, epoch])``, fed to Keras as one ``tf.data`` pipeline with
``steps_per_epoch``, so that Keras's own shuffle is off) and keeps each epoch's starting
weights and optimizer variables; after the kernel is dead, the verifier replays one epoch
from its starting state on its own data and compares the result with the next epoch's
starting state. For each of the five trainings of a grading (baseline, TODO 1, 2, 4, 6):

1. the training, Keras's own way (``shuffle=True``) and the recorder's way (owned order and
   the snapshots), alternating, median of ``--reps``: the kernel's added cost;
2. the snapshots' size, and the seconds to write them as one uncompressed ``.npz`` (as an
   export would, in ``/dev/shm``: the sandbox's scratch is a tmpfs) and to read them back
   (as the verifier would);
3. the replay of the middle epoch, two ways: eagerly (``run_eagerly=True``: nothing traced)
   and compiled (Keras's traced train step), each on a fresh model: its seconds, and the
   gap between the replayed weights and the next snapshot, relative to the epoch's update
   (0 for an exact replay; a forged chain is about 1);
4. the same replay started from a forged snapshot (the next epoch's weights copied back):
   its gap, which a check must refuse.

It prints a table and the per-submission totals against the five trainings, and with
``--record`` adds the run to ``bench/results/replay-cost.json``. These machines are noisy:
compare the columns of one run, never runs of different days.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.records import append_run, provenance  # noqa: E402
from graders.authoring import reference  # noqa: E402
from graders.course import hw5_data as course_loader  # noqa: E402

RESULTS = REPO / "bench" / "results" / "replay-cost.json"
TRAINING_RUNS = ("baseline", "eta_large", "eta_small", "momentum", "two_conv")
ORDER_SEED = 2027


def epoch_orders(rows: int, epochs: int, seed: int = ORDER_SEED) -> list[np.ndarray]:
    """Each epoch's order of ``rows`` rows: a permutation from ``default_rng([seed, epoch])``."""
    return [np.random.default_rng([seed, epoch]).permutation(rows) for epoch in range(epochs)]


def ordered_batches(x: np.ndarray, y: np.ndarray, batch_size: int, orders: list[np.ndarray]):
    """One ``tf.data`` pipeline of every epoch's batches, in ``orders``' order (the last batch
    of an epoch may be short): with ``steps_per_epoch``, Keras keeps one iterator across epochs."""
    images, labels = tf.constant(x), tf.constant(y)
    dataset = None
    for order in orders:
        epoch = tf.data.Dataset.from_tensor_slices(order.astype(np.int64)).batch(batch_size)
        dataset = epoch if dataset is None else dataset.concatenate(epoch)
    return dataset.map(lambda rows: (tf.gather(images, rows), tf.gather(labels, rows)))


class Snapshots(keras.callbacks.Callback):
    """Each epoch's starting state, and the end's: weights and optimizer variables."""

    def __init__(self) -> None:
        super().__init__()
        self.states: list[dict] = []

    def _keep(self) -> None:
        optimizer = self.model.optimizer
        variables = [keras.ops.convert_to_numpy(v) for v in optimizer.variables] if optimizer.built else None
        self.states.append({"weights": [np.array(w) for w in self.model.get_weights()], "optimizer": variables})

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._keep()

    def on_train_end(self, logs=None) -> None:
        self._keep()


def nbytes(state: dict) -> int:
    return sum(a.nbytes for a in state["weights"]) + sum(a.nbytes for a in state["optimizer"] or ())


def export_round_trip(states: list[dict]) -> tuple[float, float]:
    """Seconds to write ``states`` as one uncompressed ``.npz`` on a tmpfs, and to read them."""
    arrays = {}
    for index, state in enumerate(states):
        for kind in ("weights", "optimizer"):
            for position, array in enumerate(state[kind] or ()):
                arrays[f"{index}-{kind}-{position}"] = array
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as folder:
        path = os.path.join(folder, "snapshots.npz")
        started = time.perf_counter()
        np.savez(path, **arrays)
        written = time.perf_counter() - started
        with np.load(path, allow_pickle=False) as archive:
            read = {name: archive[name] for name in archive.files}
        assert len(read) == len(arrays)
        return written, time.perf_counter() - started - written


def train_keras_way(run: str, data) -> float:
    (x, y), (xt, yt) = data
    keras.utils.set_random_seed(5)
    model = reference.build_run(run)
    started = time.perf_counter()
    reference.train(model, x, y, xt, yt)
    return time.perf_counter() - started


def train_recorded(run: str, data) -> tuple[float, Snapshots, list[np.ndarray]]:
    (x, y), (xt, yt) = data
    keras.utils.set_random_seed(5)
    model = reference.build_run(run)
    started = time.perf_counter()
    orders = epoch_orders(len(x), reference.EPOCHS)
    snapshots = Snapshots()
    model.fit(
        ordered_batches(x, y, reference.BATCH_SIZE, orders),
        epochs=reference.EPOCHS,
        steps_per_epoch=-(-len(x) // reference.BATCH_SIZE),
        validation_data=(xt, yt),
        shuffle=False,  # the order is the pipeline's
        callbacks=[snapshots],
        verbose=0,
    )
    return time.perf_counter() - started, snapshots, orders


def replay(run: str, x, y, order, start: dict, *, eager: bool) -> tuple[float, list[np.ndarray]]:
    """One epoch from ``start`` on a fresh model of ``run``'s architecture and optimizer."""
    started = time.perf_counter()
    model = reference.build_run(run)
    model.compile(optimizer=model.optimizer, loss=model.loss, run_eagerly=eager)
    model.set_weights(start["weights"])
    model.optimizer.build(model.trainable_variables)
    if start["optimizer"] is not None:
        for variable, value in zip(model.optimizer.variables, start["optimizer"]):
            variable.assign(value)
    for first in range(0, len(order), reference.BATCH_SIZE):
        rows = order[first : first + reference.BATCH_SIZE]
        model.train_on_batch(x[rows], y[rows])
    return time.perf_counter() - started, model.get_weights()


def relative_gap(replayed, start, wanted) -> float:
    """The replay's distance from the next snapshot over the epoch's own update."""
    off = np.sqrt(sum(float(np.sum((r - w) ** 2)) for r, w in zip(replayed, wanted)))
    step = np.sqrt(sum(float(np.sum((w - s) ** 2)) for s, w in zip(start, wanted)))
    return off / step if step else float("inf")


def measure(run: str, data, reps: int) -> dict:
    plain, recorded = [], []
    for _ in range(reps):  # alternating: a noisy minute weighs on both sides
        plain.append(train_keras_way(run, data))
        seconds, snapshots, orders = train_recorded(run, data)
        recorded.append(seconds)
    (x, y), _ = data
    epoch = reference.EPOCHS // 2
    start, wanted = snapshots.states[epoch], snapshots.states[epoch + 1]
    row = {
        "run": run,
        "train_keras_s": round(statistics.median(plain), 2),
        "train_recorded_s": round(statistics.median(recorded), 2),
        "snapshot_mb": round(sum(nbytes(state) for state in snapshots.states) / 2**20, 1),
    }
    row["export_write_s"], row["export_read_s"] = (round(value, 2) for value in export_round_trip(snapshots.states))
    for way, eager in (("eager", True), ("compiled", False)):
        seconds, weights = replay(run, x, y, orders[epoch], start, eager=eager)
        row[f"replay_{way}_s"] = round(seconds, 2)
        row[f"replay_{way}_gap"] = float(f"{relative_gap(weights, start['weights'], wanted['weights']):.2e}")
    forged = {"weights": wanted["weights"], "optimizer": start["optimizer"]}
    _, weights = replay(run, x, y, orders[epoch], forged, eager=True)
    row["forged_gap"] = float(f"{relative_gap(weights, start['weights'], wanted['weights']):.2e}")
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="trainings per way and run, for each median")
    parser.add_argument("--record", action="store_true", help=f"add this run to {RESULTS.relative_to(REPO)}")
    args = parser.parse_args(argv)

    hw5_data = course_loader()
    (x, y), (xt, yt) = hw5_data.load_mnist(hw5_data.BUDGETS["fast"])
    data = (hw5_data.preprocess(x, y), hw5_data.preprocess(xt, yt))
    tf.config.experimental.enable_op_determinism()
    rows = [measure(run, data, args.reps) for run in TRAINING_RUNS]

    columns = list(rows[0])
    print(" ".join(f"{name:>18}" for name in columns))
    for row in rows:
        print(" ".join(f"{row[name]!s:>18}" for name in columns))
    total = {name: round(sum(row[name] for row in rows), 2) for name in columns[1:] if name.endswith(("_s", "_mb"))}
    floor = total["train_keras_s"]
    print(
        f"per submission: trainings {floor} s Keras's way, {total['train_recorded_s']} s recorded "
        f"({100 * (total['train_recorded_s'] / floor - 1):+.0f} %); snapshots {total['snapshot_mb']} MB "
        f"(written {total['export_write_s']} s, read {total['export_read_s']} s); "
        f"replay of one epoch each: eager {total['replay_eager_s']} s ({100 * total['replay_eager_s'] / floor:.0f} % "
        f"of the trainings), compiled {total['replay_compiled_s']} s ({100 * total['replay_compiled_s'] / floor:.0f} %)"
    )
    if args.record:
        append_run(RESULTS, {**provenance(), "reps": args.reps, "runs": rows, "per_submission": total})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
