"""Absolute URLs for Location headers: Power Automate follows them as given."""
from flask import request

from ..context import ctx


def absolute(path: str) -> str:
    """`path` on server.public_url when set (a proxy's or tunnel's address), else on the request's host."""
    base = ctx().config["server"]["public_url"] or request.host_url
    return base.rstrip("/") + path
