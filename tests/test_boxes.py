"""The one box-conversion helper: fractions <-> pixels, clipped and rounded the same everywhere."""
import pytest

from connector.modeling.boxes import clip_xyxy, fraction_to_pixels, pixels_to_fraction


def test_round_trip_between_fractions_and_pixels():
    x, y, w, h = fraction_to_pixels(0.25, 0.5, 0.5, 0.25, 640, 480)
    assert (x, y, w, h) == (160, 240, 320, 120)
    assert pixels_to_fraction(x, y, x + w, y + h, 640, 480) == pytest.approx(
        {"left": 0.25, "top": 0.5, "width": 0.5, "height": 0.25})


def test_boxes_are_clipped_to_the_image_and_rounded_for_the_wire():
    assert clip_xyxy(-5, -1, 700, 300, 640, 480) == (0, 0, 640, 300)
    box = pixels_to_fraction(-10, 100, 650, 500, 640, 480, digits=3)
    assert box == {"left": 0.0, "top": 0.208, "width": 1.0, "height": 0.792}
    assert box["left"] + box["width"] <= 1 + 1e-6 and box["top"] + box["height"] <= 1 + 1e-3
    assert pixels_to_fraction(50, 50, 40, 40, 100, 100)["width"] == 0.0  # inverted corners: no area
