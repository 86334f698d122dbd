"""Versioned store for odconnect: SQLAlchemy tables, content-addressed blobs, atomic writes."""
from .blobs import BlobStore, atomic_write, sha256_hex
from .db import Store, lock_row

__all__ = ["BlobStore", "Store", "atomic_write", "lock_row", "sha256_hex"]
