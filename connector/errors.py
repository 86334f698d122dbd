"""Errors the services raise; the app turns each into an RFC 7807 problem+json response.

Services know nothing of HTTP beyond the status code each error stands for.
"""
from __future__ import annotations


class OdError(Exception):
    status = 400
    title = "Bad Request"

    def __init__(self, detail: str, **extra):
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        self.headers: dict[str, str] = extra.pop("headers", {}) or {}


class Invalid(OdError):
    status, title = 400, "Bad Request"


class NotFound(OdError):
    status, title = 404, "Not Found"


class Conflict(OdError):
    status, title = 409, "Conflict"


class TooLarge(OdError):
    status, title = 413, "Payload Too Large"


class Unsupported(OdError):
    status, title = 415, "Unsupported Media Type"


class Unavailable(OdError):
    status, title = 503, "Service Unavailable"
