"""Calibrate the training checks' thresholds: reference runs against near-miss mutants, over seeds.

    python -m graders.authoring.calibrate --budget fast --seeds 1 2 3 4 5 [--write-thresholds]

For each seed, it trains every reference run on the budget's data, in-process, as
the notebook does (SGD, batch 32, 10 epochs, test set as validation). It also trains
the mistakes that leave a model's structure right, since only those can reach the
accuracy floor (a model with the wrong structure is failed by the structure checks,
and the floor is not applied to it):
- ``shuffled-labels``: trained on labels in random order;
- ``unscaled-inputs``: trained on pixel values 0..255 instead of 0..1;
- ``untrained``: compiled, never fitted.

It also measures the history-agreement check: the gap between the recomputed test
accuracy and the history's last ``val_accuracy``, for the reference and for
``validation-on-training-data`` (the momentum model validated on its own training set).

It writes ``calibration/calibration.json`` (every measurement) and
``calibration/report.md`` (the table: reference min and median, best mutant,
threshold, margins). With ``--write-thresholds`` it also updates
``graders/checks/thresholds.json`` for that budget.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from graders.authoring import reference  # noqa: E402
from graders.checks.expected_data import THRESHOLDS_PATH  # noqa: E402
from graders.course import COURSE_ROOT  # noqa: E402
from graders.course import hw5_data as course_loader

CALIBRATION_DIR = COURSE_ROOT / "calibration"
#: Runs that get an accuracy floor; the two learning-rate runs learn (almost) nothing by design.
FLOOR_RUNS = ("baseline", "momentum", "two_conv")
#: Mistakes the floor is set against (a real gap separates them from the reference) ...
FLOOR_MUTANTS = ("shuffled-labels", "untrained")
#: ... and near misses that are measured and reported, but that no floor can separate.
NEAR_MISSES = ("unscaled-inputs",)


def _accuracy(model, x_test, labels) -> float:
    """As the check computes it: predict, Keras's arg-max, compare."""
    import keras

    probabilities = np.asarray(model.predict(x_test, batch_size=500, verbose=0), dtype="float32")
    predicted = np.asarray(keras.ops.convert_to_numpy(keras.ops.argmax(probabilities, axis=-1)))
    return float(np.mean(predicted == labels))


def _train(run: str, seed: int, data, variant: str = "reference") -> dict:
    import keras

    x_train, y_train, x_test, y_test, labels = data
    keras.utils.set_random_seed(seed)
    model = reference.build_run(run)
    started = time.perf_counter()
    validation = (x_test, y_test)
    if variant == "shuffled-labels":
        y_train = np.random.default_rng(seed).permutation(y_train)
    elif variant == "unscaled-inputs":
        x_train, validation = x_train * 255.0, (x_test * 255.0, y_test)
    elif variant == "validation-on-training-data":
        validation = (x_train, y_train)
    history = None
    if variant != "untrained":
        history = model.fit(
            x_train,
            y_train,
            batch_size=reference.BATCH_SIZE,
            epochs=reference.EPOCHS,
            validation_data=validation,
            verbose=0,
        )
    accuracy = _accuracy(model, x_test, labels)
    last_validation = history.history["val_accuracy"][-1] if history else None
    return {
        "run": run,
        "seed": seed,
        "variant": variant,
        "test_accuracy": accuracy,
        "last_val_accuracy": last_validation,
        "agreement_gap": None if last_validation is None else abs(accuracy - last_validation),
        "train_accuracy": history.history["accuracy"][-1] if history else None,
        "seconds": round(time.perf_counter() - started, 2),
    }


def measure(budget_name: str, seeds: list[int], runs=None, mutants: bool = True) -> list[dict]:
    hw5_data = course_loader()
    budget = hw5_data.BUDGETS[budget_name]
    (x_train, y_train), (x_test, y_test) = hw5_data.load_mnist(budget)
    data = (*hw5_data.preprocess(x_train, y_train), *hw5_data.preprocess(x_test, y_test), np.asarray(y_test, dtype=int))
    records = []
    for seed in seeds:
        for run in runs or reference.RUNS:
            variants = ["reference"]
            if mutants and run in FLOOR_RUNS:
                variants += list(FLOOR_MUTANTS + NEAR_MISSES)
            if mutants and run == "momentum":
                variants.append("validation-on-training-data")
            for variant in variants:
                record = _train(run, seed, data, variant)
                record["budget"] = budget_name
                records.append(record)
                print(json.dumps(record), flush=True)
    return records


def _floor(reference_min: float, best_mutant: float) -> float:
    """The middle of the gap, rounded down to 0.01."""
    return float(np.floor((reference_min + best_mutant) / 2 * 100) / 100)


def summarize(records: list[dict]) -> dict:
    """Per run: reference min/median, best mutant, threshold and margins; and the agreement tolerance."""
    summary = {"floors": {}, "agreement": None}
    for run in dict.fromkeys(r["run"] for r in records):
        ours = [r["test_accuracy"] for r in records if r["run"] == run and r["variant"] == "reference"]
        theirs = [
            (r["test_accuracy"], r["variant"]) for r in records if r["run"] == run and r["variant"] in FLOOR_MUTANTS
        ]
        entry = {"seeds": len(ours), "reference_min": min(ours), "reference_median": statistics.median(ours)}
        near = [(r["test_accuracy"], r["variant"]) for r in records if r["run"] == run and r["variant"] in NEAR_MISSES]
        if run in FLOOR_RUNS and theirs:
            best, which = max(theirs)
            threshold = _floor(min(ours), best)
            entry.update(
                best_mutant=best,
                best_mutant_variant=which,
                threshold=threshold,
                margin_below_reference=round(min(ours) - threshold, 4),
                margin_above_mutant=round(threshold - best, 4),
                gap=min(ours) > best,
            )
            if near:
                caught = sum(accuracy < threshold for accuracy, _ in near)
                entry.update(
                    near_miss=near[0][1],
                    near_miss_max=max(a for a, _ in near),
                    near_miss_caught=f"{caught}/{len(near)}",
                )
        else:
            entry.update(
                threshold=None,
                note="no floor: learns (almost) nothing by design; structure, update count and history agreement apply",
            )
        summary["floors"][run] = entry
    gaps = [r["agreement_gap"] for r in records if r["variant"] == "reference" and r["agreement_gap"] is not None]
    cheats = [r["agreement_gap"] for r in records if r["variant"] == "validation-on-training-data"]
    if gaps and cheats:
        tolerance = float(np.floor((max(gaps) + min(cheats)) / 2 * 1000) / 1000)
        summary["agreement"] = {
            "reference_max_gap": max(gaps),
            "mutant_min_gap": min(cheats),
            "tolerance": tolerance,
            "margin_above_reference": round(tolerance - max(gaps), 4),
            "margin_below_mutant": round(min(cheats) - tolerance, 4),
            "gap": max(gaps) < min(cheats),
        }
    return summary


def render_report(budget_name: str, summary: dict, records: list[dict]) -> str:
    lines = [
        f"# Calibration: budget `{budget_name}`",
        "",
        f"Generated by `python -m graders.authoring.calibrate --budget {budget_name}`; "
        f"{len(records)} trainings. Accuracies are test accuracies recomputed from the model.",
        "",
        "| test (run) | seeds | reference min | reference median | best mutant | threshold | margin below reference | margin above mutant |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run, entry in summary["floors"].items():
        if entry.get("threshold") is None:
            lines.append(
                f"| training ({run}) | {entry['seeds']} | {entry['reference_min']:.4f} | "
                f"{entry['reference_median']:.4f} | - | none | - | - |"
            )
        else:
            lines.append(
                f"| training ({run}) | {entry['seeds']} | {entry['reference_min']:.4f} | "
                f"{entry['reference_median']:.4f} | {entry['best_mutant']:.4f} ({entry['best_mutant_variant']}) | "
                f"{entry['threshold']:.2f} | {entry['margin_below_reference']:+.4f} | {entry['margin_above_mutant']:+.4f} |"
            )
    agreement = summary.get("agreement")
    if agreement:
        lines += [
            "",
            "History agreement (|recomputed test accuracy - last val_accuracy|):",
            "",
            "| reference max gap | best mutant (validation on training data), min gap | tolerance | margins |",
            "| --- | --- | --- | --- |",
            f"| {agreement['reference_max_gap']:.4f} | {agreement['mutant_min_gap']:.4f} | "
            f"{agreement['tolerance']:.3f} | {agreement['margin_above_reference']:+.4f} / {agreement['margin_below_mutant']:+.4f} |",
        ]
    near = [(run, e) for run, e in summary["floors"].items() if e.get("near_miss")]
    if near:
        lines += [
            "",
            "Near misses, measured but not separable by any floor (reported, not used for thresholds):",
            "",
            "| run | near miss | its best accuracy | caught by the floor |",
            "| --- | --- | --- | --- |",
        ]
        lines += [
            f"| {run} | {e['near_miss']} | {e['near_miss_max']:.4f} | {e['near_miss_caught']} seeds |"
            for run, e in near
        ]
    lines += [
        "",
        "Runs without a floor are checked by structure, the SGD update count and history agreement;",
        "a model with the wrong structure is failed by the structure checks and never meets a floor.",
        "",
    ]
    return "\n".join(lines)


def write_thresholds(budget_name: str, summary: dict) -> None:
    thresholds = json.loads(THRESHOLDS_PATH.read_text())
    for run, entry in summary["floors"].items():
        thresholds["budgets"][budget_name][run] = {"min_test_accuracy": entry.get("threshold")}
    if summary.get("agreement") and budget_name == "fast":
        thresholds["history_agreement"] = summary["agreement"]["tolerance"]
    THRESHOLDS_PATH.write_text(json.dumps(thresholds, indent=2) + "\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The calibration's options, which ``hw5 calibrate`` shares."""
    parser.add_argument("--budget", default="fast", choices=("fast", "full"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--runs", nargs="+", choices=sorted(reference.RUNS))
    parser.add_argument("--no-mutants", action="store_true", help="reference runs only")
    parser.add_argument("--write-thresholds", action="store_true")
    parser.add_argument(
        "--resummarize",
        action="store_true",
        help="recompute the report from the committed measurements, without training",
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m graders.authoring.calibrate", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    if args.resummarize:
        saved = json.loads((CALIBRATION_DIR / f"calibration-{args.budget}.json").read_text())
        records, args.seeds = saved["records"], saved["seeds"]
    else:
        records = measure(args.budget, args.seeds, args.runs, mutants=not args.no_mutants)
    summary = summarize(records)
    CALIBRATION_DIR.mkdir(exist_ok=True)
    (CALIBRATION_DIR / f"calibration-{args.budget}.json").write_text(
        json.dumps({"budget": args.budget, "seeds": args.seeds, "summary": summary, "records": records}, indent=2)
        + "\n"
    )
    report = render_report(args.budget, summary, records)
    (CALIBRATION_DIR / f"report-{args.budget}.md").write_text(report)
    print(report)
    if args.write_thresholds:
        write_thresholds(args.budget, summary)
        print(f"updated {THRESHOLDS_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
