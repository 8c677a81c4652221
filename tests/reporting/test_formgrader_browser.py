"""Manual grading in nbgrader's formgrader, in headless Chromium, the way a grader does it.

A scratch course with one submission, ``carol``: the untouched release with one written
answer typed in (nbgrader scores an answer left as released 0 without asking anyone, so
it would not wait for a grader). ``hw5-autograde`` grades it in seconds: nothing trains.
Then a Jupyter server with nbgrader's formgrader extension runs in the course root, as an
instructor starts it, and Chromium goes Formgrader → Manual Grading → hw5 →
hw5_part_a_written → carol's submission, types a score and a comment for ``answer_1_2``
and leaves each field (the formgrader saves on ``change``). Then:

- the gradebook (``nbgrader.api.Gradebook``) holds that manual score and comment;
- ``hw5-export`` puts the score in the LMS CSV's ``Part A manual`` column;
- ``hw5-class-report`` no longer lists the answer as waiting (it did before).

Skipped, with the reason, where Chromium, its driver or Selenium is missing
(test_browser's ``_missing``); the screenshot is kept like test_browser's.
"""

from __future__ import annotations

import csv
import shutil
import time
from pathlib import Path

import nbformat
import pytest

from course.test_exchange_roundtrip import (
    ASSIGNMENT,
    base_environment,
    course_command,
    course_config,
    needs_bwrap,
    run,
    scratch_course,
)
from reporting.test_browser import _missing, artifact_path, browser, full_page_screenshot, serve_jupyter  # noqa: F401 (fixture)

pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")

STUDENT = "carol"
NOTEBOOK = "hw5_part_a_written"
ANSWER = "answer_1_2"
WRITTEN = "Dropout randomly zeroes activations during training, so the network cannot rely on any one unit."
SCORE = 1.5
COMMENT = "Right idea; say why this reduces overfitting. (formgrader e2e)"


# -- the graded course and the formgrader -----------------------------------------------------------


@pytest.fixture
def graded_course(tmp_path):
    """A scratch course with carol's submission (the release plus one written answer), autograded."""
    env = base_environment(JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"))
    root = scratch_course(tmp_path / "course", env)
    submission = root / "submitted" / STUDENT / ASSIGNMENT
    shutil.copytree(root / "release" / ASSIGNMENT, submission)
    path = submission / f"{NOTEBOOK}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    cell = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == ANSWER)
    cell.source = WRITTEN
    nbformat.write(notebook, path)
    report = root / "report.json"
    run([*course_command("hw5-autograde"), ASSIGNMENT, "--report", str(report)], root, env, timeout=900)
    return root, report, env


@pytest.fixture
def formgrader(graded_course, tmp_path):
    """``jupyter server`` in the course root (nbgrader's formgrader is a server extension,
    enabled by its package); yields its URL and token."""
    root, _, env = graded_course
    env = {
        **env,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
    }
    with serve_jupyter("server", root, env, tmp_path / "jupyter-server.log", "/formgrader/api/assignments") as served:
        yield served


# -- what the gradebook, the export and the class report say --------------------------------------------


def gradebook_entry(root: Path) -> tuple:
    """(needs_manual_grade, manual_score, max_score, manual_comment) of carol's answer."""
    from nbgrader.api import Gradebook

    with Gradebook(course_config(root).CourseDirectory.db_url) as gradebook:
        grade = gradebook.find_grade(ANSWER, NOTEBOOK, ASSIGNMENT, STUDENT)
        comment = gradebook.find_comment(ANSWER, NOTEBOOK, ASSIGNMENT, STUDENT)
        return grade.needs_manual_grade, grade.manual_score, grade.max_score, comment.manual_comment


def waiting_row(page: Path) -> dict:
    """The class report's "Waiting for manual grading" row of the answer."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(page.read_text(), "html.parser")
    table = soup.find("h2", id="manual").find_next("table")
    header = [th.get_text(strip=True) for th in table.find_all("th")]
    for tr in table.find_all("tr"):
        cells = [td.get_text(strip=True) for td in tr.find_all("td")]
        if cells and cells[0] == ANSWER:
            return dict(zip(header, cells))
    raise AssertionError(f"{ANSWER} is not in the class report's manual-grading table")


def class_report(root: Path, report: Path, env: dict, out: Path) -> dict:
    run([*course_command("hw5-class-report"), ASSIGNMENT, "--report", str(report), "--out", str(out)], root, env)
    return waiting_row(out)


def lms_part_a_manual(root: Path, report: Path, env: dict) -> float:
    out = root / "reports"
    run([*course_command("hw5-export"), ASSIGNMENT, "--report", str(report), "--out", str(out)], root, env)
    with (out / "lms-grades.csv").open(newline="") as handle:
        rows = {row["Student ID"]: row for row in csv.DictReader(handle)}
    column = next(name for name in rows[STUDENT] if name.startswith("Part A manual"))
    return float(rows[STUDENT][column])


def check_saved(entry: tuple) -> None:
    needs_manual, score, _, comment = entry
    assert score == SCORE, f"the gradebook's manual score is {score}, not the {SCORE} typed in the formgrader"
    assert comment == COMMENT, f"the gradebook's comment is {comment!r}"
    assert not needs_manual


def test_the_saved_check_can_fail():
    check_saved((False, SCORE, 2.0, COMMENT))
    for entry in ((True, None, 2.0, None), (False, SCORE, 2.0, None), (False, 2.0, 2.0, COMMENT)):
        with pytest.raises(AssertionError):
            check_saved(entry)


# -- the grader's clicks ------------------------------------------------------------------------------


def _click_link(driver, text: str, timeout: float = 30):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    link = WebDriverWait(driver, timeout).until(ec.element_to_be_clickable((By.LINK_TEXT, text)))
    link.click()


def _type_into(driver, element, text: str) -> None:
    """Focus a field, replace its text, and leave it with Tab (the formgrader saves on change)."""
    from selenium.webdriver.common.keys import Keys

    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    element.click()
    element.clear()
    element.send_keys(text)
    element.send_keys(Keys.TAB)


@pytest.mark.e2e
@needs_bwrap
def test_grader_scores_a_written_answer_in_the_formgrader(graded_course, formgrader, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    root, report, env = graded_course
    needs_manual, score, max_score, _ = gradebook_entry(root)
    assert needs_manual and score is None and max_score >= SCORE, "carol's answer does not wait for a grader"
    before = class_report(root, report, env, tmp_path / "class-report-before.html")
    assert before["waiting"] == "1" and STUDENT in before["students"], before

    started = time.monotonic()
    url, token = formgrader
    browser.get(f"{url}/formgrader?token={token}")  # redirects to Manage Assignments
    WebDriverWait(browser, 30).until(lambda d: "manage_assignments" in d.current_url)
    _click_link(browser, "Manual Grading")
    _click_link(browser, ASSIGNMENT)
    _click_link(browser, NOTEBOOK)
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "td.name a"))
    submission = next(a for a in browser.find_elements(By.CSS_SELECTOR, "td.name a") if a.is_displayed())
    submission.click()

    score_box = WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, ANSWER))
    assert WRITTEN in browser.find_element(By.TAG_NAME, "body").text  # carol's answer is on the page
    _type_into(browser, score_box, str(SCORE))
    _type_into(browser, browser.find_element(By.ID, f"{ANSWER}-comment"), COMMENT)

    deadline = time.monotonic() + 30
    while (entry := gradebook_entry(root))[1] != SCORE or entry[3] != COMMENT:
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    full_page_screenshot(browser, artifact_path(tmp_path, "formgrader-manual-grading.png"))
    print(f"formgrader: {time.monotonic() - started:.0f} s from opening to saved")
    check_saved(entry)

    # The score reaches the exports and the class report.
    assert lms_part_a_manual(root, report, env) == SCORE
    after = class_report(root, report, env, tmp_path / "class-report-after.html")
    assert after["waiting"] == "0" and STUDENT not in after["students"], after
    # And it survives a reload of the page: the formgrader shows what the gradebook holds.
    browser.refresh()
    shown = WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, ANSWER).get_attribute("value"))
    assert float(shown) == SCORE
    assert browser.find_element(By.ID, f"{ANSWER}-comment").get_attribute("value") == COMMENT


# -- Formgrader's Autograde button grades as hw5-autograde does ------------------------------------------


@pytest.fixture
def toy_formgrader(tmp_path):
    """A toy course with a correct, a wrong and a tampering submission (test_nbgrader_door's),
    its students in the gradebook, and a Jupyter server with the formgrader in its root."""
    from nbgrader.api import Gradebook

    from grading.test_nbgrader_door import SOLUTIONS, _course

    root = _course(tmp_path / "course")
    with Gradebook(course_config(root).CourseDirectory.db_url) as gradebook:
        for student in SOLUTIONS:
            gradebook.update_or_create_student(student, first_name=student, last_name="Toy")
    env = base_environment(
        JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"),
        JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"),
        IPYTHONDIR=str(tmp_path / "ipython"),
    )
    with serve_jupyter("server", root, env, tmp_path / "jupyter-server.log", "/formgrader/api/assignments") as served:
        yield root, served


def _click_autograde(driver, student: str, timeout: float = 600) -> str:
    """Click the Autograde button (the flash icon) of ``student``'s row on Manage Submissions;
    returns the text of the dialog nbgrader shows when the request ends, and closes it."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    row = f"//tr[td[normalize-space()='{student}']]"
    try:
        WebDriverWait(driver, 60).until(
            lambda d: d.find_elements(By.XPATH, f"{row}//td[contains(@class, 'autograde')]/a")
        )
    except TimeoutException:
        raise AssertionError(
            f"no Autograde button for {student} on {driver.current_url}:\n"
            f"{driver.find_element(By.TAG_NAME, 'body').text[-2000:]}"
        ) from None
    driver.find_element(By.XPATH, f"{row}//td[contains(@class, 'autograde')]/a").click()
    dialog = WebDriverWait(driver, timeout).until(
        lambda d: next(
            (m for m in d.find_elements(By.CSS_SELECTOR, "#success-modal, #error-modal") if m.is_displayed()), None
        )
    )
    text = dialog.text
    driver.execute_script(
        "$('.modal').modal('hide').remove(); $('.modal-backdrop').remove(); $('body').removeClass('modal-open');"
    )
    return text


@pytest.mark.batch
@needs_bwrap
def test_formgraders_autograde_button_grades_like_hw5_autograde(toy_formgrader, browser, tmp_path):
    from toy_course import grade_toy

    from grading.test_nbgrader_door import EXPECTED, SOLUTIONS, _course, _total

    root, (url, token) = toy_formgrader
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{url}/formgrader?token={token}")  # logs in, then redirects to Manage Assignments
    WebDriverWait(browser, 30).until(lambda d: "manage_assignments" in d.current_url)
    browser.get(f"{url}/formgrader/manage_submissions/toy")
    dialogs = {student: _click_autograde(browser, student) for student in SOLUTIONS}
    full_page_screenshot(browser, artifact_path(tmp_path, "formgrader-autograde.png"))
    for student, text in dialogs.items():
        assert "Successfully autograded" in text, f"{student}: {text[-2000:]}"
    clicked = {student: _total(root, student) for student in SOLUTIONS}

    ours = _course(tmp_path / "hw5-autograde")
    grade_toy(ours)
    assert clicked == {student: _total(ours, student) for student in SOLUTIONS} == EXPECTED
