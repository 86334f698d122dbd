from __future__ import annotations

from ..context import ctx
from ..services import health


def health_check():
    return health.check(ctx().store)


def get_service_version():
    return health.versions()
