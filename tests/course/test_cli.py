"""One command, ``hw5 <command>``: every command listed, each with the options of its old
name (``hw5-autograde`` ..., ``python -m graders....``), which keeps working, and the
course's options (``--course`` and the assignment) defined once.

In-process and fast: the parsers are built and read, no command runs (each module's
``run`` is replaced where a test parses real arguments)."""

from __future__ import annotations

import argparse
import ast
import importlib
import sys

import pytest

from graders import cli
from graders.course import COURSE_ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

SCRIPTS = tomllib.loads((COURSE_ROOT / "pyproject.toml").read_text())["project"]["scripts"]

#: The commands the issue asks for; ``hw5`` may have more.
REQUIRED = {"autograde", "feedback", "export", "report", "release", "calibrate", "selftest", "demo"}
#: The commands that work on a course's assignment, and so share --course and the assignment.
ON_A_COURSE = {"autograde", "feedback", "export", "report"}

#: One realistic command line per command (after the command's name), parsed both ways.
SAMPLE_ARGV = {
    "release": ["--check"],
    "autograde": [
        "toy",
        "--course",
        "/somewhere/course",
        "--student",
        "a",
        "b",
        "--workers",
        "2",
        "--budget",
        "full",
        "--no-canary",
        "--report",
        "r.json",
    ],
    "feedback": ["toy", "--student", "bob", "--student", "eve"],
    "export": ["toy", "--out", "out", "--report", "r.json"],
    "report": ["--course", "/somewhere/course", "--out", "x.html"],
    "demo": ["--skip-release"],
    "calibrate": ["--budget", "fast", "--seeds", "1", "2", "--no-mutants"],
    "expectations": [],
    "selftest": [],
    "data": ["record", "some/mnist.npz"],
}


class _Parsed(Exception):
    """Raised in place of parsing: carries the parser that was about to parse."""

    def __init__(self, parser):
        super().__init__()
        self.parser = parser


def _alias(name: str):
    """The old way in for ``hw5 name``: (its main function, the argv words before the options)."""
    alias = cli.COMMANDS[name].alias
    if alias.startswith("python -m "):
        module, *prefix = alias.split()[2:]
        loaded = importlib.import_module(module)
        if not hasattr(loaded, "main"):  # a package: python -m runs its __main__
            loaded = importlib.import_module(module + ".__main__")
        return loaded.main, prefix
    module, function = SCRIPTS[alias].split(":")
    return getattr(importlib.import_module(module), function), []


def _alias_parser(name: str, monkeypatch) -> argparse.ArgumentParser:
    """The parser the old name builds (its sub-parser, for ``python -m graders.sandbox selftest``)."""
    main, prefix = _alias(name)

    def capture(self, args=None, namespace=None):
        raise _Parsed(self)

    with monkeypatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", capture)
        with pytest.raises(_Parsed) as parsed:
            main([*prefix])
    parser = parsed.value.parser
    for word in prefix:
        parser = _subparsers(parser)[word]
    return parser


def _hw5_parser(name: str) -> argparse.ArgumentParser:
    return _subparsers(cli.build_parser(name))[name]


def _subparsers(parser: argparse.ArgumentParser) -> dict:
    return next(action.choices for action in parser._actions if isinstance(action, argparse._SubParsersAction))


def _options(parser: argparse.ArgumentParser) -> dict:
    """Every option and positional, with what decides its parsing; nested commands too."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found[action.dest] = {word: _options(sub) for word, sub in action.choices.items()}
        else:
            found[tuple(action.option_strings) or action.dest] = (
                type(action).__name__,
                action.dest,
                action.nargs,
                action.default,
                action.type,
                tuple(action.choices) if action.choices else None,
            )
    return found


def _usage_words(text: str, prog: str) -> set[str]:
    """The option strings in a --help page's usage (the program's own name left out)."""
    usage = text.split("\n\n")[0].replace("usage: " + prog, "", 1)
    return {word.strip("[]").split("=")[0] for word in usage.split() if word.strip("[").startswith("-")}


def test_hw5_help_lists_every_command_with_its_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    page = " ".join(capsys.readouterr().out.split())
    assert REQUIRED <= set(cli.COMMANDS)
    missing = [name for name, entry in cli.COMMANDS.items() if f"{name} {entry.summary}" not in page]
    assert not missing, f"hw5 --help does not list these commands with their line: {missing}"


def test_hw5_help_imports_no_command(monkeypatch):
    """``hw5 --help`` answers at once: it builds no command's options (some import TensorFlow)."""
    loaded = []
    monkeypatch.setattr(cli.Command, "load", lambda self: loaded.append(self.module))
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert loaded == []


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_a_command_and_its_old_name_have_the_same_options(name, monkeypatch):
    ours, theirs = _options(_hw5_parser(name)), _options(_alias_parser(name, monkeypatch))
    assert ours == theirs, f"hw5 {name} and {cli.COMMANDS[name].alias} parse differently"


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_a_command_and_its_old_name_show_the_same_usage(name, capsys, monkeypatch):
    main, prefix = _alias(name)
    with pytest.raises(SystemExit):
        cli.main([name, "--help"])
    ours = capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([*prefix, "--help"])
    theirs = capsys.readouterr().out
    assert ours.startswith(f"usage: hw5 {name} ")
    our_words = _usage_words(ours, f"hw5 {name}")
    their_prog = (
        theirs.split()[1] if not cli.COMMANDS[name].alias.startswith("python -m ") else cli.COMMANDS[name].alias
    )
    assert our_words == _usage_words(theirs, their_prog)
    assert our_words >= {"-h"}


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_hw5_runs_the_old_names_command_with_the_same_arguments(name, monkeypatch):
    entry = cli.COMMANDS[name]
    module = entry.load()
    calls = []
    monkeypatch.setattr(module, entry.run, lambda args: calls.append(vars(args)) or 7)
    main, prefix = _alias(name)
    assert main([*prefix, *SAMPLE_ARGV[name]]) == 7
    assert cli.main([name, *SAMPLE_ARGV[name]]) == 7
    old, new = calls
    assert new.pop("hw5_command") == name
    old.pop("cmd", None)  # python -m graders.sandbox's own choice of command
    assert new == old


def test_the_scripts_point_at_callables():
    assert SCRIPTS["hw5"] == "graders.cli:main"
    for name, target in SCRIPTS.items():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), f"{name} = {target}"


def test_the_old_names_stay():
    old = {"hw5-release", "hw5-demo", "hw5-autograde", "hw5-feedback", "hw5-export", "hw5-class-report"}
    assert old <= set(SCRIPTS)
    for entry in cli.COMMANDS.values():  # each command's old name runs the same module
        if not entry.alias.startswith("python -m "):
            assert SCRIPTS[entry.alias] == f"{entry.module}:main"


def test_the_course_options_are_defined_once():
    """``--course`` and the assignment are added in one place, ``cli.add_course_arguments``,
    and every command on a course's assignment gets them from there."""
    where = []
    for path in sorted((COURSE_ROOT / "graders").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", None) == "add_argument"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and node.args[0].value in ("--course", "assignment")
            ):
                where.append((path.relative_to(COURSE_ROOT).as_posix(), node.args[0].value))
    assert sorted(where) == [("graders/cli.py", "--course"), ("graders/cli.py", "assignment")]

    reference = argparse.ArgumentParser()
    cli.add_course_arguments(reference)
    shared = {key: value for key, value in _options(reference).items() if key != ("-h", "--help")}
    for name in ON_A_COURSE:
        options = _options(_hw5_parser(name))
        assert {key: options.get(key) for key in shared} == shared, name


def test_course_default_is_the_current_course_or_this_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.default_course() == COURSE_ROOT
    (tmp_path / "nbgrader_config.py").write_text("")
    assert cli.default_course() == tmp_path
