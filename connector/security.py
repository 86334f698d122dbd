"""API-key check, wired into Connexion's security layer with the configured keys."""
from __future__ import annotations

import hmac

from connexion.security import ApiKeySecurityHandler


def api_key_handler(keys: list[str]) -> type[ApiKeySecurityHandler]:
    """A handler class bound to `keys` (Connexion instantiates handlers itself, so we close over them)."""
    encoded = [k.encode() for k in keys if k]

    def check(apikey: str, required_scopes=None):
        given = apikey.encode()
        # Compare against every key so timing says nothing about which key was close.
        ok = False
        for key in encoded:
            ok |= hmac.compare_digest(given, key)
        return {"sub": "api-key"} if ok else None

    class ConfiguredApiKeyHandler(ApiKeySecurityHandler):
        def _resolve_func(self, security_scheme):
            return check

    return ConfiguredApiKeyHandler
