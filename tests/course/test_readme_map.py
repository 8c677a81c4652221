"""The README's map of the code: every path it names exists, and so does every function."""

from __future__ import annotations

import ast
import re

from graders.course import COURSE_ROOT

README = (COURSE_ROOT / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_every_path_in_the_module_map_exists():
    section = _section("Where things live")
    paths = re.findall(r"`(graders/[\w/]+(?:\.py)?/?)(?::\w+)?`", section)
    # A package's row names its modules without the folder: `| `graders/grading/` | ... | `intake.py` ...`
    for package, rest in re.findall(r"^\| `(graders/\w+/)` \|(.*)$", section, flags=re.MULTILINE):
        paths += [package + name for name in re.findall(r"`(\w+\.(?:py|json))`", rest)]
    assert len(paths) >= 30
    missing = [path for path in paths if not (COURSE_ROOT / path).exists()]
    assert not missing, f"the README's module map names paths that do not exist: {missing}"


def test_every_behaviour_points_at_a_definition_that_exists():
    pointers = re.findall(r"`(graders/[\w/]+\.py):(\w+)`", _section("Where things live"))
    assert len(pointers) >= 10
    wrong = []
    for path, name in pointers:
        file = COURSE_ROOT / path
        if not file.is_file():
            wrong.append(f"{path} (no such file)")
            continue
        defined = {
            node.name
            for node in ast.walk(ast.parse(file.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
        }
        if name not in defined:
            wrong.append(f"{path}:{name}")
    assert not wrong, f"the README points at definitions that do not exist: {wrong}"
