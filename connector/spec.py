"""Where the OpenAPI spec and the connector files are read from.

The checkout keeps them in the top-level `openapi/` folder (the source of truth); a wheel carries
a copy inside the package (`connector/_openapi`, put there by setup.py's build step), so an
installed odconnect runs without the checkout.
"""
from __future__ import annotations

from pathlib import Path

import yaml

_PACKAGED = Path(__file__).resolve().parent / "_openapi"
_CHECKOUT = Path(__file__).resolve().parent.parent / "openapi"

SPEC_DIR = _PACKAGED if _PACKAGED.is_dir() else _CHECKOUT
SPEC_FILE = "odconnect.yaml"
SPEC_PATH = SPEC_DIR / SPEC_FILE


def load_spec(path: str | Path = SPEC_PATH) -> dict:
    """The spec as a dict (the security layer reads each operation's scope from it, the connector
    generator converts it)."""
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)
