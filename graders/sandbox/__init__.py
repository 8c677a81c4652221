"""Fail-closed sandbox that executes one untrusted Jupyter notebook.

Host API (trusted orchestrator; root, or rootless: see ``rootless``)::

    from graders.sandbox import execute_notebook, SandboxLimits, require_sandbox
    require_sandbox()                       # raises SandboxUnavailable if it does not hold
    result = execute_notebook("sub.ipynb", support_files={...}, ro_binds=[...],
                              env={...}, limits=SandboxLimits(...))

Inside the sandbox only ``graders.sandbox.execute_inside`` runs (with ``limits`` and
``errors``); attributes are imported lazily so that this package imports there too.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "SandboxLimits": "limits",
    "SandboxError": "errors",
    "SandboxUnavailable": "errors",
    "ExecutionResult": "notebook",
    "execute_notebook": "notebook",
    "SandboxRun": "run",
    "STATUSES": "notebook",
    "SandboxCgroup": "cgroups",
    "CgroupError": "cgroups",
    "SelfTestReport": "selftest",
    "self_test": "selftest",
    "require_sandbox": "selftest",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
