"""The scope each operation needs, read from the spec's ``x-odconnect-scope`` (the one place it is said)."""
from __future__ import annotations

from ..routing import snake_case
from ..services.keys import SCOPES

SCOPE_KEY = "x-odconnect-scope"
PUBLIC = "public"  # operations with `security: []` (health, the connector package)
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def operation_scopes(spec: dict) -> dict[str, str]:
    """operationId -> scope for every operation; a missing or unknown scope is an error at start."""
    out = {}
    for path, item in spec["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            scope = op.get(SCOPE_KEY)
            if scope not in SCOPES + (PUBLIC,):
                raise ValueError(f"{method.upper()} {path} ({op.get('operationId')}): {SCOPE_KEY} must be one of "
                                 f"{', '.join(SCOPES + (PUBLIC,))}, not {scope!r}")
            if (scope == PUBLIC) != (op.get("security") == []):
                raise ValueError(f"{op.get('operationId')}: {SCOPE_KEY} is public exactly when security is []")
            out[op["operationId"]] = scope
    return out


def operation_names(spec: dict) -> dict[str, str]:
    """The name Connexion routes an operation by (its handler, ``connector.api.models.list_models``)
    -> its operationId."""
    out = {}
    for item in spec["paths"].values():
        for method in METHODS:
            op = item.get(method)
            if op is not None and op.get("x-openapi-router-controller"):
                out[f"{op['x-openapi-router-controller']}.{snake_case(op['operationId'])}"] = op["operationId"]
    return out
