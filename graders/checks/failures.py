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
        message = None
        try:
            with quiet():
                check(*args, **kwargs)
        except GradingFailure as failure:
            message = str(failure)
        except Exception as error:  # a bug in the student's objects, met while checking
            message = (
                f"Checking your work raised {type(error).__name__}: {error}. "
                "Run your cells from the top (Kernel > Restart & Run All) and read the error."
            )
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
    except Exception as error:
        raise GradingFailure(
            f"Calling {name}({shown}) raised {type(error).__name__}: {error}"
        ) from None
