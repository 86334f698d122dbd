"""The input path of a detector: decode once, resize once, into the model's input tensor.

Both engines see the picture as detectron2's test-time transform makes it: the short side
scaled to ``INPUT.MIN_SIZE_TEST`` with the long side capped at ``INPUT.MAX_SIZE_TEST``
(``ResizeShortestEdge``), Pillow's bilinear filter. Two things make it cheaper than decoding
a full photo and handing an array around:

* a JPEG much larger than that size is decoded at 1/2, 1/4 or 1/8 scale by libjpeg itself
  (Pillow's ``draft``), which skips most of the decode; the result is never smaller than
  the size the model needs, so the final resize still only shrinks;
* the resized picture goes straight into the (padded, channel-first, float32) batch array:
  one copy with the type conversion, no intermediate arrays.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from ..imaging import draft_at_least, to_rgb

__all__ = ["ModelInput", "resized_size", "prepare", "batch_tensor", "forward_groups", "MAX_PER_PASS"]

# Most pictures in one forward pass, either engine: a bound on activation memory.
MAX_PER_PASS = 8


@dataclass(frozen=True)
class ModelInput:
    """A picture resized for the model, and the size boxes must be scaled back to."""
    pixels: np.ndarray  # H x W x 3 uint8, RGB, the resized picture
    original_width: int
    original_height: int

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the picture as users see it, which boxes are given in (as PIL's ``size``)."""
        return self.original_width, self.original_height


def resized_size(height: int, width: int, min_size: int, max_size: int) -> tuple[int, int]:
    """(new_height, new_width) as detectron2's ``ResizeShortestEdge.get_output_shape``."""
    scale = min_size * 1.0 / min(height, width)
    if height < width:
        new_h, new_w = min_size, scale * width
    else:
        new_h, new_w = scale * height, min_size
    if max(new_h, new_w) > max_size:
        scale = max_size * 1.0 / max(new_h, new_w)
        new_h, new_w = new_h * scale, new_w * scale
    return int(new_h + 0.5), int(new_w + 0.5)


ORIENTATION = 0x0112  # the EXIF tag; 1 (or none) means stored upright


def _oriented(img: Image.Image) -> tuple[int, int, int]:
    """(width, height) as users see the picture, and its EXIF orientation."""
    orientation = img.getexif().get(ORIENTATION, 1)
    w, h = img.size
    return (h, w, orientation) if orientation in (5, 6, 7, 8) else (w, h, orientation)


def prepare(source: bytes | Image.Image | ModelInput, min_size: int, max_size: int, draft: bool = True) -> ModelInput:
    """Decode (if needed), EXIF-rotate and resize ``source`` for a model with these test sizes.

    ``source`` is encoded image bytes or a PIL image; a PIL JPEG that is not loaded yet (as
    ``Image.open`` returns it) is decoded at reduced scale when ``draft`` allows it. A loaded
    image is used as it is (EXIF orientation is applied to both, as detect does). A
    :class:`ModelInput` made for these sizes is returned as it is.
    """
    if isinstance(source, ModelInput):
        if (source.height, source.width) != resized_size(source.original_height, source.original_width,
                                                         min_size, max_size):
            raise ValueError("this ModelInput was prepared for a model of other test sizes")
        return source
    img = Image.open(io.BytesIO(source)) if isinstance(source, (bytes, bytearray, memoryview)) else source
    width, height, orientation = _oriented(img)
    new_h, new_w = resized_size(height, width, min_size, max_size)
    if draft:
        draft_at_least(img, new_w, new_h)
    if orientation != 1:  # exif_transpose copies even an upright picture
        img = ImageOps.exif_transpose(img)
    img = to_rgb(img)
    if img.size != (new_w, new_h):
        img = img.resize((new_w, new_h), Image.BILINEAR)
    return ModelInput(np.asarray(img), width, height)


def batch_tensor(inputs: list[ModelInput], channel_order: str, pad_value: list[float],
                 divisibility: int) -> np.ndarray:
    """N x 3 x H x W float32 of raw pixel values (0..255) in ``channel_order`` ("RGB" | "BGR").

    Every picture sits at the top left; H and W are the largest height and width rounded up
    to ``divisibility``, and the rest is filled with ``pad_value`` per channel (the model's
    pixel mean, which its normalization turns into the zeros detectron2 pads with).
    """
    h = max(x.height for x in inputs)
    w = max(x.width for x in inputs)
    if divisibility > 1:
        h = -(-h // divisibility) * divisibility
        w = -(-w // divisibility) * divisibility
    out = np.empty((len(inputs), 3, h, w), dtype=np.float32)
    out[:] = np.asarray(pad_value, dtype=np.float32).reshape(1, 3, 1, 1)
    for i, x in enumerate(inputs):
        pixels = x.pixels[:, :, ::-1] if channel_order == "BGR" else x.pixels
        out[i, :, :x.height, :x.width] = pixels.transpose(2, 0, 1)  # the one converting copy
    return out


def forward_groups(inputs: list[ModelInput], divisibility: int, max_batch: int = MAX_PER_PASS) -> list[list[int]]:
    """Indexes of ``inputs`` that share a forward pass: those padding to the same size, at most
    ``max_batch`` at a time. Pictures of different sizes do not share one: the larger padding
    would add anchors over the padded area, which could change the smaller picture's boxes."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, x in enumerate(inputs):
        key = (-(-x.height // divisibility) * divisibility, -(-x.width // divisibility) * divisibility)
        groups.setdefault(key, []).append(i)
    return [members[start:start + max_batch] for members in groups.values()
            for start in range(0, len(members), max_batch)]
