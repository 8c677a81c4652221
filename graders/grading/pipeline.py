"""nbgrader's autograde in two halves, so that student code never runs in the orchestrator.

:func:`sanitize` is nbgrader's first pass (restore locked cells and hidden tests from the
gradebook, read-only); :class:`PrecomputedExecute` stands in for nbgrader's ``Execute`` in
its second pass (score and save), taking the outputs a worker's sandbox produced instead
of running anything.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearOutput,
    DeduplicateIds,
    IgnorePattern,
    LimitOutput,
    NbGraderPreprocessor,
    OverwriteCells,
    OverwriteKernelspec,
    SaveAutoGrades,
)
from traitlets import Unicode

from graders.sandbox.outputs import NOT_GRADED_ENAME, error_output

SANITIZE = (ClearOutput, DeduplicateIds, OverwriteKernelspec, OverwriteCells, CheckCellMetadata)
#: File name of the executed notebooks under the results directory.
EXECUTED_SUFFIX = ".executed.ipynb"


def sanitize(notebook, *, config, db_url: str, assignment: str, notebook_id: str, student: str):
    """nbgrader's sanitize pass, in-process, on a copy: the notebook the kernel will run."""
    resources = {"nbgrader": {"db_url": db_url, "assignment": assignment, "notebook": notebook_id, "student": student}}
    notebook = copy.deepcopy(notebook)
    for preprocessor in SANITIZE:
        notebook, resources = preprocessor(config=config).preprocess(notebook, resources)
    return notebook


def executed_path(results_dir: Path, student: str, notebook_id: str) -> Path:
    return Path(results_dir) / student / f"{notebook_id}{EXECUTED_SUFFIX}"


class PrecomputedExecute(NbGraderPreprocessor):
    """Stand-in for nbgrader's ``Execute``: copy outputs from the worker's executed notebook.

    The executed notebook is untrusted (it came out of the sandbox): only outputs and
    execution counts are taken, and only if every cell's type and source equal the
    notebook nbgrader just sanitized. Otherwise, or if there is none, every code cell
    gets an error output, so each test cell scores zero ("zero for what did not run").
    """

    results_directory = Unicode("", help="Where workers' executed notebooks are staged").tag(config=True)

    def preprocess(self, nb, resources):
        student = resources["nbgrader"]["student"]
        notebook_id = resources["nbgrader"]["notebook"]
        path = executed_path(Path(self.results_directory), student, notebook_id)
        reason = None
        if not path.is_file():
            reason = "the notebook was not executed (see the grading report)"
        else:
            try:
                executed = nbformat.read(path, as_version=4)
                _copy_outputs(executed, nb)
            except (ValueError, KeyError, nbformat.reader.NotJSONError) as error:
                reason = f"the executed notebook did not match the submission ({error})"
        if reason:
            for cell in nb.cells:
                if cell.cell_type == "code":
                    cell.outputs = [error_output(NOT_GRADED_ENAME, reason)]
                    cell.execution_count = None
        return nb, resources


def _copy_outputs(executed, target) -> None:
    if len(executed.cells) != len(target.cells):
        raise ValueError("different number of cells")
    for index, (theirs, mine) in enumerate(zip(executed.cells, target.cells)):
        if theirs.cell_type != mine.cell_type or theirs.source != mine.source:
            raise ValueError(f"cell {index} differs")
    for theirs, mine in zip(executed.cells, target.cells):
        if mine.cell_type == "code":
            outputs = theirs.get("outputs", [])
            if mine.get("metadata", {}).get("nbgrader", {}).get("grade"):
                outputs = _graded_cell_outputs(outputs)
            mine.outputs = outputs
            mine.execution_count = theirs.get("execution_count")


def _graded_cell_outputs(outputs: list) -> list:
    """A test cell's outputs as scored here: a test fails by raising (an error output).

    - A displayed value is dropped: nbgrader would read it as the cell's score, and our
      test cells end in statements, so any such value was injected.
    - stderr becomes stdout: nbgrader zeroes a cell with any stderr, but a correct
      solution that logs or warns has not failed a test. The text is kept, visibly.
    """
    kept = []
    for output in outputs:
        if output.get("output_type") == "execute_result":
            continue
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            output = nbformat.v4.new_output("stream", name="stdout", text="[stderr] " + output.get("text", ""))
        kept.append(output)
    return kept


#: nbgrader's default autograde preprocessors with Execute replaced.
AUTOGRADE = [
    PrecomputedExecute,
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadata,
]
