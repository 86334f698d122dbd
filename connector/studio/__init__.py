"""The studio: the web page makers label, train, test and publish with, served at /studio.

Plain static files (HTML, CSS, JavaScript modules) from `static/`, with no build step. The page
calls the public API on the same origin with the key the maker typed, so this module only serves
files: every response carries a strict Content-Security-Policy (scripts, styles and connections
from this origin only; images also from blob: URLs, which is how the page shows images fetched
with the key), and `no-cache` so that an upgraded server is seen at once while ETags keep
revalidation cheap.
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, redirect, send_from_directory

STATIC = Path(__file__).resolve().parent / "static"

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}

blueprint = Blueprint("studio", __name__)


@blueprint.after_request
def _security_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers[name] = value
    return response


@blueprint.get("/")
def root():
    return redirect("/studio/", code=302)


@blueprint.get("/studio")
def studio_slash():
    # relative module paths in index.html resolve against /studio/
    return redirect("/studio/", code=301)


@blueprint.get("/studio/")
def index():
    return send_from_directory(STATIC, "index.html", max_age=0)


@blueprint.get("/studio/<path:path>")
def asset(path: str):
    return send_from_directory(STATIC, path, max_age=0)
