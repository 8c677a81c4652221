"""How a check reports: one clear message, no grader internals in the traceback.

nbgrader's feedback shows the traceback of a failing test cell. Every public check
is wrapped by :func:`public_check`, which re-raises a failure from the wrapper
itself (``from None``), so the traceback shows the call in the notebook and the
message, never the check's code, thresholds or expectations.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import warnings


class GradingFailure(AssertionError):
    """A check did not pass. The message says what was expected, what was found, what to try."""


#: Separates a message's sentence for the student from the detail for the instructor; the
#: feedback, exports and student pages show only what comes before it
#: (:func:`student_part`), the grading report and the class report keep the rest.
INSTRUCTOR_NOTE = "\n[for the instructor] "

#: What a student reads when the grader met a limit of its own on their work.
LIMIT_SENTENCE = (
    "The grader could not check this test on your work automatically ({what}). This is a limit "
    "of the grader, not a mistake found in your work: an instructor will look at your work and "
    "set these points."
)


class CouldNotCheck(AssertionError):
    """A check could not read the student's objects: a limit of ours, not their failure.

    Not a :class:`GradingFailure`: nothing may re-word it as one. The cell scores nothing
    until a person looks (the grading report flags it "needs a person"); the message is
    :data:`LIMIT_SENTENCE`, and the detail (our exception) follows :data:`INSTRUCTOR_NOTE`.
    """

    @classmethod
    def about(cls, what: str, detail: str = "") -> CouldNotCheck:
        """One with the student's sentence for ``what`` and ``detail`` for the instructor."""
        text = LIMIT_SENTENCE.format(what=what)
        return cls(text + (INSTRUCTOR_NOTE + detail if detail else ""))


def student_part(message: str) -> str:
    """The part of a message a student may read (without the instructor's detail)."""
    return str(message).split(INSTRUCTOR_NOTE, 1)[0]


def instructor_part(message: str) -> str:
    """The instructor's detail of a message, or ""."""
    parts = str(message).split(INSTRUCTOR_NOTE, 1)
    return parts[1] if len(parts) == 2 else ""


@contextlib.contextmanager
def quiet():
    """Silence Python warnings and library log lines while a check runs.

    Any stderr output in a test cell zeroes it in nbgrader, and calling a
    student's builder may warn (``input_shape=`` on a first layer does).
    """
    loggers = [logging.getLogger(name) for name in ("tensorflow", "absl", "keras")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def public_check(check):
    """Wrap a check so that a failure surfaces as one clean ``GradingFailure``."""

    @functools.wraps(check)
    def wrapper(*args, **kwargs):
        message, limit = None, None
        try:
            with quiet():
                check(*args, **kwargs)
        except GradingFailure as failure:
            message = str(failure)
        except CouldNotCheck as error:
            limit = str(error)
        except Exception as error:  # our code met an object it cannot read: never the student's failure
            limit = str(
                CouldNotCheck.about(
                    "its checks could not read your objects",
                    f"{check.__name__} raised {type(error).__name__}: {str(error)[:300]}",
                )
            )
        if limit is not None:
            raise CouldNotCheck(limit) from None
        if message is not None:
            raise GradingFailure(message) from None

    return wrapper


def call_student(function, *args):
    """Call a student's function; turn any exception into an actionable failure."""
    shown = ", ".join(repr(arg) for arg in args)
    name = getattr(function, "__name__", "your function")
    if not callable(function):
        raise GradingFailure(f"{name} should be a function, but it is a {type(function).__name__}.")
    try:
        return function(*args)
    except CouldNotCheck:  # the verifier's stand-in met a limit of ours: not the student's error
        raise
    except Exception as error:
        raise GradingFailure(f"Calling {name}({shown}) raised {type(error).__name__}: {error}") from None
