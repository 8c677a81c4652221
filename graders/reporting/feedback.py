"""Per-student feedback that students can act on, and that never shows grader internals.

    hw5-feedback [ASSIGNMENT] [--student ID ...] [--course ROOT]

This runs nbgrader's own ``generate_feedback`` (one HTML file per notebook under
``feedback/<student>/<assignment>/``), with one preprocessor added to it,
:class:`FeedbackRedactor`, between nbgrader's ``GetGrades`` and the CSS step:

- **Hidden tests.** nbgrader restores every test cell from the gradebook before grading,
  so an autograded test cell still holds its ``### BEGIN HIDDEN TESTS`` region (upstream
  issues #917 and #1363: ``generate_feedback`` shows it). The region is replaced by one
  comment line.
- **Graders' rubrics.** Mark-scheme regions (``=== BEGIN MARK SCHEME ===``), which the
  autograded notebooks carry for the formgrader, are removed.
- **Tracebacks.** A failing test cell's traceback quotes the lines around the failing
  line, hidden ones included, and frames inside the grading code. In a test cell it
  becomes ``ErrorName: message``; elsewhere, frames in the grading code are dropped and
  IPython's ``Traceback (most recent call last)`` header becomes a plain sentence.
- **A summary** on top: the data budget the notebook was graded under (the setup cell
  prints ``HW5 data budget: ...``) and one row per graded cell: points, outcome and
  the test's own message, which says what to fix.

Everything else stays: the student's code, outputs and plots, and nbgrader's per-cell
scores and comments. After rendering, each HTML file is scanned (:func:`find_leaks`)
for hidden-test lines, rubric text and grader-only code; a file with a finding is
deleted and the command exits 1 (fail closed).

``nbgrader generate_feedback`` itself gets the same behaviour once ``nbgrader_config.py``
sets ``c.GenerateFeedback.preprocessors`` to :data:`FEEDBACK_PREPROCESSORS` (see docs/grading.md,
'Feedback').
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbconvert.exporters import HTMLExporter
from nbgrader import utils as nbutils
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import List

from graders.checks.failures import student_part
from graders.course import load_config
from graders.gradebook import CellGrade, notebook_grades

HIDDEN_BEGIN, HIDDEN_END = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
RUBRIC_BEGIN, RUBRIC_END = "BEGIN MARK SCHEME", "END MARK SCHEME"
HIDDEN_PLACEHOLDER = "# (hidden tests ran here; they are not shown)"
BUDGET_PREFIX = "HW5 data budget:"
#: Metadata key of the summary cell that the redactor inserts.
SUMMARY_KEY = "hw5_feedback_summary"
#: A traceback frame from these files is grading code, not the student's.
_GRADER_FRAME = re.compile(r"graders[/\\]|site-packages[/\\]nbgrader|hw5-kit")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

#: GenerateFeedback's preprocessors: nbgrader's defaults with the redactor in between.
FEEDBACK_PREPROCESSORS = [
    "nbgrader.preprocessors.GetGrades",
    "graders.reporting.feedback.FeedbackRedactor",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def remove_regions(source: str, begin: str, end: str, placeholder: str | None) -> str:
    """``source`` without the lines from a ``begin`` line to its ``end`` line (inclusive).

    An unterminated region runs to the end of the cell (fail closed). Each removed
    region becomes ``placeholder`` (indented like its first line) or nothing.
    """
    kept, inside = [], False
    for line in source.split("\n"):
        if not inside and begin in line:
            inside = True
            if placeholder is not None:
                kept.append(line[: len(line) - len(line.lstrip())] + placeholder)
            continue
        if inside:
            if end in line:
                inside = False
            continue
        kept.append(line)
    return "\n".join(kept)


def redact_source(source: str) -> str:
    """A cell source with hidden tests and rubrics taken out."""
    source = remove_regions(source, HIDDEN_BEGIN, HIDDEN_END, HIDDEN_PLACEHOLDER)
    return remove_regions(source, RUBRIC_BEGIN, RUBRIC_END, None).strip("\n")


# -- test outcomes, shared by the feedback, the exports and the class report ------------------


@dataclass(frozen=True)
class CellOutcome:
    """What one autograded test cell did, as a student may see it."""

    notebook: str
    grade_id: str
    passed: bool
    message: str  # the failure message ("" when passed)
    output: str  # what the test printed (stdout), e.g. the training summary


#: Error outputs of the grader's own (a check's verdict, the sandbox, the verifier), by
#: ename: a student reads a sentence about their work, never our class name. ``{0}`` is the
#: output's evalue, without the instructor's detail.
STUDENT_SENTENCES = {
    "GradingFailure": "{0}",
    "AssertionError": "{0}",
    "CouldNotCheck": "{0}",
    "OutOfKernelCheckFailed": "{0}",
    "NotVerified": "{0}",
    "CellTimeoutError": (
        "This cell ran longer than the grader allows and was stopped ({0}). Make it faster: "
        "train with the batch size and number of epochs the homework asks for."
    ),
    "CellNotExecuted": (
        "This cell did not run: your notebook stopped before it ({0}). Look at the first "
        "cell above it that failed or ran too long."
    ),
    "NotExecuted": (
        "This cell did not run: your notebook stopped before it ({0}). Look at the first "
        "cell above it that failed or ran too long."
    ),
    "OutputTooLarge": (
        "This cell printed more than the grader keeps ({0}). Print less, for example with verbose=0 in fit."
    ),
    "HiddenError": (
        "This cell raised an exception that your notebook hid ({0}). Remove the code that "
        "replaces how errors are shown, and run your cells from the top."
    ),
}


def student_message(ename: str, evalue: str) -> str:
    """What a student reads for an error output: a sentence about their work for the
    grader's own outputs (:data:`STUDENT_SENTENCES`), ``ErrorName: message`` for their own
    code's exceptions (a ``ValueError`` their model raised is theirs to read)."""
    ename, evalue = strip_ansi(str(ename)), student_part(strip_ansi(str(evalue))).strip()
    if ename in STUDENT_SENTENCES:
        if not evalue:
            return (
                "A check failed without a message."
                if ename in ("GradingFailure", "AssertionError")
                else STUDENT_SENTENCES[ename].format("no detail").strip()
            )
        return STUDENT_SENTENCES[ename].format(evalue)
    return f"{ename}: {evalue}" if evalue else ename


def _error_message(output) -> str:
    return student_message(output.get("ename", "Error"), output.get("evalue", ""))


def cell_outcome(cell, notebook: str) -> CellOutcome:
    """The outcome of an autograded test cell, as nbgrader scores it (an error or stderr fails)."""
    outputs = cell.get("outputs", [])
    errors = [_error_message(o) for o in outputs if o.get("output_type") == "error"]
    stderr = [
        strip_ansi(o.get("text", "")) for o in outputs if o.get("output_type") == "stream" and o.get("name") == "stderr"
    ]
    stdout = "".join(
        strip_ansi(o.get("text", "")) for o in outputs if o.get("output_type") == "stream" and o.get("name") == "stdout"
    )
    passed = not nbutils.has_failed(cell)
    message = "" if passed else ("\n".join(errors) or "".join(stderr).strip() or "the test failed")
    return CellOutcome(notebook, cell.metadata["nbgrader"]["grade_id"], passed, message, stdout.strip())


def is_test_cell(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def cell_outcomes(notebook, name: str) -> list[CellOutcome]:
    """Every autograded test cell's outcome, in notebook order."""
    return [cell_outcome(cell, name) for cell in notebook.cells if is_test_cell(cell)]


def budget_line(notebook) -> str | None:
    """The ``HW5 data budget: ...`` line the setup cell printed, if any."""
    for cell in notebook.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else ():
            for line in strip_ansi(output.get("text", "") or "").splitlines():
                if line.startswith(BUDGET_PREFIX):
                    return line.strip()
    return None


# -- the preprocessor ----------------------------------------------------------------------------


def terminal_text(text: str) -> str:
    """Text as a terminal shows it: a carriage return restarts the line, a backspace
    erases a character (Keras' progress bars), so only each line's final state is kept."""
    lines = []
    for line in text.split("\n"):
        shown: list[str] = []
        for char in line:
            if char == "\b":
                if shown:
                    shown.pop()
            else:
                shown.append(char)
        lines.append("".join(shown).rsplit("\r", 1)[-1])
    return "\n".join(lines)


def collapse_streams(outputs: list) -> list:
    """Consecutive stream outputs of one name merged, progress-bar updates collapsed."""
    merged = []
    for output in outputs:
        if (
            output.get("output_type") == "stream"
            and merged
            and merged[-1].get("output_type") == "stream"
            and merged[-1].get("name") == output.get("name")
        ):
            merged[-1]["text"] += output.get("text", "")
        else:
            merged.append(output)
    for output in merged:
        if output.get("output_type") == "stream":
            output["text"] = terminal_text(output.get("text", ""))
    return merged


_CELL_FRAME = re.compile(r"^\s*Cell In\[(\d+)\]")


def _in_grading_code(frame: str) -> bool:
    """Whether a traceback frame is in the grading code or quotes a hidden test."""
    plain = strip_ansi(frame)
    return bool(_GRADER_FRAME.search(plain)) or HIDDEN_BEGIN in plain


def _test_traceback(output, execution_count) -> list[str]:
    """A test cell's traceback without the test cell's own frame (its context lines may be
    hidden tests) and without grading-code frames. What is left is the student's code
    (their function that raised, the library calls below it); with nothing left, only
    ``ErrorName: message``."""
    ename = strip_ansi(str(output.get("ename", "Error")))
    last = _error_message(output)
    if ename in STUDENT_SENTENCES:  # the grader's own verdict: the sentence says it all
        return [last]
    frames = list(output.get("traceback", []))[2:-1]  # IPython: rule, header, frames..., last line
    kept = []
    for frame in frames:
        plain = strip_ansi(frame)
        own = _CELL_FRAME.match(plain)
        if own and (execution_count is None or int(own.group(1)) == execution_count):
            continue
        if _in_grading_code(frame):
            continue
        kept.append(frame)
    if not kept:
        return [last]
    return [f"{ename}: raised while the test called your code; where it happened:", *kept, last]


_IPYTHON_HEADER = "Traceback (most recent call last)"


def _own_traceback(output) -> list[str]:
    """An error in a cell of the student's own: where it happened in their code (their
    frames and the library calls below them, as at home), without frames in the grading
    code, and in the same words as a test cell's (``ErrorName: raised in this cell; where
    it happened:``) instead of IPython's rule and ``Traceback (most recent call last)``."""
    ename = strip_ansi(str(output.get("ename", "Error")))
    frames = list(output.get("traceback", []))
    headers = [index for index, frame in enumerate(frames[:2]) if _IPYTHON_HEADER in strip_ansi(frame)]
    if headers:
        frames = frames[headers[0] + 1 :]
    kept, dropped = [], 0
    for frame in frames:
        if _in_grading_code(frame):
            dropped += 1
        else:
            kept.append(frame)
    if dropped:
        kept.insert(0, f"[{dropped} frame(s) in the grading code not shown]")
    return [f"{ename}: raised in this cell; where it happened:", *kept]


def _unanswered(cell) -> bool:
    return cell.source.strip() in ("", "YOUR ANSWER HERE")


def _describe_grade(cell, info: CellGrade | None) -> tuple[str, str, str]:
    """(points, outcome, message) of a graded cell."""
    meta = cell.metadata.nbgrader
    score = float(info.score or 0) if info else float(meta.get("score") or 0)
    points = info.max_score if info else float(meta.get("points") or 0)
    shown = f"{score:g} / {points:g}"
    if is_test_cell(cell):
        outcome = cell_outcome(cell, "")
        return shown, "passed" if outcome.passed else "failed", outcome.message or outcome.output
    if info and info.needs_manual_grade:
        return f"- / {points:g}", "awaiting grading", "Graded by hand; the points are added when it is graded."
    if _unanswered(cell):
        return shown, "not answered", ""
    return shown, "graded by hand", info.comment if info else ""


def summary_html(cells, budget: str | None, title: str, grades: dict[str, CellGrade] | None = None) -> str:
    """An HTML table (every value escaped): one row per graded cell."""
    grades = grades or {}
    rows = []
    for cell in cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not meta.get("grade") and not meta.get("task"):
            continue
        shown, outcome, message = _describe_grade(cell, grades.get(meta["grade_id"]))
        colour = {"passed": "#1a7f37", "failed": "#cf222e"}.get(outcome, "#57606a")
        rows.append(
            f'<tr><td><a href="#{html.escape(meta["grade_id"])}">{html.escape(meta["grade_id"])}</a></td>'
            f'<td style="white-space:nowrap">{html.escape(shown)}</td>'
            f'<td class="hw5-outcome" style="color:{colour};font-weight:bold">{html.escape(outcome)}</td>'
            f'<td class="hw5-message" style="white-space:pre-wrap">{html.escape(message)}</td></tr>'
        )
    budget_note = (
        (
            f"<p><b>Grading budget.</b> {html.escape(budget)}: the data your notebook trained on while "
            "it was graded. Run yourself, the setup cell prints the budget you get (the full data), "
            "so your own accuracies can differ from the graded ones.</p>\n"
        )
        if budget
        else ""
    )
    return (
        f'<div class="hw5-feedback-summary">\n<h2>{html.escape(title)}: your results</h2>\n'
        + budget_note
        + "<p>Each test's message says what to fix. Where a test cell shows the comment "
        f"<code>{html.escape(HIDDEN_PLACEHOLDER)}</code>, more tests ran; their code is not "
        "shown, but their messages are.</p>\n"
        '<table class="table table-condensed"><thead><tr><th>cell</th><th>points</th>'
        "<th>outcome</th><th>message</th></tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody></table>\n</div>"
    )


class FeedbackRedactor(NbGraderPreprocessor):
    """Make an autograded notebook safe and useful to show its student (see the module doc)."""

    # nbconvert's HTMLExporter configures this for every preprocessor (as nbgrader's GetGrades does).
    display_data_priority = List(
        ["text/html", "application/pdf", "text/latex", "image/svg+xml", "image/png", "image/jpeg", "text/plain"]
    ).tag(config=True)

    def preprocess(self, nb, resources):
        nb, resources = super().preprocess(nb, resources)
        info = resources.get("nbgrader", {})
        title = info.get("notebook") or "This notebook"
        grades = {}
        if all(info.get(key) for key in ("db_url", "assignment", "notebook", "student")):
            grades = notebook_grades(info["db_url"], info["assignment"], info["notebook"], info["student"])
        summary = nbformat.v4.new_markdown_cell(summary_html(nb.cells, budget_line(nb), title, grades))
        summary.metadata[SUMMARY_KEY] = True
        nb.cells.insert(0, summary)
        return nb, resources

    def preprocess_cell(self, cell, resources, index):
        cell.source = redact_source(cell.source)
        if cell.cell_type != "code":
            return cell, resources
        test = is_test_cell(cell)
        cell.outputs = collapse_streams(cell.get("outputs", []))
        for output in cell.outputs:
            if output.get("output_type") == "error":
                if test:
                    output["traceback"] = _test_traceback(output, cell.get("execution_count"))
                elif strip_ansi(str(output.get("ename", ""))) in STUDENT_SENTENCES:
                    output["traceback"] = [_error_message(output)]  # the grader's own output
                else:
                    output["traceback"] = _own_traceback(output)
                output["evalue"] = student_part(str(output.get("evalue", "")))
        return cell, resources


# -- the leak scan -------------------------------------------------------------------------------


def html_text(document: str) -> str:
    """The visible text of an HTML document (code highlighting spans joined up)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(document, "html.parser")
    for tag in soup(["script", "style"]):
        tag.decompose()
    return soup.get_text()


def _lines_between(source: str, begin: str, end: str) -> list[str]:
    found, inside = [], False
    for line in source.split("\n"):
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside:
            found.append(line.strip())
    return found


def _meaningful(line: str) -> bool:
    return len(line) >= 8 and bool(re.search(r"[A-Za-z]{3}", line))


def _release_text(root: Path, assignment: str) -> str:
    return "\n".join(
        cell.source
        for path in sorted((root / "release" / assignment).glob("*.ipynb"))
        for cell in nbformat.read(path, as_version=4).cells
    )


def secret_lines(root: Path, assignment: str) -> set[str]:
    """Lines a student must never see in feedback, from the course's source: hidden tests,
    rubrics, solutions and ``graders/authoring/reference.py``, less those the release shows anyway
    (anywhere in its text)."""
    secrets = set()
    for path in sorted((root / "source" / assignment).glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            secrets.update(_lines_between(cell.source, HIDDEN_BEGIN, HIDDEN_END))
            secrets.update(_lines_between(cell.source, RUBRIC_BEGIN, RUBRIC_END))
            secrets.update(_lines_between(cell.source, "BEGIN SOLUTION", "END SOLUTION"))
    reference = root / "graders" / "authoring" / "reference.py"
    if not reference.is_file():
        reference = Path(__file__).resolve().parent.parent / "authoring" / "reference.py"
    secrets.update(line.strip() for line in reference.read_text().splitlines())
    public = _release_text(root, assignment)
    return {line for line in secrets if _meaningful(line) and line not in public}


def find_leaks(document: str, secrets: set[str], allowed: str = "") -> list[str]:
    """Secret lines (and nbgrader's region markers) found in an HTML document's text.
    ``allowed``: the student's own text; a secret line that occurs in it may show."""
    text = html_text(document)
    found = [marker for marker in (HIDDEN_BEGIN, HIDDEN_END, RUBRIC_BEGIN, RUBRIC_END) if marker in document]
    found += sorted(line for line in secrets if line in text and line not in allowed)
    return found


def student_text(folder: Path) -> str:
    """The text of the cells the student wrote (not the locked ones, which nbgrader restores
    from the gradebook): their own code may show in their feedback."""
    parts = []
    for path in sorted(folder.glob("*.ipynb")):
        try:
            notebook = nbformat.read(path, as_version=4)
        except Exception:  # an unreadable submission: nothing of it is allowed
            continue
        for cell in notebook.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("locked") or (meta.get("grade") and not meta.get("solution")):
                continue
            parts.append(cell.source)
    return "\n".join(parts)


class FeedbackLeak(RuntimeError):
    """A rendered feedback page would show grader-only lines: it is not written."""


class LeakCheckedHTMLExporter(HTMLExporter):
    """nbgrader's feedback exporter, refusing a page that shows a grader-only line.

    ``nbgrader_config.py`` makes it ``GenerateFeedback``'s exporter, so every way in
    (``hw5-feedback``, ``nbgrader generate_feedback``, Formgrader's "Generate feedback")
    scans each page before nbgrader writes it; a leaking page raises, nbgrader records a
    failure for that student, and no file is written."""

    def from_notebook_node(self, nb, resources=None, **kwargs):
        output, resources = super().from_notebook_node(nb, resources, **kwargs)
        info = (resources or {}).get("nbgrader", {})
        if "assignment" in info and "student" in info:
            root = Path(self.config.CourseDirectory.root or Path.cwd()).resolve()
            leaks = find_leaks(
                output,
                secret_lines(root, info["assignment"]),
                student_text(root / "submitted" / info["student"] / info["assignment"]),
            )
            if leaks:
                raise FeedbackLeak(
                    f"feedback for {info['student']} not written: it would show {len(leaks)} "
                    f"grader-only line(s), e.g. {leaks[0]!r}"
                )
        return output, resources


# -- the command ---------------------------------------------------------------------------------


def feedback_config(root: Path):
    config = load_config(root)
    config.CourseDirectory.root = str(root)
    config.GenerateFeedback.preprocessors = list(FEEDBACK_PREPROCESSORS)
    return config


def generate(root: Path, assignment: str, students: list[str] | None = None) -> tuple[list[Path], list[str]]:
    """Generate and check feedback; returns (written HTML files, problems)."""
    from nbgrader.apps import NbGraderAPI

    api = NbGraderAPI(config=feedback_config(root))
    problems = []
    graded = (
        sorted(p.name for p in (root / "autograded").iterdir() if (p / assignment).is_dir())
        if (root / "autograded").is_dir()
        else []
    )
    chosen = students or graded
    for student in chosen:
        if student not in graded:
            problems.append(f"{student}: no autograded submission for {assignment}")
            continue
        result = api.generate_feedback(assignment, student, force=True)
        if not result.get("success"):
            log = result.get("error") or result.get("log") or ""
            leak = re.search(r"FeedbackLeak: (.*)", f"{result.get('log') or ''}\n{log}")
            problems.append(
                f"{student}: {leak.group(1)}" if leak else f"{student}: nbgrader generate_feedback failed: {log[-500:]}"
            )
    secrets = secret_lines(root, assignment)
    written = []
    for student in chosen:
        folder = root / "feedback" / student / assignment
        allowed = student_text(root / "submitted" / student / assignment)
        for path in sorted(folder.glob("*.html")) if folder.is_dir() else ():
            leaks = find_leaks(path.read_text(encoding="utf-8"), secrets, allowed)
            if leaks:
                path.unlink()
                problems.append(f"{path}: removed, it would show {len(leaks)} grader-only line(s), e.g. {leaks[0]!r}")
            else:
                written.append(path)
    return written, problems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """hw5-feedback's options, which ``hw5 feedback`` shares."""
    from graders.cli import add_course_arguments

    add_course_arguments(parser)
    parser.add_argument("--student", action="append", help="only this student (repeatable)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="hw5-feedback", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    written, problems = generate(args.course.resolve(), args.assignment, args.student)
    for path in written:
        print(f"wrote {path}")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
