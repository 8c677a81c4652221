"""The strict reader and the rebuild allowlists refuse tampered exports (ArtifactError)."""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest

from graders.verify import export_reader
from graders.verify.export_reader import ArtifactError, read_cell_exports
from graders.verify.rebuild import rebuild_model

DENSE = {
    "class_name": "Dense",
    "config": {"name": "dense", "units": 10, "activation": "softmax", "use_bias": True},
    "weights": ["m/layer1/0", "m/layer1/1"],
}
FLATTEN = {"class_name": "Flatten", "config": {"name": "flatten", "data_format": "channels_last"}, "weights": []}


def _model_item():
    return {
        "kind": "model",
        "model_class": "Sequential",
        "input_shape": [4, 4, 1],
        "layers": [json.loads(json.dumps(FLATTEN)), json.loads(json.dumps(DENSE))],
        "compile": {
            "optimizer": {
                "class_name": "SGD",
                "class_path": "keras.src.optimizers.sgd.SGD",
                "learning_rate": 0.01,
                "momentum": 0.0,
                "nesterov": False,
            },
            "loss": "categorical_crossentropy",
            "loss_class": None,
            "metrics": ["accuracy"],
        },
        "optimizer_state": None,
    }


def _arrays():
    return {"m/layer1/0": np.zeros((16, 10), "float32"), "m/layer1/1": np.zeros(10, "float32"), "grid": np.arange(4)}


def _write(folder, manifest=None, arrays=None):
    folder.mkdir(parents=True, exist_ok=True)
    manifest = manifest or {
        "format": export_reader.FORMAT,
        "grade_id": folder.name,
        "items": {
            "m": _model_item(),
            "answer": {"kind": "value", "value": "B", "tuple": False},
            "grid": {"kind": "array", "key": "grid", "dtype": "int64", "shape": [4]},
        },
        "calls": [],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    arrays = _arrays() if arrays is None else arrays
    with open(folder / "arrays.npz", "wb") as handle:
        np.savez(handle, **arrays)
    return manifest


@pytest.fixture
def cell(tmp_path):
    folder = tmp_path / "cell"
    _write(folder)
    return folder


def test_an_honest_export_reads_and_rebuilds(cell):
    exports = read_cell_exports(cell)
    assert exports["manifest"]["items"]["answer"]["value"] == "B"
    model = rebuild_model(exports["manifest"]["items"]["m"], exports["arrays"], "m")
    assert model.output_shape == (None, 10) and type(model.optimizer).__name__ == "SGD"


def _tamper_manifest(cell, change):
    manifest = json.loads((cell / "manifest.json").read_text())
    change(manifest)
    (cell / "manifest.json").write_text(json.dumps(manifest))


def test_a_layer_class_outside_the_allowlist_is_refused(cell):
    _tamper_manifest(
        cell,
        lambda m: m["items"]["m"]["layers"].insert(
            0, {"class_name": "Lambda", "config": {"function": "print"}, "weights": []}
        ),
    )
    exports = read_cell_exports(cell)
    with pytest.raises(ArtifactError, match="Lambda"):
        rebuild_model(exports["manifest"]["items"]["m"], exports["arrays"], "m")


def test_an_unknown_config_key_or_activation_is_refused(cell):
    _tamper_manifest(cell, lambda m: m["items"]["m"]["layers"][1]["config"].update(activation="os.system"))
    exports = read_cell_exports(cell)
    with pytest.raises(ArtifactError, match="activation"):
        rebuild_model(exports["manifest"]["items"]["m"], exports["arrays"], "m")
    _tamper_manifest(
        cell, lambda m: m["items"]["m"]["layers"][1]["config"].update(activation="relu", module="builtins")
    )
    exports = read_cell_exports(cell)
    with pytest.raises(ArtifactError, match="'module' is not allowed"):
        rebuild_model(exports["manifest"]["items"]["m"], exports["arrays"], "m")


def test_a_symlinked_manifest_is_refused(cell, tmp_path):
    (tmp_path / "elsewhere.json").write_text((cell / "manifest.json").read_text())
    os.remove(cell / "manifest.json")
    os.symlink(tmp_path / "elsewhere.json", cell / "manifest.json")
    with pytest.raises(ArtifactError, match="link"):
        read_cell_exports(cell)


def test_a_symlinked_folder_and_extra_files_are_refused(cell, tmp_path):
    os.symlink(cell, tmp_path / "linked")
    with pytest.raises(ArtifactError, match="cannot be opened"):
        read_cell_exports(tmp_path / "linked")
    (cell / "model.h5").write_bytes(b"x")
    with pytest.raises(ArtifactError, match="unexpected files"):
        read_cell_exports(cell)


def test_an_oversized_manifest_is_refused(cell):
    with open(cell / "manifest.json", "ab") as handle:
        handle.write(b" " * export_reader.MAX_MANIFEST_BYTES)
    with pytest.raises(ArtifactError, match="limit"):
        read_cell_exports(cell)


def test_a_truncated_npz_is_refused(cell):
    data = (cell / "arrays.npz").read_bytes()
    (cell / "arrays.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError):
        read_cell_exports(cell)


def test_a_zip_bomb_is_refused_before_it_is_inflated(cell):
    buffer = io.BytesIO()
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<i8", "fortran_order": False, "shape": (4,)})
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("grid.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            zeros = bytes(1 << 20)
            for _ in range(80):  # 80 MiB of zeros, about 80 KiB compressed
                member.write(zeros)
    (cell / "arrays.npz").write_bytes(buffer.getvalue())
    assert len(buffer.getvalue()) < 1 << 20
    _tamper_manifest(cell, lambda m: m["items"].pop("m"))
    with pytest.raises(ArtifactError, match="uncompressed"):
        read_cell_exports(cell)


@pytest.mark.parametrize("dtype", ["complex128", "object", "uint8"])
def test_a_dtype_outside_the_allowlist_is_refused(cell, dtype):
    arrays = _arrays()
    arrays["grid"] = np.array([1, 2, 3, 4], dtype=dtype)
    _write(cell, arrays=arrays)  # np.savez pickles the object array; the reader never unpickles
    with pytest.raises(ArtifactError, match="dtype"):
        read_cell_exports(cell)


def test_nan_in_a_shape_is_refused(cell):
    text = (cell / "manifest.json").read_text().replace('"input_shape": [4, 4, 1]', '"input_shape": [NaN, 4, 1]')
    (cell / "manifest.json").write_text(text)
    with pytest.raises(ArtifactError, match="input_shape"):
        read_cell_exports(cell)


def test_nan_in_history_values_is_allowed_but_not_in_learning_rates(cell):
    history = {
        "kind": "history",
        "history": {"loss": [float("nan")]},
        "params": {"epochs": 1, "steps": 1},
        "epoch": [0],
        "model": None,
    }
    _tamper_manifest(cell, lambda m: m["items"].update(history=history))
    assert np.isnan(read_cell_exports(cell)["manifest"]["items"]["history"]["history"]["loss"][0])
    _tamper_manifest(cell, lambda m: m["items"]["m"]["compile"]["optimizer"].update(learning_rate=float("inf")))
    with pytest.raises(ArtifactError, match="finite"):
        read_cell_exports(cell)


def test_deep_json_nesting_is_refused(cell):
    deep = "[" * 100_000 + "]" * 100_000
    text = (cell / "manifest.json").read_text().replace('"value": "B"', f'"value": {deep}')
    (cell / "manifest.json").write_text(text)
    with pytest.raises(ArtifactError, match="nested deeper"):
        read_cell_exports(cell)


def test_a_huge_declared_shape_is_refused(cell):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key, value in _arrays().items():
            with archive.open(key + ".npy", "w") as member:
                shape = (100_000, 100_000) if key == "grid" else value.shape
                np.lib.format.write_array_header_1_0(
                    member, {"descr": np.lib.format.dtype_to_descr(value.dtype), "fortran_order": False, "shape": shape}
                )
                member.write(value.tobytes())
    (cell / "arrays.npz").write_bytes(buffer.getvalue())
    with pytest.raises(ArtifactError, match="too large"):
        read_cell_exports(cell)
    _write(cell)
    _tamper_manifest(cell, lambda m: m["items"]["grid"].update(shape=[10**9]))
    with pytest.raises(ArtifactError, match="shape"):
        read_cell_exports(cell)


def test_an_npz_member_the_manifest_does_not_name_is_refused(cell):
    _write(cell, arrays={**_arrays(), "extra": np.zeros(2)})
    with pytest.raises(ArtifactError, match="does not name"):
        read_cell_exports(cell)


def test_weights_of_the_wrong_shape_are_refused(cell):
    _write(cell, arrays={**_arrays(), "m/layer1/0": np.zeros((15, 10), "float32")})
    exports = read_cell_exports(cell)
    with pytest.raises(ArtifactError, match="shape"):
        rebuild_model(exports["manifest"]["items"]["m"], exports["arrays"], "m")


def test_duplicate_keys_and_unknown_item_fields_are_refused(cell):
    text = (cell / "manifest.json").read_text()
    (cell / "manifest.json").write_text(text.replace('"calls": []', '"calls": [], "calls": []'))
    with pytest.raises(ArtifactError, match="repeats"):
        read_cell_exports(cell)
    _write(cell)
    _tamper_manifest(cell, lambda m: m["items"]["answer"].update(code="import os"))
    with pytest.raises(ArtifactError, match="keys"):
        read_cell_exports(cell)
