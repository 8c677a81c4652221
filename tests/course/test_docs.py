"""The README stays short and its documents stay reachable: the README is at most 150
lines, every relative link in it and in docs/*.md names a file that exists (no anchors:
headings get reworded), and every pointer to the documentation that the grading code
gives ("see README, 'X'", "docs/y.md, 'Z'") names a document and a section that exist."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

from graders.course import COURSE_ROOT

README = COURSE_ROOT / "README.md"
DOCS = sorted((COURSE_ROOT / "docs").glob("*.md"))
MAX_README_LINES = 150

#: [text](target) and [text]: target, outside code spans; images too.
_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.MULTILINE)
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)
#: A pointer in the code: README or docs/x.md, then optionally a quoted section name.
_POINTER = re.compile(r"\b(README(?:\.md)?|docs/[\w./-]+?\.md)\b(?:,\s*(?:'([^']+)'|\"([^\"]+)\"))?")


def links(markdown: str) -> list[str]:
    text = _CODE.sub("", markdown)
    return _INLINE_LINK.findall(text) + _REFERENCE_LINK.findall(text)


def relative_links(path: Path) -> list[str]:
    return [
        target for target in links(path.read_text()) if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE)
    ]  # http:, mailto: ...


def headings(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    return {title.strip() for title in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.MULTILINE)}


def code_texts(path: Path) -> list[str]:
    """Every string constant (implicit concatenations joined, f-strings' literal parts
    included) and every comment of a Python file, whitespace collapsed."""
    source = path.read_text()
    texts = [
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]
    texts += [
        token.string
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    ]
    return [" ".join(text.split()) for text in texts]


def pointer_problems(path: Path, root: Path = COURSE_ROOT) -> list[str]:
    problems = []
    for text in code_texts(path):
        for document, single, double in _POINTER.findall(text):
            target = root / ("README.md" if document.startswith("README") else document)
            section = single or double
            if not target.is_file():
                problems.append(f"{path.relative_to(root)}: {document} does not exist")
            elif section and section not in headings(target):
                problems.append(f"{path.relative_to(root)}: {document} has no section {section!r}")
    return problems


def test_the_readme_is_short():
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_README_LINES, (
        f"README.md has {lines} lines (at most {MAX_README_LINES}): move the detail into docs/ and link it"
    )


def test_there_are_documents_and_the_readme_links_each():
    assert DOCS, "docs/ holds no document"
    linked = {(README.parent / target).resolve() for target in relative_links(README)}
    unlinked = [doc.name for doc in DOCS if doc.resolve() not in linked]
    assert not unlinked, f"the README does not link these documents: {unlinked}"


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda path: path.relative_to(COURSE_ROOT).as_posix())
def test_every_relative_link_names_a_file_that_exists(path):
    targets = relative_links(path)
    anchored = [target for target in targets if "#" in target]
    assert not anchored, f"{path.name}: links with an anchor (headings change; link the file): {anchored}"
    missing = [target for target in targets if not (path.parent / target).exists()]
    assert not missing, f"{path.name}: links to files that do not exist: {missing}"


def test_the_code_points_at_documents_and_sections_that_exist():
    problems = [
        problem for path in sorted((COURSE_ROOT / "graders").rglob("*.py")) for problem in pointer_problems(path)
    ]
    assert not problems, "the grading code points at documentation that does not exist:\n" + "\n".join(problems)


# -- the checks themselves can fail ------------------------------------------------------------------


def test_a_broken_or_anchored_link_is_found(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "See [a](docs/nowhere.md), [b](https://example.org/x#y), `[c](not/a/link.md)`,\n"
        "[d](README.md#section) and\n\n[e]: other.md\n\n```\n[f](in/code.md)\n```\n"
    )
    assert relative_links(page) == ["docs/nowhere.md", "README.md#section", "other.md"]


def test_a_pointer_to_a_missing_document_or_section_is_found(tmp_path):
    code = tmp_path / "graders" / "module.py"
    code.parent.mkdir()
    (tmp_path / "README.md").write_text("# Title\n\n## Kept section\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "there.md").write_text("# There\n\n## Its part\n")
    code.write_text(
        '"""See README, \'Kept section\', and docs/there.md, "Its part"."""\n'
        'MESSAGE = ("see README, \'Gone " "section\'")  # see docs/missing.md\n'
        "OTHER = f\"{1} see docs/there.md, 'No such part'\"\n"
    )
    assert sorted(pointer_problems(code, root=tmp_path)) == sorted(
        [
            "graders/module.py: README has no section 'Gone section'",
            "graders/module.py: docs/there.md has no section 'No such part'",
            "graders/module.py: docs/missing.md does not exist",
        ]
    )
