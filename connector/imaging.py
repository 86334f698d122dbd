"""Checking and decoding user images, once, with every guard in one place.

A file is stored only if Pillow fully decodes it, its format is allowed,
its size is within limits and its dimensions are read from the header before
any pixel is decoded (the decompression-bomb guard).

Detect does not store the picture and decodes it only once, for the model (a large JPEG at
reduced scale): ``check_header`` applies every guard that needs no pixels, and the caller
decodes the image it returns.
"""
from __future__ import annotations

import io
import math
import os
import warnings
from dataclasses import dataclass, field

from PIL import Image, ImageOps

from .errors import Invalid, TooLarge, Unsupported


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    format: str
    width: int
    height: int
    decoded: Image.Image | None = field(default=None, repr=False, compare=False)  # first frame, as loaded

    def rgb(self) -> Image.Image:
        """The picture as users see it (EXIF-rotated, RGB), without decoding the file again; the
        decoded image itself when it is already that (callers must not draw on it)."""
        img = self.decoded if self.decoded is not None else Image.open(io.BytesIO(self.data))
        if img.getexif().get(0x0112, 1) != 1:  # exif_transpose copies even an upright picture
            img = ImageOps.exif_transpose(img)
        return to_rgb(img)


# Grey at 16 bits a channel (PNG from scientific cameras and scanners), which Pillow's RGB
# conversion clips at 255: a picture that is almost all white.
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def to_rgb(img: Image.Image) -> Image.Image:
    """The picture in 8-bit RGB (the image itself when it already is): a 16-bit grey one is
    scaled into 0..255, not clipped."""
    if img.mode == "RGB":
        return img
    if img.mode in _SIXTEEN_BIT:
        img = img.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    return img.convert("RGB")


def _open_header(data: bytes, name: str) -> Image.Image:
    with warnings.catch_warnings():
        # Pillow warns (and later errors) on huge images; our own limit decides first.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise TooLarge(f"{name}: the image is too large to decode safely ({exc})") from exc
        except Exception as exc:  # Pillow raises several types for non-images
            raise Unsupported(f"{name}: not a recognised image (jpeg, png, bmp, gif, webp)") from exc


def check_header(data: bytes, limits: dict, name: str = "image") -> Image.Image:
    """The picture opened but not decoded, once its size in bytes, format and dimensions (from
    the header) are within limits; raise an OdError naming what is wrong. Decoding it may still
    find the data corrupt."""
    if not data:
        raise Invalid(f"{name}: the file is empty (0 bytes)")
    if len(data) > limits["max_image_bytes"]:
        raise TooLarge(f"{name}: {len(data)} bytes is over the limit of {limits['max_image_bytes']} bytes")
    img = _open_header(data, name)
    fmt = image_format(img)
    if fmt not in limits["formats"]:
        raise Unsupported(f"{name}: format {fmt or 'unknown'} is not accepted; use one of {', '.join(limits['formats'])}")
    width, height = img.size
    lo, hi = limits["min_side"], limits["max_side"]
    if width > hi or height > hi:
        raise TooLarge(f"{name}: {width}x{height} px is over the limit of {hi} px per side")
    if width < lo or height < lo:
        raise Invalid(f"{name}: {width}x{height} px is under the minimum of {lo} px per side")
    try:
        img.seek(0)  # GIF/WebP: the first frame is the image
    except Exception as exc:
        raise corrupt(name, exc) from exc
    return img


def image_format(img: Image.Image) -> str:
    """The file's format as limits["formats"] names it. Many phone cameras write MPO: a JPEG
    with more pictures after it (a depth map, a preview), read as the JPEG it starts with."""
    fmt = (img.format or "").upper()
    return "JPEG" if fmt == "MPO" else fmt


def corrupt(name: str, exc: Exception) -> Invalid:
    """The error for a picture whose header is fine but whose pixels do not decode."""
    return Invalid(f"{name}: the image data is corrupt or truncated ({exc})")


def check_image(data: bytes, limits: dict, name: str = "image", keep_pixels: bool = True) -> CheckedImage:
    """Validate raw bytes as an image, decoding every coded byte of it; raise an OdError naming
    what is wrong. Without ``keep_pixels`` (storing a picture, not looking at it) a JPEG decodes
    at 1/8 scale: libjpeg still reads every coded block, so corrupt or truncated data fails as it
    would in full, for a fraction of the time and 1/64 of the memory of a phone photo (or of a
    small file whose header claims 10,000 px a side)."""
    img = check_header(data, limits, name)
    try:
        w, h = oriented_size(img)  # before the draft shrinks img.size
        if not keep_pixels:
            draft_at_least(img, 1, 1)
        img.load()
    except Exception as exc:
        raise corrupt(name, exc) from exc
    return CheckedImage(data=data, format=image_format(img), width=w, height=h,
                        decoded=img if keep_pixels else None)


def oriented_size(img: Image.Image) -> tuple[int, int]:
    """Size after EXIF rotation, which is how users see and box the picture."""
    orientation = img.getexif().get(0x0112, 1)
    w, h = img.size
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def draft_at_least(img: Image.Image, width: int, height: int) -> None:
    """Let libjpeg decode a JPEG that is not loaded yet at 1/2, 1/4 or 1/8 scale: the largest
    shrink that keeps at least ``width`` x ``height`` (as users see the picture, after EXIF
    rotation), so a resize after it still only shrinks. Other formats and loaded images decode
    in full."""
    if img.format in ("JPEG", "MPO"):
        rotated = img.getexif().get(0x0112, 1) in (5, 6, 7, 8)
        img.draft("RGB", (height, width) if rotated else (width, height))


def load_rgb(source: bytes | str | os.PathLike, min_side: int | None = None) -> Image.Image:
    """Decode a stored (already checked) image, given as bytes or a file path, the way every
    part of odconnect sees it: first frame, EXIF-rotated, RGB. With ``min_side``, a large JPEG
    may come back smaller, its short side still at least ``min_side`` (callers that resize to
    that size lose nothing, and skip most of the decode of a phone photo)."""
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
        img.seek(0)
        if min_side:
            w, h = oriented_size(img)
            scale = min_side / min(w, h)
            if scale < 1:
                draft_at_least(img, math.ceil(w * scale), math.ceil(h * scale))
        return to_rgb(ImageOps.exif_transpose(img))
