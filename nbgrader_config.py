"""nbgrader configuration for the HW5 course (this repository is the course root)."""

import os

c = get_config()  # noqa: F821  (injected by nbgrader)

COURSE_ROOT = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.root = COURSE_ROOT
c.CourseDirectory.course_id = "hw5-cnn"
c.CourseDirectory.db_url = os.environ.get("HW5_DB_URL", "sqlite:///" + os.path.join(COURSE_ROOT, "gradebook.db"))
# The exchange (release_assignment, fetch_assignment, submit, collect, release_feedback,
# fetch_feedback) lives in the course root, not in nbgrader's system-wide default, which
# does not exist on a fresh machine ("Unwritable directory"). HW5_EXCHANGE overrides it
# (e.g. a shared /srv/nbgrader/exchange on a multi-user server). nbgrader needs it to
# exist and to be world-writable with the sticky bit (students write into it; none may
# delete another's files): created here, on demand. Git ignores exchange/.
EXCHANGE_ROOT = os.environ.get("HW5_EXCHANGE") or os.path.join(COURSE_ROOT, "exchange")
c.Exchange.root = EXCHANGE_ROOT
try:
    if not os.path.isdir(EXCHANGE_ROOT):
        os.makedirs(EXCHANGE_ROOT)
        os.chmod(EXCHANGE_ROOT, 0o1777)  # after makedirs: its mode= is masked by the umask
except OSError:  # e.g. a read-only checkout: nbgrader reports the unwritable exchange itself
    pass

# Never released nor copied into submissions: caches, checkpoints, local data.
c.CourseDirectory.ignore = [
    ".ipynb_checkpoints",
    "*.pyc",
    "__pycache__",
    "mnist.npz",
    ".DS_Store",
]

# Per-cell time limit of nbgrader's own commands (`nbgrader validate`, plain `nbgrader
# autograde`), in seconds. hw5-autograde does not read it: its limits are
# SandboxLimits.cell_timeout_s (graders/sandbox/limits.py, the same 300 s; a test keeps
# them equal) and FULL_BUDGET_TIMEOUTS (graders/grading/batch.py) for --budget full.
c.Execute.timeout = 300

# nbgrader's own autograde (the command, and Formgrader's Autograde button) grades the way
# hw5-autograde does: nbgrader's Execute is replaced by one that runs the student's job in
# the sandbox, with the export cells and the out-of-kernel verifier, after the sandbox
# self-test and the canary (graders/grading/nbgrader_door.py). Student code never runs in
# nbgrader's own process; when that cannot be done safely, the notebook is refused.
c.Autograde.autograde_preprocessors = [
    "graders.grading.nbgrader_door.SandboxedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]

# A student who deletes a test cell gets it back, run, instead of "needs manual grade".
c.OverwriteCells.add_missing_cells = True

# TensorFlow and absl write log lines to stderr, and any stderr in a test cell
# scores it zero. Drop a stderr output only when every line of it is such a log line.
_TF_LOG_LINE = (
    r"(?:\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d+: [IWEF] \S+:\d+\] .*"  # C++ LOG()
    r"|[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\] .*"  # absl
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|To enable the following instructions: .* in other operations, rebuild TensorFlow with the appropriate compiler flags\."
    r"|\s*)"
)
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"\A(?:" + _TF_LOG_LINE + r"(?:\n|\Z))+\Z"

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Feedback never shows hidden tests, rubrics or the grading code (graders/reporting/feedback.py);
# nbgrader's default would render hidden tests in full (upstream #917, #1363).
# Every page is scanned for grader-only lines before nbgrader writes it, whichever way
# feedback is generated (hw5-feedback, nbgrader generate_feedback, Formgrader's button).
c.GenerateFeedback.exporter_class = "graders.reporting.feedback.LeakCheckedHTMLExporter"
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "graders.reporting.feedback.FeedbackRedactor",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
# Rubrics are locked markdown cells holding a mark scheme (stripped from the release,
# restored for graders), not task cells.
c.ClearMarkScheme.enforce_metadata = False
