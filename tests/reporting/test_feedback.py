"""hw5-feedback: feedback students can act on, that never shows hidden tests, thresholds,
expectations, reference code or graders' rubrics.

- Unit tests of the redaction on strings and notebooks (no kernel).
- A toy course (seconds, sandboxed): plain nbgrader feedback leaks the hidden tests
  (upstream #917/#1363), ours does not; the leak scan deletes a leaking file.
- The real HW5 (e2e): the reference and three failing mutants, graded by hw5-autograde;
  their feedback is searched for every hidden-test line, threshold, non-public
  expectation and line of graders/authoring/reference.py, and must show the messages, plots and budget.

The graded courses are built once per session: the toy course by the builder below, the
HW5 class by tests/corpus/grading.py (shared with the e2e tests); other test modules import
the builders. ``HW5_FEEDBACK_COURSE=DIR`` reuses a HW5 course already graded with at least
:data:`HW5_STUDENTS` (and ``report.json``): for development only.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_markdown_cell

from corpus.grading import SHARED_MUTANTS, shared_class
from graders.course import COURSE_ROOT
from graders.reporting import feedback

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (the sandbox)")

# -- the graded courses (shared with test_exports, test_class_report, test_manual_grading, test_browser) --

_COURSES: dict[str, tuple[Path, Path]] = {}

RUBRIC_TEXT = "RUBRIC-SECRET: 2 points for saying that add returns the sum"
REFERENCE_ANSWER = "REFERENCE-ANSWER-SECRET: add returns a + b"
TOY_HIDDEN_LINES = ("assert add(-1, 1) == 0", "assert add(10, -3) == 7")


def _toy_source():
    """The toy notebook with a written answer (2 points) and a graders' rubric cell after it."""
    from toy_course import source_notebook

    notebook = source_notebook()
    meta = lambda **fields: {"nbgrader": {"schema_version": 3, **fields}}  # noqa: E731
    notebook.cells += [
        new_markdown_cell("Explain in one sentence what `add` returns."),
        new_markdown_cell(
            f"### BEGIN SOLUTION\n{REFERENCE_ANSWER}\n### END SOLUTION",
            metadata=meta(grade=True, solution=True, locked=False, points=2, grade_id="answer_explain"),
        ),
        new_markdown_cell(
            f"=== BEGIN MARK SCHEME ===\n**Rubric (graders only).** {RUBRIC_TEXT}\n=== END MARK SCHEME ===",
            metadata=meta(grade=False, solution=False, locked=True, grade_id="rubric_explain"),
        ),
    ]
    return notebook


def make_rubric_toy_course(root: Path) -> Path:
    """The toy course (tests/toy_course.py) plus a manually graded answer with a rubric
    cell, and the one configuration line that rubric cells need."""
    from toy_course import ASSIGNMENT, NOTEBOOK

    from graders.authoring.release import generate_release

    root.mkdir(parents=True, exist_ok=True)
    config = (COURSE_ROOT / "nbgrader_config.py").read_text()
    if "ClearMarkScheme.enforce_metadata" not in config:
        config += "\nc.ClearMarkScheme.enforce_metadata = False\n"
    (root / "nbgrader_config.py").write_text(config)
    source = root / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    nbformat.write(_toy_source(), source / NOTEBOOK)
    (source / "helper.py").write_text("SUPPORT_FILE_OK = True\n")
    generate_release(root, assignment=ASSIGNMENT)
    return root


def _answer(root: Path, student: str, text: str):
    from toy_course import ASSIGNMENT, NOTEBOOK

    path = root / "submitted" / student / ASSIGNMENT / NOTEBOOK
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "answer_explain":
            cell.source = text
    nbformat.write(notebook, path)


def graded_toy_course(tmp_path_factory) -> tuple[Path, Path]:
    """A rubric toy course with three graded students (sandboxed hw5-autograde):
    alice (correct, answered), bob (wrong, answered), carol (correct, no answer)."""
    if "toy" not in _COURSES:
        from toy_course import ASSIGNMENT, CORRECT, submit

        from graders.grading import batch

        root = make_rubric_toy_course(tmp_path_factory.mktemp("toy-feedback") / "course")
        submit(root, "alice", CORRECT)
        _answer(root, "alice", "It returns the sum of a and b.")
        submit(root, "bob", "def add(a, b):\n    return a - b\n")
        _answer(root, "bob", "It subtracts.")
        submit(root, "carol", CORRECT)
        report = root / "report.json"
        code = batch.main([ASSIGNMENT, "--course", str(root), "--report", str(report), "--workers", "1"])
        assert code == 0, report.read_text() if report.exists() else "no report"
        _COURSES["toy"] = (root, report)
    return _COURSES["toy"]


#: From the HW5 class graded once per session (tests/corpus/grading.py): the reference,
#: the untouched release, and three failing mutants (a model mistake that cascades, a
#: training mistake, Part A mistakes).
HW5_MUTANTS = SHARED_MUTANTS
HW5_STUDENTS = ("reference", "untouched-release", *HW5_MUTANTS)


def graded_hw5_course(tmp_path_factory) -> tuple[Path, Path]:
    """The session's graded HW5 class (shared with the e2e tests: minutes, once)."""
    if "hw5" not in _COURSES:
        reuse = os.environ.get("HW5_FEEDBACK_COURSE")
        if reuse:
            root = Path(reuse)
            assert all((root / "autograded" / s / "hw5").is_dir() for s in HW5_STUDENTS), (
                f"HW5_FEEDBACK_COURSE={reuse} lacks some of {HW5_STUDENTS}"
            )
        else:
            root, _ = shared_class(tmp_path_factory)
        _COURSES["hw5"] = (root, root / "report.json")
    return _COURSES["hw5"]


@pytest.fixture(scope="session")
def toy_graded(tmp_path_factory):
    return graded_toy_course(tmp_path_factory)


@pytest.fixture(scope="session")
def hw5_graded(tmp_path_factory):
    return graded_hw5_course(tmp_path_factory)


# -- unit tests: the redaction ------------------------------------------------------------------


def test_hidden_region_becomes_one_placeholder_line():
    source = "a = 1\n    ### BEGIN HIDDEN TESTS\n    secret()\n    ### END HIDDEN TESTS\nb = 2"
    assert feedback.redact_source(source) == f"a = 1\n    {feedback.HIDDEN_PLACEHOLDER}\nb = 2"


def test_unterminated_region_is_removed_to_the_end_of_the_cell():
    source = "visible\n### BEGIN HIDDEN TESTS\nsecret_1()\nsecret_2()"
    assert "secret" not in feedback.redact_source(source)


def test_rubric_region_is_removed_without_a_trace():
    source = "Intro\n=== BEGIN MARK SCHEME ===\nfull marks if ...\n=== END MARK SCHEME ===\nOutro"
    assert feedback.redact_source(source) == "Intro\nOutro"


def _test_cell(source, outputs, grade_id="test_x"):
    cell = nbformat.v4.new_code_cell(
        source,
        metadata={
            "nbgrader": {
                "grade": True,
                "solution": False,
                "locked": True,
                "points": 1,
                "grade_id": grade_id,
                "schema_version": 3,
            }
        },
    )
    cell.outputs = [nbformat.from_dict(output) for output in outputs]
    return cell


def _error(ename, evalue, frames):
    return {
        "output_type": "error",
        "ename": ename,
        "evalue": evalue,
        "traceback": [
            "\x1b[31m-----------\x1b[0m",
            f"\x1b[31m{ename}\x1b[0m   Traceback (most recent call last)",
            *frames,
            f"\x1b[31m{ename}\x1b[0m: {evalue}",
        ],
    }


def test_test_cell_traceback_becomes_the_message_only():
    frames = [
        "\x1b[36mCell\x1b[39m In[3], line 4\n      3 ### BEGIN HIDDEN TESTS\n----> 4 check(model)",
        "File /kit/graders/checks/failures.py:62, in wrapper\n   raise GradingFailure(message)",
    ]
    cell = _test_cell("check(model)", [_error("GradingFailure", "The SGD momentum is 0.0; expected 0.9.", frames)])
    cell.execution_count = 3
    notebook = nbformat.v4.new_notebook(cells=[cell])
    notebook, _ = feedback.FeedbackRedactor().preprocess(notebook, {})
    assert notebook.cells[1].outputs[0]["traceback"] == ["The SGD momentum is 0.0; expected 0.9."]
    summary = notebook.cells[0]
    assert summary.metadata[feedback.SUMMARY_KEY]
    assert "The SGD momentum is 0.0; expected 0.9." in summary.source and "failed" in summary.source


#: Exception classes of the grader's own: a student page never names one (issue 16).
OUR_CLASS_NAMES = (
    "GradingFailure",
    "CouldNotCheck",
    "OutOfKernelCheckFailed",
    "NotVerified",
    "ArtifactError",
    "CellTimeoutError",
    "CellNotExecuted",
    "NotExecuted",
    "OutputTooLarge",
    "HiddenError",
    "_Unsupported",
    "[for the instructor]",
    "Traceback (most recent call last)",
)


def student_page_problems(text: str) -> list[str]:
    """The grader's class names, instructor notes and tracebacks found in a student's page."""
    return [name for name in OUR_CLASS_NAMES if name in text]


@pytest.mark.parametrize(
    "ename,evalue",
    [
        ("GradingFailure", "The SGD momentum is 0.0; expected 0.9."),
        (
            "CouldNotCheck",
            "The grader could not check this test on your work automatically (x).\n[for the instructor] "
            "check_architecture raised KeyError: 'layers'",
        ),
        (
            "NotVerified",
            "This test passed in your notebook, but ...\n[for the instructor] layer class 'X' is not allowed",
        ),
        (
            "OutOfKernelCheckFailed",
            "Re-checked outside your notebook, this test fails: The SGD learning rate is 0.5; expected 1.",
        ),
        ("CellTimeoutError", "cell timed out after 300 s"),
        ("CellNotExecuted", "did not run to completion (sandbox status: timeout)"),
        ("OutputTooLarge", "cell output exceeded 1000 bytes"),
        ("HiddenError", "the cell raised ValueError, but its traceback was not shown"),
    ],
)
def test_the_graders_own_errors_read_as_sentences_about_the_work(ename, evalue):
    """Issue 16: no class name of ours, no instructor detail, in the test cell and the summary."""
    frames = ["File /kit/graders/checks/failures.py:62, in wrapper\n   raise GradingFailure(message)"]
    cell = _test_cell("check(model)", [_error(ename, evalue, frames)])
    other = nbformat.v4.new_code_cell("model = build()")
    other.outputs = [nbformat.from_dict(_error(ename, evalue, frames))]
    notebook, _ = feedback.FeedbackRedactor().preprocess(nbformat.v4.new_notebook(cells=[cell, other]), {})
    shown = [line for c in notebook.cells[1:] for output in c.outputs for line in output["traceback"]]
    shown += [output["evalue"] for c in notebook.cells[1:] for output in c.outputs]
    assert student_page_problems(notebook.cells[0].source + "\n".join(shown)) == []
    message = feedback.student_message(ename, evalue)
    assert message[:1].isupper() and message.rstrip().endswith((".", ")")), message


def test_test_cell_traceback_keeps_the_students_own_frames():
    frames = [
        "Cell In[14], line 3\n      2 ### BEGIN HIDDEN TESTS\n----> 3 check_architecture(build(0.01))",
        "Cell In[13], line 15, in build(rate)\n---> 15   optimizer=SGD(lr=rate)",
        "File /venv/keras/src/optimizers/sgd.py:60, in SGD.__init__\n---> 60 super().__init__()",
    ]
    cell = _test_cell("x", [_error("ValueError", "Argument(s) not recognized: {'lr': 0.01}", frames)])
    cell.execution_count = 14
    notebook, _ = feedback.FeedbackRedactor().preprocess(nbformat.v4.new_notebook(cells=[cell]), {})
    shown = "\n".join(notebook.cells[1].outputs[0]["traceback"])
    assert "HIDDEN" not in shown and "check_architecture" not in shown
    assert "optimizer=SGD(lr=rate)" in shown and "sgd.py:60" in shown
    assert shown.endswith("ValueError: Argument(s) not recognized: {'lr': 0.01}")


def test_grading_frames_are_dropped_from_other_tracebacks():
    cell = nbformat.v4.new_code_cell("model = build()")
    cell.outputs = [
        nbformat.from_dict(
            {
                "output_type": "error",
                "ename": "ValueError",
                "evalue": "bad",
                "traceback": [
                    "Cell In[5], line 1\n----> 1 model = build()",
                    "File /tmp/hw5-kit-x/graders/checks/model_checks.py:10\n secret",
                    "ValueError: bad",
                ],
            }
        )
    ]
    notebook, _ = feedback.FeedbackRedactor().preprocess(nbformat.v4.new_notebook(cells=[cell]), {})
    shown = "\n".join(notebook.cells[1].outputs[0]["traceback"])
    assert "model_checks" not in shown and "model = build()" in shown and "ValueError: bad" in shown


def test_an_error_in_the_students_own_cell_reads_as_a_sentence_with_their_frames():
    """IPython's rule and ``Traceback (most recent call last)`` header become a plain line;
    the student's frames and the library's below them stay, the grading code's go (found
    by the slow corpus: a mutant's own ``SGD(lr=...)`` error showed a raw traceback)."""
    cell = nbformat.v4.new_code_cell("model = build()")
    cell.outputs = [
        nbformat.from_dict(
            {
                "output_type": "error",
                "ename": "ValueError",
                "evalue": "Argument `lr` is no longer supported.",
                "traceback": [
                    "\x1b[0;31m----------------------------------------------------------\x1b[0m",
                    "\x1b[0;31mValueError\x1b[0m          Traceback (most recent call last)",
                    "Cell In[22], line 2\n----> 2 model = build()",
                    "File /tmp/hw5-kit-x/graders/checks/recorder.py:10, in fit\n secret",
                    "File /opt/sandbox-python/0/lib/python3.11/site-packages/keras/src/optimizers/sgd.py:60",
                    "\x1b[0;31mValueError\x1b[0m: Argument `lr` is no longer supported.",
                ],
            }
        )
    ]
    notebook, _ = feedback.FeedbackRedactor().preprocess(nbformat.v4.new_notebook(cells=[cell]), {})
    shown = feedback.strip_ansi("\n".join(notebook.cells[1].outputs[0]["traceback"]))
    assert student_page_problems(shown) == [], shown
    assert shown.startswith("ValueError: raised in this cell; where it happened:")
    assert "model = build()" in shown and "keras/src/optimizers/sgd.py" in shown and "recorder" not in shown
    assert shown.endswith("ValueError: Argument `lr` is no longer supported.")


def test_summary_escapes_what_the_student_controls():
    cell = _test_cell(
        "x",
        [{"output_type": "error", "ename": "AssertionError", "evalue": "<script>alert(1)</script>", "traceback": []}],
    )
    summary = feedback.summary_html([cell], "HW5 data budget: fast", "nb")
    assert "<script>" not in summary and "&lt;script&gt;" in summary


def test_outcome_of_a_passing_and_a_failing_test_cell():
    passing = _test_cell("ok", [{"output_type": "stream", "name": "stdout", "text": "run: 10 epochs\n"}])
    failing = _test_cell(
        "no",
        [
            {
                "output_type": "error",
                "ename": "NameError",
                "evalue": "name 'model_eta_large' is not defined",
                "traceback": [],
            }
        ],
    )
    assert feedback.cell_outcome(passing, "nb") == feedback.CellOutcome("nb", "test_x", True, "", "run: 10 epochs")
    assert feedback.cell_outcome(failing, "nb").message == "NameError: name 'model_eta_large' is not defined"


def test_leak_scan_finds_highlighted_code_and_allows_the_students_own_lines():
    document = (
        '<div class="highlight"><pre><span class="n">check_run_model</span><span class="p">('
        '</span><span class="n">model</span><span class="p">)</span></pre></div>'
    )
    assert feedback.find_leaks(document, {"check_run_model(model)"}) == ["check_run_model(model)"]
    assert feedback.find_leaks(document, {"check_run_model(model)"}, allowed="x = check_run_model(model)") == []


# -- the toy course -------------------------------------------------------------------------------


def _feedback_text(root: Path, student: str) -> tuple[str, str]:
    document = (root / "feedback" / student / "toy" / "toy.html").read_text()
    return document, feedback.html_text(document)


@needs_bwrap
@pytest.mark.batch
def test_plain_nbgrader_feedback_shows_hidden_tests_and_rubrics(toy_graded, tmp_path):
    """The problem this module solves (upstream #917/#1363), shown on a copy of the course."""
    from nbgrader.apps import NbGraderAPI

    from graders.course import load_config

    root = tmp_path / "course"
    shutil.copytree(toy_graded[0], root)
    config = load_config(root)
    config.CourseDirectory.root = str(root)
    # nbgrader's own defaults: the course config adds the redactor and the leak scan (tested below).
    config.GenerateFeedback.preprocessors = [
        "nbgrader.preprocessors.GetGrades",
        "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    ]
    config.GenerateFeedback.exporter_class = "nbconvert.exporters.HTMLExporter"
    assert NbGraderAPI(config=config).generate_feedback("toy", "bob")["success"]
    document, text = _feedback_text(root, "bob")
    assert all(line in text for line in TOY_HIDDEN_LINES)
    assert RUBRIC_TEXT in text


@needs_bwrap
@pytest.mark.batch
def test_toy_feedback_shows_messages_and_hides_hidden_tests_and_rubric(toy_graded):
    root, _ = toy_graded
    written, problems = feedback.generate(root, "toy")
    assert problems == []
    assert sorted(path.parts[-3] for path in written) == ["alice", "bob", "carol"]
    for student in ("alice", "bob", "carol"):
        document, text = _feedback_text(root, student)
        leaked = [
            line
            for line in (*TOY_HIDDEN_LINES, RUBRIC_TEXT, REFERENCE_ANSWER, "MARK SCHEME", "HIDDEN TESTS")
            if line in text or line in document
        ]
        assert leaked == [], f"{student}'s feedback shows {leaked}"
        assert feedback.HIDDEN_PLACEHOLDER in text
        assert "your results" in text
    _, bob = _feedback_text(root, "bob")
    assert "add(1, 2) should be 3" in bob and "failed" in bob
    assert "Traceback" not in bob and "Cell In[" not in bob
    _, alice = _feedback_text(root, "alice")
    assert "passed" in alice and "awaiting grading" in alice  # the written answer waits for a grader
    _, carol = _feedback_text(root, "carol")
    assert "not answered" in carol


#: The line nbgrader_config.py needs so that plain ``nbgrader generate_feedback`` (and the
#: formgrader's "generate feedback" button) redact as hw5-feedback does.
CONFIG_LINE = f"\nc.GenerateFeedback.preprocessors = {feedback.FEEDBACK_PREPROCESSORS!r}\n"


@needs_bwrap
@pytest.mark.batch
def test_configured_nbgrader_generate_feedback_redacts_too(toy_graded, tmp_path):
    from graders.course import run_nbgrader

    root = tmp_path / "course"
    shutil.copytree(toy_graded[0], root, ignore=shutil.ignore_patterns(".grading", "feedback"))
    with (root / "nbgrader_config.py").open("a") as config:
        config.write(CONFIG_LINE)
    result = run_nbgrader(["generate_feedback", "toy", "--student", "bob"], root=root, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    document, text = _feedback_text(root, "bob")
    assert not [line for line in (*TOY_HIDDEN_LINES, RUBRIC_TEXT) if line in text]
    assert "your results" in text and "add(1, 2) should be 3" in text


LEAKY_CONFIG_LINE = (
    "\nc.GenerateFeedback.preprocessors = ['nbgrader.preprocessors.GetGrades', "
    "'nbconvert.preprocessors.CSSHTMLHeaderPreprocessor']\n"
)  # the redactor left out


@needs_bwrap
@pytest.mark.batch
def test_nbgraders_own_feedback_path_never_writes_a_leaking_page(toy_graded, tmp_path):
    """nbgrader generate_feedback (what Formgrader's button runs) with the redactor left out:
    the course's exporter scans the page before it is written, so nothing is written."""
    from graders.course import run_nbgrader

    root = tmp_path / "course"
    shutil.copytree(toy_graded[0], root, ignore=shutil.ignore_patterns(".grading", "feedback"))
    with (root / "nbgrader_config.py").open("a") as config:
        config.write(LEAKY_CONFIG_LINE)
    result = run_nbgrader(["generate_feedback", "toy", "--student", "bob"], root=root, check=False)
    assert result.returncode != 0
    assert "grader-only line" in result.stdout + result.stderr
    assert not list((root / "feedback").glob("bob/toy/*.html"))


@needs_bwrap
@pytest.mark.batch
def test_a_leaking_feedback_file_is_deleted_and_reported(toy_graded, tmp_path, monkeypatch, capsys):
    """Fail closed: with the redactor left out, every file leaks, is deleted, and the command fails."""
    root = tmp_path / "course"
    shutil.copytree(toy_graded[0], root)
    monkeypatch.setattr(
        feedback,
        "FEEDBACK_PREPROCESSORS",
        ["nbgrader.preprocessors.GetGrades", "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor"],
    )
    assert feedback.main(["toy", "--course", str(root), "--student", "bob"]) == 1
    assert "grader-only line" in capsys.readouterr().err
    assert not (root / "feedback" / "bob" / "toy" / "toy.html").exists()


# -- the real HW5 ---------------------------------------------------------------------------------


def _hidden_test_lines(root: Path) -> set[str]:
    """Every hidden-test line of the source notebooks that the release does not show."""
    public = set()
    for path in (root / "release" / "hw5").glob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            public.update(line.strip() for line in cell.source.splitlines())
    hidden = set()
    for path in (root / "source" / "hw5").glob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            inside = False
            for line in cell.source.splitlines():
                if "BEGIN HIDDEN TESTS" in line:
                    inside = True
                elif "END HIDDEN TESTS" in line:
                    inside = False
                elif inside and line.strip() and line.strip() not in public and re.search(r"[A-Za-z]", line):
                    hidden.add(line.strip())
    return hidden


def _release_text(root: Path) -> str:
    return "\n".join(
        cell.source
        for path in (root / "release" / "hw5").glob("*.ipynb")
        for cell in nbformat.read(path, as_version=4).cells
    )


def _number_forms(value) -> set[str]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return set()
    forms = {repr(value), f"{value:g}"}
    if isinstance(value, int) or float(value).is_integer():
        forms |= {f"{int(value):,}", str(int(value))}
    return forms


def _leaves(data):
    if isinstance(data, dict):
        for value in data.values():
            yield from _leaves(value)
    elif isinstance(data, list):
        for value in data:
            yield from _leaves(value)
    else:
        yield data


def _own_outputs_text(autograded: Path) -> str:
    """The outputs of a student's notebooks outside the test cells: what they see when they
    run the notebook themselves (model summaries, training logs)."""
    texts = []
    for path in autograded.glob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code" or cell.metadata.get("nbgrader", {}).get("grade"):
                continue
            for output in cell.outputs:
                texts.append(output.get("text", ""))
                texts.extend(str(value) for value in output.get("data", {}).values())
    return "\n".join(texts)


def _secret_numbers(root: Path, student: str) -> dict[str, re.Pattern]:
    """Thresholds and expected.json values that the student never sees otherwise (neither in
    the release nor in their own cells' outputs), as regexes that match the number on its
    own (0.49 does not match inside 0.4900)."""
    public = _release_text(root) + "\n" + _own_outputs_text(root / "autograded" / student / "hw5")
    checks = COURSE_ROOT / "graders" / "checks"
    values = set(_leaves(json.loads((checks / "thresholds.json").read_text())))
    values |= {
        v
        for v in _leaves(json.loads((checks / "expected.json").read_text()))
        if isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) >= 100
    }  # parameter counts, flattened sizes
    secrets = {}
    for value in values:
        for form in _number_forms(value):
            pattern = re.compile(r"(?<![\d.,])" + re.escape(form) + r"(?![\d,]|\.\d)")
            if not pattern.search(public):
                secrets[form] = pattern
    return secrets


def _students_own_text(folder: Path) -> str:
    """What the student typed: every cell of their submission that nbgrader does not restore."""
    texts = []
    for path in folder.glob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if not meta.get("locked") and not (meta.get("grade") and not meta.get("solution")):
                texts.append(cell.source)
    return "\n".join(texts)


def _reference_lines(student_folder: Path, root: Path) -> set[str]:
    """Lines of graders/authoring/reference.py that neither the release nor the student wrote."""
    public = _release_text(root) + "\n" + _students_own_text(student_folder)
    lines = set()
    for line in (COURSE_ROOT / "graders" / "authoring" / "reference.py").read_text().splitlines():
        line = line.strip()
        if len(line) >= 10 and re.search(r"[A-Za-z]{3}", line) and line not in public:
            lines.add(line)
    return lines


@pytest.fixture(scope="module")
def hw5_feedback(hw5_graded, tmp_path_factory):
    """Feedback for the reference and the three mutants, in a copy of the graded course."""
    source, report = hw5_graded
    root = tmp_path_factory.mktemp("hw5-feedback-copy") / "course"
    shutil.copytree(source, root, ignore=shutil.ignore_patterns(".grading", "feedback"))
    students = ["reference", *HW5_MUTANTS]
    written, problems = feedback.generate(root, "hw5", students)
    assert problems == []
    return root, students


_MARKERS = (
    "HIDDEN TESTS",
    "MARK SCHEME",
    "graders.checks",
    "graders/checks",
    "thresholds.json",
    "expected.json",
    "min_test_accuracy",
    "history_agreement",
    "written_key",
)


def _leaks(root: Path, student: str, document: str) -> dict[str, list[str]]:
    """Everything grader-only found in one feedback document, by kind."""
    text = feedback.html_text(document)
    return {
        "hidden-test lines": sorted(line for line in _hidden_test_lines(root) if line in text),
        "secret numbers": sorted(
            form for form, pattern in _secret_numbers(root, student).items() if pattern.search(text)
        ),
        "grader markers": [marker for marker in _MARKERS if marker in text],
        "reference code": sorted(
            line for line in _reference_lines(root / "submitted" / student / "hw5", root) if line in text
        ),
    }


@pytest.mark.e2e
@pytest.mark.needs_mnist
@needs_bwrap
def test_hw5_feedback_reveals_no_hidden_test_threshold_expectation_or_reference_code(hw5_feedback):
    root, students = hw5_feedback
    hidden = _hidden_test_lines(root)
    assert len(hidden) >= 20 and 'check_run_model(model_eta_large, "eta_large")' in hidden
    for student in students:
        assert {"0.49", "0.47", "0.42", "0.044"} <= set(_secret_numbers(root, student))  # floors, tolerance
        for path in sorted((root / "feedback" / student / "hw5").glob("*.html")):
            leaks = _leaks(root, student, path.read_text())
            assert leaks == {kind: [] for kind in leaks}, f"{student}/{path.name}"


@pytest.mark.e2e
@pytest.mark.needs_mnist
@needs_bwrap
def test_the_leak_search_finds_planted_secrets(hw5_feedback):
    """The search above can fail: each kind of secret, planted in a real feedback page, is found."""
    root, _ = hw5_feedback
    document = (root / "feedback" / "batch-size-1024" / "hw5" / "hw5_part_b_cnn.html").read_text()
    reference_line = '"eta_large": {"builder": "define_model", "learning_rate": 1.0, "momentum": 0.0},'
    planted = document.replace(
        "</body>",
        (
            '<pre>check_training(history_momentum, model_momentum, "momentum")</pre>'
            "<p>The floor is 0.47.</p><pre>from graders.checks import check_training</pre>"
            f"<pre>{reference_line}</pre></body>"
        ),
    )
    leaks = _leaks(root, "batch-size-1024", planted)
    assert leaks["hidden-test lines"] == [
        'check_training(history_momentum, model_momentum, "momentum")',
        "from graders.checks import check_training",
    ]
    assert leaks["secret numbers"] == ["0.47"]
    assert leaks["grader markers"] == ["graders.checks"]
    assert leaks["reference code"] == [reference_line]


@pytest.mark.e2e
@pytest.mark.needs_mnist
@needs_bwrap
def test_hw5_feedback_shows_each_tests_outcome_message_plots_and_budget(hw5_feedback):
    from graders.course import course_db_url
    from graders.gradebook import student_grades

    root, students = hw5_feedback
    for student in students:
        part_b = (root / "feedback" / student / "hw5" / "hw5_part_b_cnn.html").read_text()
        text = feedback.html_text(part_b)
        assert "HW5 data budget: fast (1,000 training / 500 test images)" in text
        images = _embedded_pngs(part_b)
        assert len(images) == _plots(root / "autograded" / student / "hw5" / "hw5_part_b_cnn.ipynb"), (
            f"{student}: the feedback lost some of the student's plots"
        )
        assert all(base64.b64decode(image)[:8] == b"\x89PNG\r\n\x1a\n" for image in images)
        grades = {g.grade_id: g for g in student_grades(course_db_url(root), student)}
        autograded = root / "autograded" / student / "hw5"
        for name in ("hw5_part_a_written", "hw5_part_b_cnn"):
            html_text = feedback.html_text((root / "feedback" / student / "hw5" / f"{name}.html").read_text())
            outcomes = feedback.cell_outcomes(nbformat.read(autograded / f"{name}.ipynb", as_version=4), name)
            assert outcomes
            for outcome in outcomes:
                grade = grades[outcome.grade_id]
                assert outcome.passed == (grade.score == grade.max_score), (student, outcome)
                if not outcome.passed:
                    assert outcome.message and outcome.message.splitlines()[0] in html_text, (student, outcome)
    from bs4 import BeautifulSoup

    summary = BeautifulSoup(
        (root / "feedback" / "reference" / "hw5" / "hw5_part_b_cnn.html").read_text(), "html.parser"
    ).find("div", class_="hw5-feedback-summary")
    outcomes = [td.get_text() for td in summary.find_all("td", class_="hw5-outcome")]
    assert outcomes.count("passed") == 12 and outcomes.count("awaiting grading") == 4
    batch = feedback.html_text((root / "feedback" / "batch-size-1024" / "hw5" / "hw5_part_b_cnn.html").read_text())
    assert "SGD updates" in batch and "batch size" in batch


def _plots(path: Path) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in nbformat.read(path, as_version=4).cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )


def _embedded_pngs(document: str) -> list[str]:
    """The base64 payloads of the PNG images embedded in an HTML page (any attribute order:
    nbconvert writes ``alt`` before ``src``)."""
    from bs4 import BeautifulSoup

    prefix = "data:image/png;base64,"
    return [
        img["src"][len(prefix) :]
        for img in BeautifulSoup(document, "html.parser").find_all("img")
        if img.get("src", "").startswith(prefix)
    ]


def test_the_image_search_finds_nbconverts_images():
    """The search above can fail: it finds images whatever the attribute order, and only PNGs."""
    page = (
        '<img alt="No description" class="" src="data:image/png;base64,iVBORw0KGgo=">'
        '<img src="data:image/png;base64,AAAA"><img src="data:image/jpeg;base64,AAAA">'
        "<p>data:image/png;base64,BBBB</p>"
    )
    assert _embedded_pngs(page) == ["iVBORw0KGgo=", "AAAA"]


@pytest.mark.e2e
@pytest.mark.needs_mnist
@needs_bwrap
def test_hw5_feedback_shows_the_students_plots(hw5_feedback):
    root, students = hw5_feedback
    for student in students:
        assert _plots(root / "autograded" / student / "hw5" / "hw5_part_b_cnn.ipynb") >= 4, student
        part_b = (root / "feedback" / student / "hw5" / "hw5_part_b_cnn.html").read_text()
        assert len(_embedded_pngs(part_b)) >= 4, student
