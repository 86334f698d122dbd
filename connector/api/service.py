from __future__ import annotations

from ..context import ctx
from ..services import health


def health_check():
    c = ctx()
    return health.check(c.store, c.config)


def get_service_version():
    return health.versions()
