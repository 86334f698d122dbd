"""The client's subcommands, one module per command group."""
from __future__ import annotations

from . import data_check, detect, importing, login, models, train, versions

MODULES = (login, models, importing, data_check, train, versions, detect)


def register(sub) -> None:
    """Add every client command to the `odconnect` subparsers (connector/cli.py calls this)."""
    for module in MODULES:
        module.register(sub)
