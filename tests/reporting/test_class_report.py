"""hw5-class-report: one self-contained HTML file an instructor reads at a glance.

Checked here on the HTML source (the browser rendering is in test_browser.py): the
sections, the embedded PNGs, what each section says about a known class, and that the
file needs nothing from outside (no external URL, script or stylesheet).
"""

from __future__ import annotations

import base64
import json
import re
import shutil

import pytest
from bs4 import BeautifulSoup

from graders.reporting import class_report
from reporting.test_feedback import HW5_MUTANTS, graded_hw5_course, graded_toy_course, needs_bwrap

SECTIONS = ("scores", "pass-rates", "failures", "times", "tampering", "needs-person", "review", "manual")


def test_normalise_masks_varying_numbers_but_keeps_small_ones():
    a = class_report.normalise("The trained model reaches 0.4123 test accuracy under the 'fast' budget")
    b = class_report.normalise("The trained model reaches 0.3811 test accuracy under the 'fast' budget")
    assert a == b and "<x>" in a
    assert (
        class_report.normalise("The model made 1,024 SGD updates; ... makes 320.")
        == "The model made <n> SGD updates; ... makes <n>."
    )
    assert (
        class_report.normalise("Define model_eta_large in the TODO 1 cell.")
        == "Define model_eta_large in the TODO 1 cell."
    )
    assert "0x" in class_report.normalise("<object at 0x7f3a2b>") and "7f3a2b" not in class_report.normalise(
        "at 0x7f3a2b"
    )


def _images(document: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', document)]


def _self_contained(document: str) -> list[str]:
    soup = BeautifulSoup(document, "html.parser")
    external = [
        tag.get("src")
        for tag in soup.find_all(["img", "script", "iframe"])
        if tag.get("src") and not tag["src"].startswith("data:")
    ]
    external += [tag.get("href") for tag in soup.find_all("link")]
    return external


@pytest.fixture(scope="module")
def toy_report(tmp_path_factory):
    """The toy class, with one forged manual score and a flagged, repaired submission."""
    from nbgrader.api import Gradebook

    from graders.course import course_db_url

    source, report = graded_toy_course(tmp_path_factory)
    root = tmp_path_factory.mktemp("toy-report") / "course"
    shutil.copytree(source, root, ignore=shutil.ignore_patterns(".grading"))
    entries = json.loads(report.read_text())
    for entry in entries:
        if entry["student"] == "bob":
            entry["flags"].append("toy.ipynb: repeats grade_id test_add (a copied cell): the copy was dropped")
    edited = root / "report.json"
    edited.write_text(json.dumps(entries))
    with Gradebook(course_db_url(root)) as gradebook:
        gradebook.find_grade("test_add", "toy", "toy", "carol").manual_score = 0.5
        gradebook.db.commit()
    out = root / "class-report.html"
    assert class_report.main(["toy", "--course", str(root), "--report", str(edited), "--out", str(out)]) == 0
    return out.read_text()


@needs_bwrap
@pytest.mark.batch
def test_toy_report_is_one_self_contained_file_with_every_section(toy_report):
    soup = BeautifulSoup(toy_report, "html.parser")
    assert [h2["id"] for h2 in soup.find_all("h2")] == list(SECTIONS)
    images = _images(toy_report)
    assert len(images) == 4  # scores, pass rates, failures, times
    assert all(image.startswith(b"\x89PNG\r\n\x1a\n") and len(image) > 2000 for image in images)
    assert _self_contained(toy_report) == []
    text = soup.get_text(" ")
    assert all(student in text for student in ("alice", "bob", "carol"))


@needs_bwrap
@pytest.mark.batch
def test_toy_report_flags_repairs_and_manual_scores_on_autograded_cells(toy_report):
    soup = BeautifulSoup(toy_report, "html.parser")
    review = soup.find("h2", id="review").find_next("table").get_text(" ")
    assert "bob" in review and "repeats grade_id" in review
    assert "carol" in review and "manual score 0.5 on autograded cell toy/test_add" in review
    assert "alice" not in review


@needs_bwrap
@pytest.mark.batch
def test_toy_report_lists_answers_waiting_for_manual_grading(toy_report):
    soup = BeautifulSoup(toy_report, "html.parser")
    manual = soup.find("h2", id="manual").find_next("table")
    row = [td.get_text() for td in manual.find_all("tr")[1].find_all("td")]
    assert row == ["answer_explain", "toy", "2", "alice, bob"]  # carol left it blank: scored 0, nothing to grade


@needs_bwrap
@pytest.mark.batch
def test_toy_report_pass_rates_and_failure_messages(toy_report):
    soup = BeautifulSoup(toy_report, "html.parser")
    rates = soup.find("h2", id="pass-rates").find_next("table")
    assert [[td.get_text() for td in tr.find_all("td")] for tr in rates.find_all("tr")[1:]] == [
        ["test_add", "toy", "2/3", "67%"],
        ["test_add_more", "toy", "2/3", "67%"],
    ]
    failures = soup.find("h2", id="failures").find_next("table").get_text(" ")
    assert "add(1, 2) should be 3" in failures and "bob" in failures


def test_report_without_a_grading_report_says_what_is_missing(tmp_path):
    html = class_report.render([], "hw5", has_report=False)
    assert "no grading report given" in html and "No submission in the gradebook yet" in html


@pytest.mark.e2e
@pytest.mark.needs_mnist
@needs_bwrap
def test_hw5_class_report(tmp_path_factory):
    root, report = graded_hw5_course(tmp_path_factory)
    out = tmp_path_factory.mktemp("hw5-report") / "class-report.html"
    assert class_report.main(["hw5", "--course", str(root), "--report", str(report), "--out", str(out)]) == 0
    document = out.read_text()
    soup = BeautifulSoup(document, "html.parser")
    assert [h2["id"] for h2 in soup.find_all("h2")] == list(SECTIONS)
    assert len(_images(document)) == 4 and _self_contained(document) == []
    rates = {
        tr.find_all("td")[0].get_text(): tr.find_all("td")[2].get_text()
        for tr in soup.find("h2", id="pass-rates").find_next("table").find_all("tr")[1:]
    }
    graded = len(json.loads(report.read_text()))
    # Everyone but the untouched release passes TODO 1's tests; TODO 4's training fails for two mutants.
    assert rates["test_todo1_model"] == f"{graded - 1}/{graded}"
    passed, total = map(int, rates["test_todo4_training"].split("/"))
    assert total - passed >= 3  # untouched release, dense100 (cascade), batch-size-1024
    failures = soup.find("h2", id="failures").find_next("table").get_text(" ")
    assert "SGD updates" in failures and "batch-size-1024" in failures
    manual = soup.find("h2", id="manual").find_next("table").get_text(" ")
    assert all(answer in manual for answer in ("answer_q1", "answer_q4", "answer_1_2", "answer_2_2"))
    assert "reference" in manual and "untouched-release" not in manual
    times = soup.find("h2", id="times").find_next("p").get_text()
    assert f"{graded} submissions" in times
    for mutant in HW5_MUTANTS:
        assert mutant in soup.get_text(" ")


def test_needs_a_person_is_listed_apart_from_suspected_tampering():
    """Issue 16: the verifier's two verdicts, each in its own section; neither in the other."""
    from graders.reporting.exports import StudentRecord

    def record(student, flags):
        return StudentRecord(
            student=student, report={"student": student, "status": "graded", "flags": flags, "errors": []}
        )

    records = [
        record(
            "honest",
            [
                "hw5_part_b_cnn.ipynb: test_todo5_architecture: needs a person: could not verify out "
                "of kernel: layer class 'Lambda' is not allowed (no points until an instructor reviews it)"
            ],
        ),
        record(
            "cheat",
            [
                "hw5_part_b_cnn.ipynb: test_todo1_model: suspected tampering: passed in the kernel, "
                "failed out of kernel: lr is 0.5"
            ],
        ),
        record("repaired", ["hw5_part_b_cnn.ipynb: repeats grade_id test_add (a copied cell): the copy was dropped"]),
    ]
    tampering, person = class_report.verifier_lists(records)
    assert list(tampering) == ["cheat"] and list(person) == ["honest"]
    assert list(class_report.review_flags(records)) == ["repaired"]
    soup = BeautifulSoup(class_report.render(records, "hw5", True), "html.parser")

    def section_text(section_id):
        heading = soup.find("h2", id=section_id)
        parts = []
        for sibling in heading.find_next_siblings():
            if sibling.name == "h2":
                break
            parts.append(sibling.get_text(" "))
        return " ".join(parts)

    assert "cheat" in section_text("tampering") and "honest" not in section_text("tampering")
    assert "honest" in section_text("needs-person") and "cheat" not in section_text("needs-person")
    assert "repaired" in section_text("review") and "honest" not in section_text("review")
