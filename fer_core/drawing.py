"""Drawing face boxes, labels and probability bars onto images with OpenCV.

Shared by the Upload page (photos of any size) and the live video overlay, so both look the
same. Line widths and fonts scale with the image, so labels stay readable on a 12-megapixel
photo and on a 320x240 frame. Images are RGB uint8 and are drawn on in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from fer_core.classes import CLASS_COLORS_RGB, TopLabelMixin
from fer_core.preprocessing import Box

FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class FaceOverlay(TopLabelMixin):
    """What to draw for one face (independent of where the numbers came from)."""

    index: int
    box: Box
    probabilities: Sequence[float]
    classes: Sequence[str]


def _scale(image: np.ndarray) -> float:
    """Drawing scale: 1.0 for a 640-pixel-wide image."""
    return max(0.5, max(image.shape[:2]) / 640.0)


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float, color, background) -> tuple[int, int]:
    """Text on a filled background box; returns the box size."""
    font_scale = 0.55 * scale
    thickness = max(1, int(round(1.5 * scale)))
    (width, height), baseline = cv2.getTextSize(text, FONT, font_scale, thickness)
    pad = max(2, int(3 * scale))
    x, y = origin
    x = int(np.clip(x, 0, max(0, image.shape[1] - width - 2 * pad)))
    y = int(np.clip(y, height + baseline + 2 * pad, image.shape[0]))
    cv2.rectangle(image, (x, y - height - baseline - 2 * pad), (x + width + 2 * pad, y), background, cv2.FILLED)
    cv2.putText(image, text, (x + pad, y - baseline - pad), FONT, font_scale, color, thickness, cv2.LINE_AA)
    return width + 2 * pad, height + baseline + 2 * pad


def readable_on(color: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on `color` (RGB)."""
    red, green, blue = color
    return (0, 0, 0) if 0.299 * red + 0.587 * green + 0.114 * blue > 150 else (255, 255, 255)


def draw_faces(image: np.ndarray, faces: Sequence[FaceOverlay], show_bars: bool = False, numbered: bool = True) -> np.ndarray:
    """Box, number, emotion and confidence for each face; optionally a bar per class."""
    scale = _scale(image)
    for face in faces:
        color = CLASS_COLORS_RGB.get(face.label, (255, 255, 255))
        box = face.box
        thickness = max(2, int(round(2 * scale)))
        cv2.rectangle(image, (box.x, box.y), (box.x + box.width, box.y + box.height), color, thickness, cv2.LINE_AA)
        prefix = f"#{face.index} " if numbered else ""
        text = f"{prefix}{face.label} {face.confidence:.0%}"
        _text(image, text, (box.x - thickness // 2, box.y), scale, readable_on(color), color)
        if show_bars:
            draw_probability_bars(image, face, scale)
    return image


def draw_probability_bars(image: np.ndarray, face: FaceOverlay, scale: float | None = None) -> None:
    """A compact bar chart of the 7 probabilities beside (or under) the face box."""
    scale = scale or _scale(image)
    row = max(8, int(round(10 * scale)))
    bar_width = max(40, int(round(60 * scale)))
    label_width = int(round(28 * scale))
    total_width = label_width + bar_width + 4
    box = face.box
    x = box.x + box.width + 4
    if x + total_width > image.shape[1]:  # no room on the right: go left of the box
        x = max(0, box.x - total_width - 4)
    y = max(0, box.y)
    height = row * len(face.classes)
    if y + height > image.shape[0]:
        y = max(0, image.shape[0] - height)
    overlay_region = image[y : y + height, x : x + total_width]
    overlay_region[:] = (overlay_region * 0.45).astype(image.dtype)  # darken for contrast
    font_scale = 0.32 * scale
    for index, (name, probability) in enumerate(zip(face.classes, face.probabilities, strict=True)):
        top = y + index * row
        color = CLASS_COLORS_RGB.get(name, (255, 255, 255))
        cv2.putText(image, name[:3], (x + 2, top + row - 2), FONT, font_scale, (255, 255, 255), 1, cv2.LINE_AA)
        length = int(round(bar_width * float(probability)))
        if length > 0:
            cv2.rectangle(image, (x + label_width, top + 1), (x + label_width + length, top + row - 2), color, cv2.FILLED)


def draw_status(image: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """Status lines (FPS, latency...) in the top-left corner."""
    scale = _scale(image) * 0.9
    y = 0
    for line in lines:
        _, height = _text(image, line, (4, y + int(24 * scale)), scale, (255, 255, 255), (20, 20, 20))
        y += height + 2
    return image


def fit_face(image: np.ndarray, side: int) -> np.ndarray:
    """A stored face sized for display with its longest side at most `side`: small crops (such
    as 48x48) are enlarged by a whole factor with nearest-neighbour, so their pixels stay crisp
    instead of blurred; larger ones are area-downscaled."""
    longest = max(image.shape[:2])
    if longest < side:
        factor = side // longest
        if factor < 2:
            return image
        return np.ascontiguousarray(np.repeat(np.repeat(image, factor, axis=0), factor, axis=1))
    if longest == side:
        return image
    factor = side / longest
    size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
