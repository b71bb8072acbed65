"""The one definition of the emotion classes, imported everywhere.

The order is FER2013's image-folder order (alphabetical); the Kaggle CSV numbers its
classes differently, so `CSV_CODE_TO_INDEX` translates CSV codes into this order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
NUM_CLASSES: int = len(CLASSES)
CLASS_TO_INDEX: dict[str, int] = {name: index for index, name in enumerate(CLASSES)}

# FER2013 CSV `emotion` codes: 0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral.
CSV_CODE_TO_CLASS: dict[int, str] = {
    0: "angry",
    1: "disgust",
    2: "fear",
    3: "happy",
    4: "sad",
    5: "surprise",
    6: "neutral",
}
CSV_CODE_TO_INDEX: dict[int, int] = {code: CLASS_TO_INDEX[name] for code, name in CSV_CODE_TO_CLASS.items()}

# One colour per emotion (RGB), shared by image overlays and charts.
CLASS_COLORS_RGB: dict[str, tuple[int, int, int]] = {
    "angry": (230, 57, 70),
    "disgust": (106, 153, 78),
    "fear": (142, 68, 173),
    "happy": (255, 190, 11),
    "neutral": (149, 165, 166),
    "sad": (52, 152, 219),
    "surprise": (255, 127, 80),
}


def class_index(name: str) -> int:
    """Index of a class name (case-insensitive); ValueError names the valid classes."""
    key = name.strip().lower()
    if key not in CLASS_TO_INDEX:
        raise ValueError(f"unknown emotion class {name!r}; expected one of {', '.join(CLASSES)}")
    return CLASS_TO_INDEX[key]


def class_color_hex(name: str) -> str:
    red, green, blue = CLASS_COLORS_RGB[name]
    return f"#{red:02x}{green:02x}{blue:02x}"


class TopLabelMixin:
    """`label` and `confidence` for any result holding `probabilities` and their `classes`."""

    probabilities: Sequence[float]
    classes: Sequence[str]

    @property
    def label(self) -> str:
        return self.classes[int(np.argmax(self.probabilities))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probabilities))
