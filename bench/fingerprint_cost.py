"""What the budget inside fit (issue 17) adds to grading one HW5 submission, against the old path.

    python bench/fingerprint_cost.py [--repeats 3] [--skip-full]

In one process, on the real data (``HW5_MNIST_PATH``), under the fast budget (and the
full one, for the parts that scale with the data):

1. **Side by side:** the notebook's baseline training run (define_model(0.01), 10 epochs,
   batch 32, the test set as validation data) on the old path (the loader handed the
   notebook the budget's 1,000 / 500 rows; no recorder) and on the new one (the notebook
   holds the full 60,000 / 10,000 rows, as at home, and ``graders.checks.recorder``
   fingerprints them and trains on the budget's rows inside fit), interleaved
   ``--repeats`` times, so both arms see the same machine load. Prints the ratio of
   the medians, and the notebook's own preprocessing of the full data beside it.
2. **Parts:** the recorder's work per fit call (``recorder.plan_fit``), the full data's
   fingerprints (computed once per kernel and once per verifier), one training cell's
   comparison (``data_checks.describe_record``), and the export of one model's records
   (``export._fits_item`` into arrays, and ``np.savez``).
3. **Per submission:** 5 fit records + the budget's fingerprints twice (kernel, verifier)
   + 4 training cells compared twice (kernel, verifier) + 8 exports (each model is
   exported by its model and its training cell): the cost the issue bounds at 0.5 s.

Records the figures in ``bench/results/fingerprint-cost.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "source" / "hw5")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["NBGRADER_EXECUTION"] = "autograde"

import numpy as np  # noqa: E402

import hw5_data  # noqa: E402
from graders.checks import data_checks, export, recorder  # noqa: E402

RESULT = REPO / "bench" / "results" / "fingerprint-cost.json"


def timed(function, repeats: int = 5) -> float:
    """The median wall time of ``function()`` in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def notebook_data(budget_name: str):
    """x_train, y_train, x_test, y_test as the notebook's setup and data cells make them
    (``"full"``: the new path's, ``"fast"``: what the old loader handed out while grading)."""
    import keras

    (x_train_raw, y_train_raw), (x_test_raw, y_test_raw) = hw5_data.load_mnist(hw5_data.BUDGETS[budget_name])
    prepare = lambda images: images.reshape((images.shape[0], 28, 28, 1)).astype("float32") / 255.0
    return (
        prepare(x_train_raw),
        keras.utils.to_categorical(y_train_raw, 10),
        prepare(x_test_raw),
        keras.utils.to_categorical(y_test_raw, 10),
    )


def define_model(learning_rate):
    import keras
    from keras import layers

    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            layers.Conv2D(32, (3, 3), strides=(1, 1), padding="valid", activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(100, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def side_by_side(old_data, new_data, repeats: int) -> dict:
    """The baseline run's seconds on the old path (``without``: subset arrays, no recorder)
    and the new one (``with``: full arrays, the recorder under the fast budget), interleaved."""
    arms = {"without": [], "with": []}
    for _ in range(repeats):
        for arm in ("without", "with"):
            if arm == "with":
                recorder.install(hw5_data.BUDGETS["fast"])
                x_train, y_train, x_test, y_test = new_data
            else:
                recorder.uninstall()
                x_train, y_train, x_test, y_test = old_data
            model = define_model(0.01)
            start = time.perf_counter()
            model.fit(x_train, y_train, batch_size=32, epochs=10, validation_data=(x_test, y_test), verbose=0)
            arms[arm].append(time.perf_counter() - start)
    recorder.uninstall()
    assert int(model.optimizer.iterations.numpy()) == 10 * 32  # both arms train on the budget's rows
    without, with_ = statistics.median(arms["without"]), statistics.median(arms["with"])
    return {
        "without_s": round(without, 3),
        "with_s": round(with_, 3),
        "ratio": round(with_ / without, 4),
        "runs": {arm: [round(t, 3) for t in times] for arm, times in arms.items()},
    }


def parts(data, budget) -> dict:
    x_train, y_train, x_test, y_test = data
    arguments = {"x": x_train, "y": y_train, "validation_data": (x_test, y_test)}
    record = recorder.plan_fit(arguments, budget).record
    assert data_checks.describe_record(record, budget) is None

    def cold_fingerprints():
        data_checks.budget_fingerprints.cache_clear()
        recorder.budget_rows.cache_clear()
        recorder.budget_rows(budget)

    data_checks.budget_arrays(hw5_data.BUDGETS["full"])  # the loader's file read is shared with the test data

    class Model:  # a stand-in that holds one record, for the exporter
        pass

    model = Model()
    recorder.remember_fit(model, record)

    def export_one():
        writer = export._Writer()
        export._fits_item(model, "model", writer)
        np.savez(io.BytesIO(), **writer.arrays)

    result = {
        "fit_record_s": timed(lambda: recorder.plan_fit(arguments, budget)),
        "budget_fingerprints_s": timed(cold_fingerprints, 3),
        "compare_one_cell_s": timed(lambda: data_checks.describe_record(record, budget)),
        "export_one_model_s": timed(export_one),
    }
    result["per_submission_s"] = (
        5 * result["fit_record_s"]
        + 2 * result["budget_fingerprints_s"]
        + 8 * result["compare_one_cell_s"]
        + 8 * result["export_one_model_s"]
    )
    return {key: round(value, 4) for key, value in result.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-full", action="store_true", help="only the fast budget")
    args = parser.parse_args(argv)
    if not os.environ.get("HW5_MNIST_PATH"):
        parser.error("set HW5_MNIST_PATH to a local mnist.npz (nothing here downloads)")

    import keras

    keras.utils.set_random_seed(5)
    results = {
        "what": "budget inside fit (issue 17): old path (subset arrays) against the new "
        "(full arrays, recorder), and the recorder's parts",
        "cores": os.cpu_count(),
    }
    full = notebook_data("full")
    results["fast"] = {
        "side_by_side_baseline_run": side_by_side(notebook_data("fast"), full, args.repeats),
        "notebook_preprocessing_full_s": round(timed(lambda: notebook_data("full"), 3), 3),
        "parts": parts(full, hw5_data.BUDGETS["fast"]),
    }
    if not args.skip_full:
        results["full"] = {"parts": parts(full, hw5_data.BUDGETS["full"])}
    results["command"] = "python bench/fingerprint_cost.py" + (" " + " ".join(argv or sys.argv[1:])).rstrip()

    run = results["fast"]["side_by_side_baseline_run"]
    print(
        f"baseline run, fast budget: {run['without_s']:.2f} s on the old path, "
        f"{run['with_s']:.2f} s on the new one: ratio {run['ratio']:.3f}; the notebook's preprocessing "
        f"of the full data {results['fast']['notebook_preprocessing_full_s']:.2f} s"
    )
    for budget in ("fast", "full"):
        if budget in results:
            part = results[budget]["parts"]
            print(
                f"{budget}: fit_record {part['fit_record_s'] * 1000:.1f} ms, budget fingerprints "
                f"{part['budget_fingerprints_s'] * 1000:.1f} ms, one comparison "
                f"{part['compare_one_cell_s'] * 1000:.1f} ms, one export {part['export_one_model_s'] * 1000:.1f} ms"
                f" -> about {part['per_submission_s']:.3f} s per submission"
            )
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"recorded in {RESULT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
