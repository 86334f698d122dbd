"""Requests that Connexion or Starlette would turn into a 500: refused here as 400 problems.

Found by fuzzing the served spec (tests/test_fuzz.py), all the client's mistake:

* a JSON body that is not UTF-8 (Connexion decodes it without catching the error), or that spells
  a lone UTF-16 surrogate (``"\\ud800"``), which parses into a string no database can store;
* a multipart body without a boundary, or otherwise unreadable (Starlette's parser raises);
* a path with a control character (a ``%0A`` in an id): Connexion's router does not match it, but
  Flask's does, and the handler then runs without Connexion's context. No odconnect path has one.
"""
from __future__ import annotations

import json
import re
import typing as t

from connexion.datastructures import MediaTypeDict
from connexion.exceptions import BadRequestProblem
from connexion.validators import VALIDATOR_MAP, JSONRequestBodyValidator, MultiPartFormDataValidator
from starlette.formparsers import MultiPartException

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


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
        if _SURROGATE_ESCAPE.search(raw):  # only then can the parsed strings hold a lone surrogate
            try:
                json.dumps(body, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                raise BadRequestProblem(detail="the request body has a lone UTF-16 surrogate (\\ud800-\\udfff) "
                                               "in a string") from None
        return body


class StrictMultiPartValidator(MultiPartFormDataValidator):
    async def _parse(self, stream: t.AsyncGenerator[bytes, None], scope) -> dict:
        try:
            return await super()._parse(stream, scope)
        except MultiPartException as exc:
            raise BadRequestProblem(detail=f"the multipart body cannot be read: {exc.message}") from None


def validator_map() -> dict:
    """Connexion's validators with the JSON and multipart body ones replaced."""
    body = MediaTypeDict({**VALIDATOR_MAP["body"], "*/*json": StrictJSONRequestBodyValidator,
                          "multipart/form-data": StrictMultiPartValidator})
    return {**VALIDATOR_MAP, "body": body}


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ControlCharacterGuard:
    """ASGI middleware: a request path with a control character is a 400, before any routing."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and _CONTROL.search(scope.get("path", "")):
            raise BadRequestProblem(detail="the request path has a control character")
        await self.app(scope, receive, send)
