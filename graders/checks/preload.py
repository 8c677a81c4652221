"""The grading data, loaded before a notebook arrives.

A sandbox readied ahead of its job (a kernel among a worker's spares,
:mod:`graders.grading.execution`; the early verifier, :mod:`graders.verify.__main__`)
calls :func:`load_grading_data` while it waits. It fills the caches the checks would fill
at their first use, from the instructor's ``hw5_data`` and data file: the full data's
fingerprints (the recorder's budget rows and the fit records' judge,
:mod:`graders.checks.data_checks`) and the budget's test images (the recomputed accuracy,
:mod:`graders.checks.training_checks`). Nothing of any student is read, and the values are
the ones the first check would compute (about a second of work on the notebook's and the
verifier's critical path). Any failure is left for the checks themselves to meet and report.
"""

from __future__ import annotations


def load_grading_data() -> bool:
    """Fill the checks' data caches for the active budget; whether it worked."""
    try:
        import hw5_data
        from graders.checks import data_checks, recorder, training_checks

        budget = hw5_data.active_budget()
        data_checks.budget_fingerprints(hw5_data.BUDGETS["full"])
        if budget.name != "full":
            recorder.budget_rows(budget)
        training_checks._test_data(budget.name)  # noqa: SLF001 - the cache this module exists to fill
    except Exception:  # noqa: BLE001 - the checks meet it again, and say what it is
        return False
    return True
