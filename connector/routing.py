"""PascalCase operationIds (what Power Platform connectors use) -> snake_case Python handlers."""
from __future__ import annotations

import functools
import re

from connexion.resolver import Resolver


def snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _json_by_default(result):
    """Operations also declare problem+json (and some images/zip); plain data answers as JSON."""
    body, rest = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
    if not isinstance(body, (dict, list)):
        return result
    status = rest[0] if rest else 200
    headers = dict(rest[1]) if len(rest) > 1 else {}
    headers.setdefault("Content-Type", "application/json")
    return body, status, headers


class SnakeCaseResolver(Resolver):
    def __init__(self):
        super().__init__()
        # resolved handler -> the spec's operationId, which the metrics name operations by
        self.spec_ids: dict[str, str] = {}

    def resolve_operation_id(self, operation) -> str:
        controller = operation.router_controller
        function = snake_case(operation.operation_id)
        resolved = f"{controller}.{function}" if controller else function
        self.spec_ids[resolved] = operation.operation_id
        return resolved

    def resolve_function_from_operation_id(self, operation_id):
        handler = super().resolve_function_from_operation_id(operation_id)

        @functools.wraps(handler)
        def wrapped(*args, **kwargs):
            return _json_by_default(handler(*args, **kwargs))

        return wrapped
