"""hw5: the course's one command, ``hw5 <command> [options]``.

Each command's options are written once, by its module's ``add_arguments(parser)``,
which both the module's own entry point (the old names: ``hw5-autograde``,
``hw5-feedback`` ..., and ``python -m graders....``) and ``hw5 <command>`` use; ``hw5``
then calls the module's ``run(args)`` with the parsed namespace, as the old name does.

Only the chosen command's module is imported (several import nbgrader or TensorFlow), so
``hw5 --help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Command:
    module: str  #: where ``add_arguments`` and ``run`` live
    summary: str  #: the one line ``hw5 --help`` shows
    alias: str  #: the old way in, which keeps working
    add: str = "add_arguments"
    run: str = "run"

    def load(self):
        return importlib.import_module(self.module)


#: Every command, in the order ``hw5 --help`` lists them (the course's own order of work).
COMMANDS: dict[str, Command] = {
    "release": Command("graders.authoring.release", "regenerate release/hw5 (--check: only compare)", "hw5-release"),
    "autograde": Command("graders.grading.batch", "grade a class: sandboxed, verified, in parallel", "hw5-autograde"),
    "feedback": Command("graders.reporting.feedback", "write feedback pages, hidden tests redacted", "hw5-feedback"),
    "export": Command("graders.reporting.exports", "export grades: nbgrader, LMS, Canvas, Gradescope", "hw5-export"),
    "report": Command("graders.reporting.class_report", "write the class report (one HTML file)", "hw5-class-report"),
    "demo": Command("graders.demo", "release, grade the sample class, check its grades", "hw5-demo"),
    "calibrate": Command(
        "graders.authoring.calibrate",
        "calibrate the accuracy floors (thresholds.json)",
        "python -m graders.authoring.calibrate",
    ),
    "expectations": Command(
        "graders.authoring.expectations",
        "derive checks/expected.json from the reference",
        "python -m graders.authoring.expectations",
    ),
    "selftest": Command(
        "graders.sandbox.__main__",
        "check that the grading sandbox holds",
        "python -m graders.sandbox selftest",
        add="add_selftest_arguments",
        run="run_selftest",
    ),
    "data": Command(
        "graders.grading.data", "record, or print, the MNIST file grading uses", "python -m graders.grading.data"
    ),
}


def default_course() -> Path:
    """The course ``--course`` defaults to: the current folder when it holds
    ``nbgrader_config.py``, else this checkout."""
    from graders.course import COURSE_ROOT

    return Path.cwd() if (Path.cwd() / "nbgrader_config.py").is_file() else COURSE_ROOT


def add_course_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every command on a course's assignment shares: the assignment (default
    ``hw5``) and ``--course``. The one place they are defined."""
    parser.add_argument("assignment", nargs="?", default="hw5", help="the assignment (default: hw5)")
    parser.add_argument(
        "--course",
        type=Path,
        default=default_course(),
        metavar="ROOT",
        help="the course root (default: the current folder when it holds nbgrader_config.py, else this checkout)",
    )


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """``hw5``'s parser: every command listed, and ``command``'s options added (the other
    commands' are added only when they are the one chosen, to import nothing else)."""
    parser = argparse.ArgumentParser(
        prog="hw5",
        description="HW5 (CNNs on MNIST): the course's commands. `hw5 <command> --help` gives a command's options.",
        epilog="The old names still work: " + ", ".join(c.alias for c in COMMANDS.values()) + ".",
    )
    commands = parser.add_subparsers(dest="hw5_command", required=True, metavar="<command>")
    for name, entry in COMMANDS.items():
        sub = commands.add_parser(name, help=entry.summary, description=entry.summary)
        if name == command:
            getattr(entry.load(), entry.add)(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = next((word for word in argv if not word.startswith("-")), None)
    args = build_parser(chosen if chosen in COMMANDS else None).parse_args(argv)
    entry = COMMANDS[args.hw5_command]
    return getattr(entry.load(), entry.run)(args)


if __name__ == "__main__":
    sys.exit(main())
