"""The client's failures, each knowing its exit code (see exitcodes.py)."""
from __future__ import annotations

from .exitcodes import Exit


class ClientError(Exception):
    """A failure the command reports in one line and turns into its exit code."""
    code = Exit.ERROR

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def as_json(self) -> dict:
        return {"message": self.message}


class LocalError(ClientError):
    """Something on this machine: a missing file, unusable input, nothing to do."""


class AuthMissing(ClientError):
    code = Exit.AUTH


class Unreachable(ClientError):
    code = Exit.UNREACHABLE


class TrainingFailed(ClientError):
    code = Exit.TRAINING_FAILED


class UsageError(ClientError):
    """Options that cannot go together (argparse itself reports the rest with the same code)."""
    code = Exit.USAGE


class Interrupted(ClientError):
    """Ctrl+C: the message says what was done before it."""
    code = Exit.INTERRUPTED


class ApiError(ClientError):
    """The server answered with an error: its RFC 7807 problem (status, title, detail)."""

    def __init__(self, status: int, title: str, detail: str, problem: dict | None = None):
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.status, self.title, self.detail = status, title, detail
        self.problem = problem or {}

    @property
    def code(self) -> Exit:  # type: ignore[override]
        if self.status in (401, 403):
            return Exit.AUTH
        return Exit.SERVER_ERROR if self.status >= 500 else Exit.REFUSED

    def as_json(self) -> dict:
        return {"message": self.message, "status": self.status, "title": self.title, "detail": self.detail}
