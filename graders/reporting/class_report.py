"""A class report that instructors read at a glance: one self-contained HTML file.

    hw5-class-report [ASSIGNMENT] [--course ROOT] [--report FILE] [--out FILE]

Reads the gradebook, the autograded notebooks and, with ``--report``, the JSON that
``hw5-autograde --report`` wrote. The HTML (default ``reports/class-report.html`` in the
course root, which git ignores) has no external resource: its plots are PNGs embedded
as base64. It shows:

1. the score distribution (total so far, and autograded points);
2. the pass rate of each test cell;
3. the most frequent failure messages, normalised (numbers and addresses masked);
4. the grading time per submission (needs ``--report``);
5. the out-of-kernel verifier's two verdicts, each in its own list: "suspected
   tampering" and "needs a person" (a limit of the grader's, no accusation);
6. the submissions flagged for review: grading errors, repairs and tampering signals
   from the student-editable code, manual scores on autograded cells;
7. the written answers still waiting for manual grading.
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import html
import io
import re
import statistics
import sys
from collections import OrderedDict, defaultdict
from pathlib import Path

from graders.reporting.exports import StudentRecord, collect

_FLOAT = re.compile(r"(?<![\w.])[-+]?\d+\.\d+(?:e[-+]?\d+)?")
_BIG_INT = re.compile(r"(?<![\w.])(?:\d{1,3}(?:,\d{3})+|\d{3,})(?!\d|\.\d)")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")


def normalise(message: str) -> str:
    """A failure message with its varying parts masked, so that equal mistakes group."""
    first = next((line.strip() for line in message.splitlines() if line.strip()), "")
    first = _ADDRESS.sub("0x…", first)
    first = _FLOAT.sub("<x>", first)
    first = _BIG_INT.sub("<n>", first)
    return first[:300]


# -- the numbers ---------------------------------------------------------------------------------


def test_order(records: list[StudentRecord]) -> list[tuple[str, str]]:
    order = OrderedDict()
    for record in records:
        for cell in record.cells:
            if cell.autograded:
                order[(cell.notebook, cell.grade_id)] = None
    return list(order)


def pass_rates(records: list[StudentRecord]) -> OrderedDict:
    """(notebook, grade_id) -> (passed, graded) over the submissions with an autograded notebook."""
    rates = OrderedDict((key, [0, 0]) for key in test_order(records))
    for record in records:
        for key, outcome in record.outcomes.items():
            if key in rates:
                rates[key][1] += 1
                rates[key][0] += outcome.passed
    return OrderedDict((key, tuple(value)) for key, value in rates.items())


def failure_messages(records: list[StudentRecord]) -> list[tuple[str, int, list[str], list[str]]]:
    """(normalised message, count, students, test cells), most frequent first."""
    groups = defaultdict(lambda: [0, set(), set()])
    for record in records:
        for (_notebook, grade_id), outcome in record.outcomes.items():
            if not outcome.passed:
                group = groups[normalise(outcome.message)]
                group[0] += 1
                group[1].add(record.student)
                group[2].add(grade_id)
    ordered = sorted(groups.items(), key=lambda item: (-item[1][0], item[0]))
    return [(message, count, sorted(students), sorted(cells)) for message, (count, students, cells) in ordered]


# How the out-of-kernel verifier's flags are tagged: a suspicion, and a limit of the
# grader's that a person resolves. Kept apart in the report.
from graders.grading.verifier_step import NEEDS_PERSON_TAG, TAMPERING_TAG  # noqa: E402


def verifier_flag_kind(flag: str) -> str | None:
    """``"tampering"``, ``"person"`` or None (any other review flag), from the flag's tag
    (``NOTEBOOK: GRADE_ID: TAG: ...``, as the grading report writes it)."""
    if f": {TAMPERING_TAG}:" in flag:
        return "tampering"
    if f": {NEEDS_PERSON_TAG}:" in flag:
        return "person"
    return None


def verifier_lists(records: list[StudentRecord]) -> tuple[OrderedDict, OrderedDict]:
    """(suspected tampering, needs a person): student -> the verifier's flags of that kind."""
    tampering, person = OrderedDict(), OrderedDict()
    for record in records:
        for flag in (record.report or {}).get("flags", []):
            kind = verifier_flag_kind(flag)
            if kind is not None:
                (tampering if kind == "tampering" else person).setdefault(record.student, []).append(flag)
    return tampering, person


def review_flags(records: list[StudentRecord]) -> OrderedDict:
    """student -> reasons to look at the submission, the verifier's two verdicts aside
    (:func:`verifier_lists`)."""
    flagged = OrderedDict()
    for record in records:
        reasons = []
        report = record.report or {}
        if report.get("status") not in (None, "graded"):
            reasons.append(f"grading {report['status']}")
        reasons += [f"error: {error}" for error in report.get("errors", [])]
        reasons += [f"review: {flag}" for flag in report.get("flags", []) if verifier_flag_kind(flag) is None]
        for cell in record.cells:
            if cell.autograded and cell.manual_score is not None:
                reasons.append(
                    f"manual score {cell.manual_score:g} on autograded cell {cell.notebook}/{cell.grade_id}: "
                    "check that an instructor set it"
                )
        if record.report is None and not record.submitted:
            continue
        if record.submitted and not record.outcomes:
            reasons.append("no autograded notebook found")
        if reasons:
            flagged[record.student] = reasons
    return flagged


def pending_manual(records: list[StudentRecord]) -> OrderedDict:
    """(notebook, grade_id) -> students whose written answer still needs manual grading."""
    pending = OrderedDict()
    for record in records:
        for cell in record.cells:
            if not cell.autograded:
                pending.setdefault((cell.notebook, cell.grade_id), [])
                if cell.needs_manual_grade:
                    pending[(cell.notebook, cell.grade_id)].append(record.student)
    return pending


# -- the plots -----------------------------------------------------------------------------------


def _png(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width=7.5, height=3.5):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def plot_scores(records: list[StudentRecord]) -> str:
    submitted = [r for r in records if r.submitted]
    totals = [r.total for r in submitted]
    autos = [sum(c.score for c in r.cells if c.autograded) for r in submitted]
    maximum = max((r.max_total for r in records), default=1.0) or 1.0
    figure, axis = _figure()
    bins = [i * maximum / 20 for i in range(21)]
    axis.hist(
        [totals, autos],
        bins=bins,
        label=["total so far", "autograded points"],
        color=["#4c72b0", "#dd8452"],
        edgecolor="white",
    )
    axis.set_xlim(0, maximum)
    axis.set_xlabel(f"points (of {maximum:g})")
    axis.set_ylabel("students")
    axis.yaxis.get_major_locator().set_params(integer=True)
    axis.legend()
    axis.set_title("Score distribution")
    return _png(figure)


def plot_pass_rates(rates: OrderedDict) -> str:
    labels = [grade_id for (_, grade_id) in rates]
    values = [100.0 * passed / graded if graded else 0.0 for passed, graded in rates.values()]
    figure, axis = _figure(7.5, max(2.5, 0.32 * len(labels) + 1))
    positions = list(range(len(labels)))[::-1]
    colours = ["#55a868" if v >= 80 else "#ccb974" if v >= 50 else "#c44e52" for v in values]
    axis.barh(positions, values, color=colours)
    axis.set_yticks(positions, labels)
    axis.set_xlim(0, 100)
    axis.set_xlabel("% of graded submissions that pass")
    axis.set_title("Pass rate per test cell")
    for position, value in zip(positions, values):
        axis.text(min(value + 1, 92), position, f"{value:.0f}%", va="center", fontsize=8)
    return _png(figure)


def plot_failures(failures: list) -> str:
    top = failures[:10]
    figure, axis = _figure(7.5, max(2.5, 0.4 * len(top) + 1))
    positions = list(range(len(top)))[::-1]
    labels = [message if len(message) <= 60 else message[:57] + "…" for message, *_ in top]
    axis.barh(positions, [count for _, count, *_ in top], color="#c44e52")
    axis.set_yticks(positions, labels, fontsize=8)
    axis.set_xlabel("failing test cells")
    axis.xaxis.get_major_locator().set_params(integer=True)
    axis.set_title("Most frequent failure messages")
    return _png(figure)


def plot_times(records: list[StudentRecord]) -> str:
    timed = [
        (r.student, float(r.report["seconds"]), r.report.get("status"))
        for r in records
        if r.report and r.report.get("seconds") is not None
    ]
    figure, axis = _figure(7.5, max(2.5, 0.32 * len(timed) + 1))
    positions = list(range(len(timed)))[::-1]
    axis.barh(
        positions,
        [seconds for _, seconds, _ in timed],
        color=["#4c72b0" if status == "graded" else "#c44e52" for *_, status in timed],
    )
    axis.set_yticks(positions, [student for student, *_ in timed])
    axis.set_xlabel("seconds (the grading report's time per submission)")
    axis.set_title("Grading time per submission")
    return _png(figure)


# -- the page ------------------------------------------------------------------------------------

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 70em; color: #24292f; padding: 0 1em; }
h1 { border-bottom: 2px solid #d0d7de; padding-bottom: .3em; }
h2 { margin-top: 2em; border-bottom: 1px solid #d0d7de; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: 90%; }
th, td { border: 1px solid #d0d7de; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; }
.cards { display: flex; gap: 1em; flex-wrap: wrap; }
.card { border: 1px solid #d0d7de; border-radius: 6px; padding: .6em 1em; min-width: 9em; }
.card b { display: block; font-size: 160%; }
.warn { color: #cf222e; }
.ok { color: #1a7f37; }
img.plot { max-width: 100%; border: 1px solid #eaeef2; }
code { background: #f6f8fa; padding: 0 .2em; }
"""


def _esc(value) -> str:
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "\n".join(
        "<tr>"
        + "".join(f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>" for i, cell in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


def _img(data: str, alt: str) -> str:
    return f'<img class="plot" alt="{_esc(alt)}" src="data:image/png;base64,{data}">'


def _who(record: StudentRecord) -> str:
    name = " ".join(part for part in (record.first_name, record.last_name) if part)
    return f"{_esc(record.student)}" + (f" ({_esc(name)})" if name else "")


def _flag_table(flags: OrderedDict, by_student: dict) -> str:
    rows = [
        [
            _who(by_student[s]) if s in by_student else _esc(s),
            "<ul>" + "".join(f"<li>{_esc(flag)}</li>" for flag in items) + "</ul>",
        ]
        for s, items in flags.items()
    ]
    return _table(["student", "test cells"], rows)


def render(records: list[StudentRecord], assignment: str, has_report: bool) -> str:
    submitted = [r for r in records if r.submitted]
    totals = [r.total for r in submitted]
    maximum = max((r.max_total for r in records), default=0.0)
    rates = pass_rates(records)
    failures = failure_messages(records)
    flagged = review_flags(records)
    tampering, person = verifier_lists(records)
    pending = pending_manual(records)
    by_student = {r.student: r for r in records}
    pending_count = sum(len(students) for students in pending.values())
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_esc(assignment)}: class report</title>",
        f"<style>{_CSS}</style></head><body>",
        f'<h1 id="title">{_esc(assignment)}: class report</h1>',
        f"<p>Generated {_esc(_dt.datetime.now().strftime('%Y-%m-%d %H:%M'))} from the gradebook"
        + (
            " and the grading report"
            if has_report
            else " (no grading report given: times and review flags "
            "from <code>hw5-autograde --report</code> are missing)"
        )
        + ".</p>",
        '<div class="cards">',
        f'<div class="card"><b>{len(submitted)}</b>submissions ({len(records)} students)</div>',
        f'<div class="card"><b>{statistics.mean(totals) if totals else 0:.1f}</b>mean of {maximum:g} points</div>',
        f'<div class="card"><b>{statistics.median(totals) if totals else 0:.1f}</b>median</div>',
        f'<div class="card"><b class="{"warn" if tampering else "ok"}">{len(tampering)}</b>suspected tampering</div>',
        f'<div class="card"><b class="{"warn" if person else "ok"}">{len(person)}</b>need a person</div>',
        f'<div class="card"><b class="{"warn" if flagged else "ok"}">{len(flagged)}</b>flagged for review</div>',
        f'<div class="card"><b class="{"warn" if pending_count else "ok"}">{pending_count}</b>answers to grade by hand</div>',
        "</div>",
    ]

    parts.append('<h2 id="scores">Score distribution</h2>')
    if submitted:
        parts.append(_img(plot_scores(records), "Score distribution"))
        rows = [
            [_who(r), f"{r.total:g}", f"{sum(c.score for c in r.cells if c.autograded):g}", str(len(r.pending))]
            for r in sorted(submitted, key=lambda r: -r.total)
        ]
        parts.append(
            _table(["student", f"total so far (of {maximum:g})", "autograded", "answers to grade"], rows, {1, 2, 3})
        )
    else:
        parts.append("<p>No submission in the gradebook yet.</p>")

    parts.append('<h2 id="pass-rates">Pass rate per test cell</h2>')
    if rates:
        parts.append(_img(plot_pass_rates(rates), "Pass rate per test cell"))
        rows = [
            [_esc(grade_id), _esc(notebook), f"{passed}/{graded}", f"{100.0 * passed / graded:.0f}%" if graded else "-"]
            for (notebook, grade_id), (passed, graded) in rates.items()
        ]
        parts.append(_table(["test cell", "notebook", "passed", "rate"], rows, {2, 3}))

    parts.append('<h2 id="failures">Most frequent failure messages</h2>')
    if failures:
        parts.append(_img(plot_failures(failures), "Most frequent failure messages"))
        rows = [
            [str(count), f"<code>{_esc(message)}</code>", _esc(", ".join(cells)), _esc(", ".join(students))]
            for message, count, students, cells in failures[:20]
        ]
        parts.append(
            "<p>Numbers with decimals or three or more digits are shown as <code>&lt;x&gt;</code> and "
            "<code>&lt;n&gt;</code>, so that the same mistake groups.</p>"
        )
        parts.append(_table(["count", "message", "test cells", "students"], rows, {0}))
    else:
        parts.append('<p class="ok">No test failed.</p>')

    parts.append('<h2 id="times">Grading time per submission</h2>')
    if any(r.report and r.report.get("seconds") is not None for r in records):
        parts.append(_img(plot_times(records), "Grading time per submission"))
        seconds = [float(r.report["seconds"]) for r in records if r.report and r.report.get("seconds") is not None]
        parts.append(
            f"<p>{len(seconds)} submissions: median {statistics.median(seconds):.0f} s, "
            f"longest {max(seconds):.0f} s.</p>"
        )
    else:
        parts.append(
            "<p>No grading report given (<code>--report</code>, from <code>hw5-autograde --report</code>).</p>"
        )

    parts.append('<h2 id="tampering">Suspected tampering</h2>')
    parts.append(
        "<p>Test cells that passed in the student's kernel and failed when re-checked outside it, "
        "on models the verifier read and rebuilt: the kernel's verdict was not the work's.</p>"
    )
    parts.append(_flag_table(tampering, by_student) if tampering else '<p class="ok">None.</p>')
    parts.append('<h2 id="needs-person">Needs a person</h2>')
    parts.append(
        "<p>Test cells the grader could not re-check on its own (a limit of the grader, named "
        "below; no accusation). Their points are held: look at the work, and set the points in "
        "the formgrader.</p>"
    )
    parts.append(_flag_table(person, by_student) if person else '<p class="ok">None.</p>')

    parts.append('<h2 id="review">Flagged for review</h2>')
    if flagged:
        rows = [
            [
                _who(by_student[s]) if s in by_student else _esc(s),
                "<ul>" + "".join(f"<li>{_esc(reason)}</li>" for reason in reasons) + "</ul>",
            ]
            for s, reasons in flagged.items()
        ]
        parts.append(_table(["student", "why"], rows))
    else:
        parts.append('<p class="ok">Nothing flagged.</p>')

    parts.append('<h2 id="manual">Waiting for manual grading</h2>')
    if pending:
        rows = [
            [_esc(grade_id), _esc(notebook), str(len(students)), _esc(", ".join(students)) or "-"]
            for (notebook, grade_id), students in pending.items()
        ]
        parts.append(_table(["answer", "notebook", "waiting", "students"], rows, {2}))
        parts.append(
            "<p>Grade them in the formgrader (Formgrader → Manual Grading); the points add to the autograded ones.</p>"
        )
    else:
        parts.append("<p>This assignment has no manually graded answers.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(root: Path, assignment: str = "hw5", report: Path | None = None, out: Path | None = None) -> Path:
    records = collect(root, assignment, report)
    out = out or root / "reports" / "class-report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(records, assignment, report is not None), encoding="utf-8")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """hw5-class-report's options, which ``hw5 report`` shares."""
    from graders.cli import add_course_arguments

    add_course_arguments(parser)
    parser.add_argument("--report", type=Path, help="the JSON report of hw5-autograde --report")
    parser.add_argument("--out", type=Path, help="the HTML file (default: COURSE/reports/class-report.html)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="hw5-class-report", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    path = write_report(args.course.resolve(), args.assignment, args.report, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
