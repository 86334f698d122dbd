"""Absolute URLs for Location headers: Power Automate follows them as given."""
from flask import request


def absolute(path: str) -> str:
    return request.host_url.rstrip("/") + path
