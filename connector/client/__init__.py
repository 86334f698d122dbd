"""odconnect's command-line client: the whole model lifecycle against a running server.

``odconnect login``, ``models``, ``import``, ``data-check``, ``train --wait``, ``publish``,
``detect`` and the rest talk to the HTTP API (openapi/odconnect.yaml) with httpx and show
progress and tables with rich. Nothing here imports the server: it runs on any machine
that can reach one.
"""
from .commands import register

__all__ = ["register"]
