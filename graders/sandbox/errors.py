"""Exceptions of the sandbox package."""


class SandboxError(RuntimeError):
    """The sandbox could not be set up or torn down (never a verdict on a notebook)."""


class SandboxUnavailable(SandboxError):
    """The sandbox is missing or misconfigured: grading must stop (fail closed)."""
