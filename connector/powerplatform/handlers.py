"""The connector definition and package, served with this server as their host (no API key needed:
they hold no secret, and the connector wizard can import the definition from its URL)."""
from __future__ import annotations

from flask import Response, request

from . import package, swagger2

_cache: dict = {}


def _spec() -> dict:
    """The spec the server serves, read once."""
    if "spec" not in _cache:
        _cache["spec"] = swagger2.load_spec()
    return _cache["spec"]


def _host() -> tuple[str, list[str]]:
    return request.host, [request.scheme]


def get_connector_definition():
    host, schemes = _host()
    return Response(swagger2.dumps(swagger2.convert(_spec(), host, schemes)), mimetype="application/json")


def get_connector_package():
    host, schemes = _host()
    data = package.zip_bytes(package.build(host, schemes, _spec()))
    return Response(data, mimetype="application/zip",
                    headers={"Content-Disposition": 'attachment; filename="odconnect-connector.zip"'})
