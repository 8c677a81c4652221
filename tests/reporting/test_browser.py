"""In a real browser: the class report as Chromium renders it, and the student's view in JupyterLab.

Debian's Chromium (``/usr/bin/chromium``) and its driver (``/usr/bin/chromedriver``) run
headless through Selenium; nothing downloads a browser or a driver. Skipped, with the
reason, where either or Selenium is missing. Screenshots are kept as test artifacts under
``$HW5_TEST_ARTIFACTS`` (default: the test's tmp folder); their paths are printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from reporting.test_feedback import graded_hw5_course, graded_toy_course, needs_bwrap

CHROMIUM = os.environ.get("HW5_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("HW5_CHROMEDRIVER", "/usr/bin/chromedriver")


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            return f"{path} not found: install Debian's {package} (apt-get install chromium chromium-driver)"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


def artifact_path(tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("HW5_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager look for a driver online
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1280,1000",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def full_page_screenshot(driver, path: Path) -> Path:
    height = driver.execute_script("return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)")
    driver.set_window_size(1280, min(int(height) + 100, 12000))
    driver.save_screenshot(str(path))
    print(f"\nscreenshot: {path}")
    return path


def _rendered_report(driver, path: Path) -> dict:
    driver.get(path.resolve().as_uri())
    return driver.execute_script("""
        return {
          headings: Array.from(document.querySelectorAll('h1, h2')).map(h => h.textContent.trim()),
          images: Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete,
                                                         width: i.naturalWidth, height: i.naturalHeight})),
          text: document.body.innerText,
        };""")


def _check_report(rendered: dict, students: list[str]):
    assert rendered["headings"][1:] == [
        "Score distribution",
        "Pass rate per test cell",
        "Most frequent failure messages",
        "Grading time per submission",
        "Suspected tampering",
        "Needs a person",
        "Flagged for review",
        "Waiting for manual grading",
    ]
    assert rendered["headings"][0].endswith("class report")
    images = rendered["images"]
    assert [image["alt"] for image in images] == [
        "Score distribution",
        "Pass rate per test cell",
        "Most frequent failure messages",
        "Grading time per submission",
    ]
    assert all(image["complete"] and image["width"] > 100 and image["height"] > 100 for image in images), images
    missing = [student for student in students if student not in rendered["text"]]
    assert missing == []


@pytest.mark.batch  # grades the toy class
@needs_bwrap
def test_class_report_renders_in_chromium(browser, tmp_path_factory, tmp_path):
    from graders.reporting import class_report

    root, report = graded_toy_course(tmp_path_factory)
    page = class_report.write_report(root, "toy", report, tmp_path / "class-report.html")
    rendered = _rendered_report(browser, page)
    _check_report(rendered, ["alice", "bob", "carol"])
    assert "answer_explain" in rendered["text"]
    shot = full_page_screenshot(browser, artifact_path(tmp_path, "class-report-toy.png"))
    assert shot.stat().st_size > 10_000


def test_a_broken_image_is_caught(browser, tmp_path):
    """The rendering check can fail: an image that does not decode has no natural size."""
    page = tmp_path / "broken.html"
    page.write_text('<html><body><h1>x</h1><img alt="a" src="data:image/png;base64,AAAA"></body></html>')
    rendered = _rendered_report(browser, page)
    assert rendered["images"][0]["width"] == 0
    with pytest.raises(AssertionError):
        _check_report(rendered, [])


@pytest.mark.e2e
@pytest.mark.needs_mnist
@needs_bwrap
def test_hw5_class_report_renders_in_chromium(browser, tmp_path_factory, tmp_path):
    from graders.reporting import class_report

    root, report = graded_hw5_course(tmp_path_factory)
    page = class_report.write_report(root, "hw5", report, tmp_path / "class-report.html")
    rendered = _rendered_report(browser, page)
    students = [entry["student"] for entry in json.loads(report.read_text())]
    _check_report(rendered, students)
    full_page_screenshot(browser, artifact_path(tmp_path, "class-report-hw5.png"))


# -- the student's view: JupyterLab -------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_jupyter(app: str, root: Path, env: dict, log_path: Path, ready_path: str, *arguments: str):
    """``jupyter APP`` on 127.0.0.1 serving ``root``, until ``ready_path`` answers; yields
    (url, token). Stops the server and every kernel it started on the way out."""
    token, port = "hw5-" + os.urandom(8).hex(), _free_port()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("jupyter")),
                app,
                "--no-browser",
                f"--port={port}",
                "--ServerApp.port_retries=0",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.token={token}",
                f"--ServerApp.root_dir={root}",
                *arguments,
                *(["--allow-root"] if os.geteuid() == 0 else []),
            ],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    with urllib.request.urlopen(f"{url}{ready_path}?token={token}", timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"jupyter {app} did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
            yield url, token
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)  # the server and the kernels it started
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(5)


@pytest.fixture
def jupyter_lab(tmp_path):
    """JupyterLab serving a copy of release/hw5, as a student gets it; yields its URL and token."""
    from graders.course import release_dir

    work = tmp_path / "student"
    shutil.copytree(release_dir(), work)
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # Render every cell (JupyterLab 4 otherwise renders only the cells in view).
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    env = {
        **os.environ,
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    env.pop("NBGRADER_EXECUTION", None)
    with serve_jupyter(
        "lab",
        work,
        env,
        tmp_path / "jupyter-lab.log",
        "/api/status",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ) as served:
        yield served


def _run_cell(driver, cell, timeout: float, until) -> str:
    """Select a cell, run it with Shift+Enter, and wait until its output text satisfies ``until``."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", cell)
    ActionChains(driver).click(cell.find_element(By.CSS_SELECTOR, ".jp-InputArea-prompt")).perform()
    ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()

    def output(_):
        text = "\n".join(area.text for area in cell.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output"))
        return text if until(text) else False

    return WebDriverWait(driver, timeout, poll_frequency=0.5).until(output)


@pytest.mark.e2e
@pytest.mark.needs_mnist
def test_student_runs_setup_and_a_visible_test_in_jupyterlab(browser, jupyter_lab, tmp_path):
    """The untouched release in JupyterLab: the setup cell prints the data budget, and
    TODO 1's visible test fails with its message."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, token = jupyter_lab
    started = time.monotonic()
    browser.set_window_size(1280, 1000)
    browser.get(f"{url}/lab/tree/hw5_part_b_cnn.ipynb?token={token}")
    cells = WebDriverWait(browser, 60).until(
        lambda d: (
            (found := d.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Notebook .jp-Cell"))
            and len(found) >= 40
            and found
        )
    )

    def text_of(cell):
        return cell.find_element(By.CSS_SELECTOR, ".jp-InputArea-editor").text

    setup = next(cell for cell in cells if "hw5_data.prepare_session" in text_of(cell))
    budget = _run_cell(browser, setup, 90, lambda text: "HW5 data budget" in text or "Error" in text)
    assert "HW5 data budget: full (60,000 training / 10,000 test images)" in budget, budget

    test = next(cell for cell in cells if "Visible test: TODO 1 built a Keras model" in text_of(cell))
    failure = _run_cell(browser, test, 30, lambda text: "Error" in text)
    assert (
        "AssertionError: Define model_eta_large in the TODO 1 cell." in failure
        or "NameError: name 'model_eta_large' is not defined" in failure
    ), failure
    full_page_screenshot(browser, artifact_path(tmp_path, "jupyterlab-student.png"))
    print(f"JupyterLab round trip: {time.monotonic() - started:.0f} s")
