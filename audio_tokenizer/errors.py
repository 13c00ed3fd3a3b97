"""One error model for the whole project: every error a user can act on derives from
:class:`LladaTTSError`, which carries a one-line message and the exit code the command lines return.
The CLI, the app and the server each map this base once (exit code / dialog / HTTP status)."""
from __future__ import annotations


class LladaTTSError(Exception):
    """An error for the user: a one-line message and an exit code (1: a runtime failure)."""

    exit_code: int = 1

    def __init__(self, message: str = "", exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UserInputError(LladaTTSError, ValueError):
    """Bad input (a value, a file, a folder, a request): exit 2, HTTP 400. Also a ValueError, so code
    that validates with ValueError keeps catching it."""

    exit_code = 2


class RuntimeFailure(LladaTTSError, RuntimeError):
    """The input was fine but the work failed (a diverged loss, a missing engine): exit 1, HTTP 500."""

    exit_code = 1


def first_line(e: BaseException) -> str:
    """The first line of an exception's message, or its type name when the message is empty."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
