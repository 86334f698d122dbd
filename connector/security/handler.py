"""The Connexion API-key handler: key -> scope -> allowed for this operation, or 401 / 403 / 429."""
from __future__ import annotations

import hmac

import anyio
from connexion.exceptions import ProblemException
from connexion.middleware.abstract import ROUTING_CONTEXT
from connexion.security import ApiKeySecurityHandler

from model_store import Store

from ..services import keys as key_store
from .scopes import operation_names, operation_scopes
from .throttle import FailedAuthThrottle

CONFIGURED = {"id": None, "name": "configured key", "scope": "admin"}


def _problem(status: int, title: str, detail: str, headers: dict | None = None, **ext) -> ProblemException:
    return ProblemException(status=status, title=title, detail=detail, headers=headers, ext=ext or None)


def api_key_handler(store: Store, configured_keys: list[str], spec: dict,
                    throttle: FailedAuthThrottle) -> type[ApiKeySecurityHandler]:
    """A handler class bound to the parts it needs (Connexion instantiates handlers itself)."""
    scopes = operation_scopes(spec)
    encoded = [k.encode() for k in configured_keys if k]
    names = operation_names(spec)

    def configured(given: bytes) -> bool:
        ok = False
        for key in encoded:  # every key is compared, so timing says nothing about which one was close
            ok |= hmac.compare_digest(given, key)
        return ok

    async def check(apikey: str, request=None):
        routed = request.scope.get("extensions", {}).get(ROUTING_CONTEXT, {}).get("operation_id")
        operation = names.get(routed, routed)
        needed = scopes.get(operation, "admin")  # an operation the spec does not map needs the most
        if configured(apikey.encode()):
            found = CONFIGURED
        else:
            # the lookup may wait on the database: off the event loop, which serves every request
            found = await anyio.to_thread.run_sync(key_store.lookup, store, apikey)
        if found is None:
            address = request.client.host if request.client else "unknown"
            wait = throttle.fail(address)
            if wait is not None:
                raise _problem(429, "Too Many Requests", f"too many unknown API keys from {address}; "
                               f"try again in {wait} s", headers={"Retry-After": str(wait)})
            raise _problem(401, "Unauthorized", "the API key is unknown or revoked")
        if not key_store.allows(found["scope"], needed):
            raise _problem(403, "Forbidden", f"{operation} needs an API key with scope {needed!r} (or above); "
                           f"this key has scope {found['scope']!r}", requiredScope=needed, keyScope=found["scope"])
        return {"sub": f"key-{found['id']}" if found["id"] else "configured", "scope": found["scope"]}

    class ScopedApiKeyHandler(ApiKeySecurityHandler):
        def _resolve_func(self, security_scheme):
            return check

    return ScopedApiKeyHandler
