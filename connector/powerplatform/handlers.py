"""The connector definition and package, served with this server as their host (no API key needed:
they hold no secret, and the connector wizard can import the definition from its URL)."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Response, request

from ..context import ctx
from ..spec import load_spec
from . import package, swagger2

_cache: dict = {}


def _spec() -> dict:
    """The spec the server serves, read once."""
    if "spec" not in _cache:
        _cache["spec"] = load_spec()
    return _cache["spec"]


def _server() -> tuple[str, list[str]]:
    """This server as flows reach it: server.public_url when set (a proxy's or tunnel's address,
    with any path prefix), else the host and scheme of the request."""
    public = ctx().config["server"]["public_url"]
    if public:
        parts = urlsplit(public)
        return parts.netloc + parts.path.rstrip("/"), [parts.scheme]
    return request.host, [request.scheme]


def _publisher() -> package.Publisher:
    return package.Publisher.from_config(ctx().config["connector"])


def get_connector_definition():
    host, schemes = _server()
    swagger = package.definition(_spec(), host.split("/", 1)[0], schemes, _publisher())
    return Response(swagger2.dumps(swagger), mimetype="application/json")


def get_connector_package():
    host, schemes = _server()
    data = package.zip_bytes(package.build(host, schemes, _spec(), _publisher()))
    return Response(data, mimetype="application/zip",
                    headers={"Content-Disposition": 'attachment; filename="odconnect-connector.zip"'})
