"""Read a student's submission as hostile input, and repair what nbgrader would choke on.

Nothing here runs student code. For each notebook the assignment expects:
- a missing notebook is looked for under another name (a renamed copy is adopted when
  its grade_ids are the expected notebook's);
- a file that is too large, not JSON, or not a notebook is reported, not parsed further;
- a copy-pasted graded cell (duplicate grade_id) keeps its first occurrence, and later
  copies lose their nbgrader metadata (nbgrader would abort the whole batch);
- an empty ``nbgrader: {}`` block is dropped (same reason);
- a cell whose grade_id the source does not have (an edited grade_id) loses its nbgrader
  metadata, so the original cell comes back (``add_missing_cells``) instead of nbgrader
  failing the notebook with a bare ``KeyError``;
- a notebook without cells is reported (nbgrader cannot re-add the solution cell).
Every repair is reported, so an instructor can review it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from graders.sandbox.hostfs import read_capped

#: A notebook larger than this is not read (a released notebook is ~50 kB).
MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024


@dataclass
class Intake:
    """What was made of one student's submission."""

    notebooks: dict[str, nbformat.NotebookNode] = field(default_factory=dict)  # expected name -> node
    errors: list[str] = field(default_factory=list)  # a notebook could not be used: zero for it
    repairs: list[str] = field(default_factory=list)  # used, after a repair worth reviewing

    @property
    def ok(self) -> bool:
        return not self.errors


def parse_notebook(path: Path) -> nbformat.NotebookNode:
    """Parse and schema-check a notebook; ValueError with a short reason otherwise."""
    try:  # no symlink followed, nothing over the cap read
        data = read_capped(str(path), MAX_NOTEBOOK_BYTES)
    except OverflowError:
        raise ValueError(f"is larger than {MAX_NOTEBOOK_BYTES // 2**20} MiB") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot be read ({getattr(error, 'strerror', None) or error})") from None
    if data is None:
        raise ValueError("cannot be read (it does not exist)")
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"is not valid JSON ({error})") from None
    except RecursionError:  # "[[[[...": deeper than Python's parser goes
        raise ValueError("is JSON nested too deeply to be a notebook") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list) or raw.get("nbformat") != 4:
        raise ValueError("is valid JSON but not an nbformat 4 notebook")
    try:
        notebook = nbformat.reads(json.dumps(raw), as_version=4)
        nbformat.validate(notebook)
    except Exception as error:  # nbformat raises several types for bad structure
        raise ValueError(f"is not a valid notebook ({type(error).__name__}: {str(error)[:200]})") from None
    return notebook


def _grade_ids(notebook) -> set[str]:
    ids = set()
    for cell in notebook.cells:
        meta = cell.get("metadata", {}).get("nbgrader")
        if isinstance(meta, dict) and isinstance(meta.get("grade_id"), str):
            ids.add(meta["grade_id"])
    return ids


def repair(notebook, name: str, known_ids: set[str] | None = None) -> list[str]:
    """Drop duplicate grade_ids (keeping the first), empty nbgrader blocks and, when
    ``known_ids`` is given, grade_ids the source does not have; in place."""
    repairs, seen = [], set()
    for index, cell in enumerate(notebook.cells):
        metadata = cell.get("metadata", {})
        if "nbgrader" not in metadata:
            continue
        meta = metadata["nbgrader"]
        if not isinstance(meta, dict) or not meta:
            del metadata["nbgrader"]
            repairs.append(f"{name}: cell {index} had empty nbgrader metadata; treated as a plain cell")
            continue
        grade_id = meta.get("grade_id")
        if grade_id is not None and not isinstance(grade_id, str):
            del metadata["nbgrader"]
            repairs.append(
                f"{name}: cell {index} has a grade_id that is not a string ({json.dumps(grade_id, default=str)[:60]}); "
                "treated as a plain cell, the original cell is put back"
            )
            continue
        if grade_id in seen:
            del metadata["nbgrader"]
            repairs.append(
                f"{name}: cell {index} repeats grade_id {grade_id!r} (a copied cell); the copy is "
                "treated as a plain cell"
            )
            continue
        if known_ids and grade_id is not None and grade_id not in known_ids:
            del metadata["nbgrader"]
            repairs.append(
                f"{name}: cell {index} has grade_id {grade_id!r}, which the assignment does not "
                "have (edited?); treated as a plain cell, the original cell is put back"
            )
            continue
        if grade_id is not None:
            seen.add(grade_id)
    return repairs


def read_submission(folder: Path, expected: dict[str, set[str]]) -> Intake:
    """Read ``folder`` (``submitted/<student>/<assignment>``) for the ``expected`` notebooks.

    ``expected``: notebook file name -> the grade_ids of its source (used to recognise a
    renamed copy). Files other than these notebooks are ignored: nbgrader replaces
    support files with the source versions, and nothing else is ever executed.
    """
    intake = Intake()
    if not folder.is_dir():
        intake.errors.append(f"no submission folder {folder}")
        return intake
    present = {p.name: p for p in folder.iterdir() if p.suffix == ".ipynb" and not p.name.startswith(".")}
    strays = {name: path for name, path in present.items() if name not in expected}
    for name, ids in expected.items():
        path = present.get(name)
        if path is None:
            path = _find_renamed(strays, ids)
            if path is None:
                intake.errors.append(f"{name} is missing (found: {sorted(present) or 'no notebooks'})")
                continue
            intake.repairs.append(f"{name} was submitted as {path.name}; graded as {name}")
            strays.pop(path.name)
        try:
            notebook = parse_notebook(path)
        except ValueError as reason:
            intake.errors.append(f"{path.name} {reason}")
            continue
        if not notebook.cells:
            intake.errors.append(f"{path.name} has no cells")
            continue
        intake.repairs += repair(notebook, name, ids)
        intake.notebooks[name] = notebook
    return intake


def _find_renamed(strays: dict[str, Path], ids: set[str]) -> Path | None:
    """The one stray notebook that carries at least half of the expected grade_ids."""
    matches = []
    for path in strays.values():
        try:
            found = _grade_ids(parse_notebook(path))
        except ValueError:
            continue
        if ids and len(found & ids) * 2 >= len(ids):
            matches.append(path)
    return matches[0] if len(matches) == 1 else None


#: Code that in-kernel tests cannot defend against (the kernel is the student's): its
#: presence does not change a grade, but the submission is flagged for an instructor.
_SUSPICIOUS = {
    "rewrites later cells": r"input_transformers|ast_transformers|register_magic|events\.register",
    "replaces modules or builtins": r"sys\.modules|\bbuiltins\b|__builtins__|importlib|meta_path",
    "patches the grading, the data or Keras": (
        r"\bgraders\b|hw5_data\.\w+\s*=[^=]|\.(evaluate|predict|fit)\s*=[^=]|History\("
        r"|\.history\[[^\]]*\]\s*=[^=]|__eq__|np\.testing\.\w+\s*=[^=]|iterations\.assign"
    ),
    "changes how results are displayed": r"displayhook|ast_node_interactivity|showtraceback|set_custom_exc",
    "reaches outside the notebook": (
        r"subprocess|os\.system|\bsocket\b|urllib|\brequests\b|ctypes|os\.kill|\bsignal\.|open\(\s*['\"]/"
    ),
}


def suspicious_code(notebook, name: str) -> list[str]:
    """Review flags for student-editable cells whose code matches a known tampering pattern."""
    flags = []
    for index, cell in enumerate(notebook.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") != "code" or meta.get("locked"):
            continue  # locked cells are restored from the gradebook before running
        for what, pattern in _SUSPICIOUS.items():
            hits = sorted({match.group(0).strip() for match in re.finditer(pattern, cell.source)})
            if hits:
                flags.append(f"{name}: cell {index} {what} ({', '.join(hits)})")
    return flags
