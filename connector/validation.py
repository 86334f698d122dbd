"""Requests that Connexion or Starlette would turn into a 500: refused here as 400 problems.

Found by fuzzing the served spec (tests/test_fuzz.py), all the client's mistake:

* a JSON body that is not UTF-8 (Connexion decodes it without catching the error), or that spells
  a lone UTF-16 surrogate (``"\\ud800"``), which parses into a string no database can store;
* a multipart body without a boundary, or otherwise unreadable (Starlette's parser raises);
* a path with a control character (a ``%0A`` in an id): Connexion's router does not match it, but
  Flask's does, and the handler then runs without Connexion's context. No odconnect path has one.

And validation errors say what is wrong in words: a schema that carries ``x-odconnect-rule`` (the
spec's shared name, version and cron shapes) is explained by it instead of by its regular
expression, and a parameter's error is one line, not Connexion's dump of the schema.
"""
from __future__ import annotations

import json
import re
import typing as t

from connexion.datastructures import MediaTypeDict
from connexion.exceptions import BadRequestProblem
from connexion.utils import is_null, is_nullable
from connexion.validators import (VALIDATOR_MAP, JSONRequestBodyValidator, MultiPartFormDataValidator,
                                  ParameterValidator)
from jsonschema import Draft4Validator, ValidationError
from starlette.formparsers import MultiPartException

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


RULE = "x-odconnect-rule"


def explain(error: ValidationError, where: str) -> str:
    """One line naming the field and what is wrong, in the spec's words where it has them."""
    rule = error.schema.get(RULE) if isinstance(error.schema, dict) else None
    if rule and error.validator in ("pattern", "minLength", "maxLength"):
        return f"{where}: {error.instance!r} is not valid: {rule}"
    if error.validator == "anyOf" and all(set(alt) == {"required"} for alt in error.validator_value):
        names = [name for alt in error.validator_value for name in alt["required"]]
        return f"{where}: give {' or '.join(names)}"
    return f"{where}: {error.message}"


TOO_DEEP = "the request body nests arrays or objects too deeply to read"


class StrictJSONRequestBodyValidator(JSONRequestBodyValidator):
    async def _parse(self, stream: t.AsyncGenerator[bytes, None], scope) -> t.Any:
        raw = b"".join([message async for message in stream])
        if not raw:
            return None
        try:
            text = raw.decode(self._encoding)
        except (UnicodeDecodeError, LookupError):
            raise BadRequestProblem(detail=f"the request body is not valid {self._encoding} text") from None
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadRequestProblem(detail=f"the request body is not valid JSON: {exc}") from None
        except RecursionError:
            raise BadRequestProblem(detail=TOO_DEEP) from None
        if _SURROGATE_ESCAPE.search(raw):  # only then can the parsed strings hold a lone surrogate
            try:
                json.dumps(body, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                raise BadRequestProblem(detail="the request body has a lone UTF-16 surrogate (\\ud800-\\udfff) "
                                               "in a string") from None
        return body

    def _validate(self, body: t.Any) -> t.Optional[dict]:
        if not self._nullable and body is None:
            raise BadRequestProblem("Request body must not be empty")
        try:
            return self._validator.validate(body)
        except ValidationError as error:
            where = ".".join(str(p) for p in error.path) or "the body"
            raise BadRequestProblem(detail=explain(error, where)) from None
        except RecursionError:
            raise BadRequestProblem(detail=TOO_DEEP) from None


class StrictParameterValidator(ParameterValidator):
    @staticmethod
    def validate_parameter(parameter_type, value, param, param_name=None):
        """Connexion's check, with the one-line message (Connexion returns str(error): the schema too)."""
        if value is None or (is_nullable(param) and is_null(value)):
            return ParameterValidator.validate_parameter(parameter_type, value, param, param_name)
        try:
            Draft4Validator(param.get("schema", param), format_checker=Draft4Validator.FORMAT_CHECKER).validate(value)
        except ValidationError as error:
            return explain(error, f"{parameter_type} parameter {param['name']}")
        return None


class StrictMultiPartValidator(MultiPartFormDataValidator):
    async def _parse(self, stream: t.AsyncGenerator[bytes, None], scope) -> dict:
        try:
            return await super()._parse(stream, scope)
        except MultiPartException as exc:
            raise BadRequestProblem(detail=f"the multipart body cannot be read: {exc.message}") from None


def validator_map() -> dict:
    """Connexion's validators with the JSON body, multipart body and parameter ones replaced."""
    body = MediaTypeDict({**VALIDATOR_MAP["body"], "*/*json": StrictJSONRequestBodyValidator,
                          "multipart/form-data": StrictMultiPartValidator})
    return {**VALIDATOR_MAP, "body": body, "parameter": StrictParameterValidator}


_CONTROL = re.compile(r"[\x00-\x1f]")  # C0 controls: what names and ids never hold (the spec says so too)


class ControlCharacterGuard:
    """ASGI middleware: a request path with a control character is a 400, before any routing."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and _CONTROL.search(scope.get("path", "")):
            raise BadRequestProblem(detail="the request path has a control character")
        await self.app(scope, receive, send)
