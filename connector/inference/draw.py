"""Drawing detections on a picture, as AI Builder's quick test shows them."""
from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont

PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (0, 128, 128), (170, 110, 40)]


def color_for(label_index: int) -> tuple[int, int, int]:
    return PALETTE[label_index % len(PALETTE)]


def draw_detections(image: Image.Image, detections: list[dict]) -> bytes:
    """PNG bytes of `image` with each box outlined and captioned "label 93%".

    `detections` use absolute pixels: {labelIndex, tagName, probability, x0, y0, x1, y1}.
    """
    canvas = image.copy() if image.mode == "RGB" else image.convert("RGB")  # never draw on the caller's
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(min(canvas.size) / 200))
    font = ImageFont.load_default(size=max(12, round(min(canvas.size) / 30)))
    for det in detections:
        color = color_for(det["labelIndex"])
        box = [det["x0"], det["y0"], det["x1"], det["y1"]]
        draw.rectangle(box, outline=color, width=width)
        caption = f"{det['tagName']} {det['probability'] * 100:.0f}%"
        left, top, right, bottom = draw.textbbox((0, 0), caption, font=font)
        tx, ty = det["x0"], max(0, det["y0"] - (bottom - top) - 2 * width)
        draw.rectangle([tx, ty, tx + right - left + 2 * width, ty + bottom - top + 2 * width], fill=color)
        draw.text((tx + width, ty + width - top), caption, fill=(255, 255, 255), font=font)
    buf = io.BytesIO()
    canvas.save(buf, "PNG")
    return buf.getvalue()
