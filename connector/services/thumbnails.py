"""Server-made thumbnails for image grids, cached on disk by (image content, size).

A grid of thousands of images must never decode full-size photos more than once: the first
request for a size makes a JPEG (EXIF-rotated, aspect kept, longest side = size, never
enlarged), writes it atomically under <root>/thumbnails, and every later request only reads
that file. The cache key is the image's sha256, so the same photo in two datasets shares its
thumbnails, and the ETag can be strong: the bytes for a key never change.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from model_store import Store, atomic_write

from ..errors import Invalid
from ..imaging import to_rgb
from .images import _get_image

SIZES = (128, 256, 512)  # the spec's enum for GetImageThumbnail's `size`
QUALITY = 82
# Part of the cache key and the ETag: bump it when the way thumbnails are made changes.
RECIPE = "t1"


@dataclass(frozen=True)
class Thumbnail:
    path: Path
    etag: str


def cache_path(store: Store, sha256: str, size: int) -> Path:
    return store.root / "thumbnails" / RECIPE / str(size) / sha256[:2] / f"{sha256}.jpg"


def thumbnail(store: Store, model_ref, dataset_id: int, image_id: int, size: int) -> Thumbnail:
    """The cached thumbnail of an image, made first when it is missing."""
    if size not in SIZES:
        raise Invalid(f"size must be one of {list(SIZES)}")
    with store.transaction() as s:
        sha = _get_image(s, model_ref, dataset_id, image_id)[1].sha256
    path = cache_path(store, sha, size)
    if not path.exists():
        atomic_write(path, render(store.blobs.get(sha), size))
    return Thumbnail(path, f"{sha}-{size}-{RECIPE}")


def render(data: bytes, size: int) -> bytes:
    """JPEG bytes of the picture as users see it, its longest side `size` (or less when smaller)."""
    img = Image.open(io.BytesIO(data))
    img.seek(0)  # GIF / WebP: the first frame, as everywhere else
    # JPEG: let the decoder scale down by 1/2..1/8 while decoding (much less work for photos).
    img.draft("RGB", (size, size))
    img = ImageOps.exif_transpose(img)
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    img = _on_white(img)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=QUALITY, optimize=True)
    return buf.getvalue()


def _on_white(img: Image.Image) -> Image.Image:
    """RGB; transparent parts become white (JPEG has no alpha, and black looks like content)."""
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return to_rgb(img)
