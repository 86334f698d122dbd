"""Answers that carry no JSON body."""
from flask import Response


def no_content() -> Response:
    """204 without a Content-Type: Connexion would otherwise label the empty body with the
    operation's only declared media type (problem+json, from its error answers)."""
    response = Response(status=204)
    del response.headers["Content-Type"]
    return response
