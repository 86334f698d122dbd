"""Who may call what: API keys with scopes, checked in Connexion's security layer before a handler runs.

Keys come from two places: the configuration (security.api_keys, ODCONNECT_API_KEYS, the key file
`odconnect serve` writes), which are admin keys compared in memory; and the `api_keys` table
(`odconnect keys create`), read on every request so that a revoke takes effect at once.
"""
from .handler import api_key_handler
from .scopes import operation_scopes

__all__ = ["api_key_handler", "operation_scopes"]
