"""The committed student release: current, and free of anything secret."""

from __future__ import annotations

import re

import nbformat

from graders.authoring.release import check_release, differences
from graders.course import NOTEBOOKS, release_dir, source_dir

_SOLUTION_REGION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)
_HIDDEN_REGION = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)
#: Lines shorter than this (")", "return model") are too generic to count as a leak.
_MIN_SECRET_LENGTH = 16


def _secret_and_public_lines() -> tuple[set[str], str]:
    """Lines only instructors may see, and the text that students see anyway (the
    task prose quotes some solution lines, e.g. ``model_eta_large = define_model(1)``)."""
    secret, public = set(), []
    for name in NOTEBOOKS:
        for cell in nbformat.read(source_dir() / name, as_version=4).cells:
            text = cell.source
            hidden = _SOLUTION_REGION.findall(text) + _HIDDEN_REGION.findall(text)
            for block in hidden:
                secret.update(line.strip() for line in block.splitlines())
            public_text = _HIDDEN_REGION.sub("", _SOLUTION_REGION.sub("", text))
            public.append(public_text)
    public_text = "\n".join(public)
    return {line for line in secret if len(line) >= _MIN_SECRET_LENGTH and line not in public_text}, public_text


def _release_text() -> str:
    return "\n".join(path.read_text(errors="replace") for path in release_dir().rglob("*") if path.is_file())


def test_secret_lines_exist_to_be_checked():
    """The leak test below is only meaningful if the source has secrets to look for."""
    secret, _ = _secret_and_public_lines()
    assert any("check_training(" in line for line in secret)
    assert any("history_eta_large = model_eta_large.fit(" in line for line in secret)
    assert any("Reference answer" in line for line in secret)


def test_no_solution_reference_answer_or_hidden_test_is_released():
    secret, _ = _secret_and_public_lines()
    released = _release_text()
    leaked = sorted(line for line in secret if line in released)
    assert not leaked, f"{len(leaked)} secret line(s) appear under release/: {leaked[:5]}"
    for marker in ("BEGIN SOLUTION", "HIDDEN TESTS", "graders.", "Reference answer"):
        assert marker not in released, f"{marker!r} appears under release/"


def test_release_notebooks_carry_no_outputs():
    for name in NOTEBOOKS:
        notebook = nbformat.read(release_dir() / name, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, name


def test_differences_reports_an_edited_notebook(tmp_path):
    """Can the golden comparison fail? Edit one cell of a copy and compare."""
    import shutil

    copy = tmp_path / "release"
    shutil.copytree(release_dir(), copy)
    target = copy / NOTEBOOKS[1]
    notebook = nbformat.read(target, as_version=4)
    notebook.cells[0].source += "\nEdited by hand."
    nbformat.write(notebook, target)
    assert differences(release_dir(), copy) == [f"differs from a fresh generate_assignment: {NOTEBOOKS[1]}"]
    (copy / "stray.txt").write_text("x")
    assert "not generated from source (stale?): stray.txt" in differences(release_dir(), copy)


def test_committed_release_equals_a_fresh_generate_assignment():
    """Golden test: regenerate from source (ignoring cell ids) and compare with release/."""
    problems = check_release()
    assert not problems, "release/ is stale; run `hw5-release`:\n" + "\n".join(problems)


def test_a_scratch_course_reuses_the_release_of_identical_inputs_and_regenerates_for_changed_ones(
    tmp_path, monkeypatch
):
    """On the toy course (the cache is the same for any assignment; nbgrader is quicker there)."""
    import shutil

    from toy_course import ASSIGNMENT, NOTEBOOK, make_toy_course

    from graders.authoring import release

    runs = []
    real = release.generate_release
    monkeypatch.setattr(
        release, "generate_release", lambda root, assignment="hw5": runs.append(root) or real(root, assignment)
    )
    monkeypatch.setattr(release, "_SCRATCH_RELEASES", {})
    monkeypatch.delenv("HW5_DB_URL", raising=False)
    first = make_toy_course(tmp_path / "first")
    second = make_toy_course(tmp_path / "second")
    assert runs == [first]  # nbgrader ran once; the second course got a copy
    assert differences(first / "release" / ASSIGNMENT, second / "release" / ASSIGNMENT) == []
    assert (second / "gradebook.db").read_bytes() == (first / "gradebook.db").read_bytes()

    edited = tmp_path / "edited"
    edited.mkdir()
    shutil.copy2(first / "nbgrader_config.py", edited / "nbgrader_config.py")
    shutil.copytree(first / "source", edited / "source")
    notebook = edited / "source" / ASSIGNMENT / NOTEBOOK
    notebook.write_text(notebook.read_text().replace("def add", "def  add", 1))
    release.scratch_release(edited, ASSIGNMENT)
    assert runs == [first, edited]  # changed inputs: nbgrader runs again
