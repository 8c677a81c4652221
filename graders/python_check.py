"""Before ``make setup`` installs anything: is this Python one the course runs on?

Run as a plain script by the interpreter that will build the virtual environment
(``python3 graders/python_check.py``), so it uses the standard library alone and reads
the supported range from ``pyproject.toml``'s ``requires-python`` (one home for it).
Exits 0 when it fits, 1 with one line naming the version needed and how to get it.
"""

import re
import sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def required_range(text):
    """``requires-python``'s clauses as (operator, (major, minor)) pairs, e.g.
    ``">=3.10,<3.14"`` -> [(">=", (3, 10)), ("<", (3, 14))]."""
    found = re.search(r'^requires-python\s*=\s*"([^"]+)"', text, re.MULTILINE)
    if not found:
        raise ValueError("pyproject.toml has no requires-python")
    clauses = []
    for clause in found.group(1).split(","):
        match = re.fullmatch(r"\s*(>=|<|<=|>)\s*(\d+)\.(\d+)\s*", clause)
        if not match:
            raise ValueError(f"requires-python clause {clause.strip()!r} is not of the form >=X.Y or <X.Y")
        clauses.append((match.group(1), (int(match.group(2)), int(match.group(3)))))
    return found.group(1), clauses


def fits(version, clauses):
    """Whether ``version`` (major, minor) meets every clause."""
    tests = {">=": lambda a, b: a >= b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b}
    return all(tests[operator](tuple(version[:2]), bound) for operator, bound in clauses)


def problem(version, has_venv, text):
    """The one-line refusal for this interpreter, or None when it can build the course's venv."""
    spec, clauses = required_range(text)
    shown = ".".join(str(part) for part in version[:3])
    if not fits(version, clauses):
        return (
            f"make setup: Python {shown} cannot run this course: it needs Python {spec} "
            "(TensorFlow's own range). Install one (Debian 12's python3 and Ubuntu 22.04's and "
            "24.04's fit) and run: make setup PYTHON3=/path/to/python3"
        )
    if not has_venv:
        return (
            f"make setup: Python {shown} has no venv module: install it "
            f"(Debian/Ubuntu: sudo apt-get install python{version[0]}.{version[1]}-venv)"
        )
    return None


def main():
    try:
        import ensurepip  # noqa: F401 - Debian splits venv's pip bootstrap into python3-venv
        import venv  # noqa: F401

        has_venv = True
    except ImportError:
        has_venv = False
    message = problem(tuple(sys.version_info[:3]), has_venv, PYPROJECT.read_text())
    if message:
        print(message, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
