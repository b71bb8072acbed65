"""Face preprocessing shared by training and inference, so a model sees the same thing in both.

Training images (FER2013) are already grayscale face crops; photos and video frames go
through `crop_face` first. Both then pass through `resize_gray` and `scale_pixels`, and the
model's own first layer does nothing but consume [0, 1] floats.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# A detector box is widened by this fraction of its size on every side before cropping, so a
# photo's face is framed as FER2013 frames its faces. Fitted, not guessed: BlazeFace run on 1,500
# FER2013 training faces (padded, upscaled) puts its box over 42 of the crop's 48 pixels (median),
# i.e. a margin of 0.07. On FER2013's validation faces set in a larger frame, the photo path (detect,
# crop, classify, one pass) scores 67.7% at 0.07, as the faces' own crops do, against 62.7% at
# the earlier, unfitted 0.2 (logs of the fit: README, "Crop geometry").
DEFAULT_MARGIN: float = 0.07


@dataclass(frozen=True)
class Box:
    """A face box in pixel coordinates of the image it was found in."""

    x: int
    y: int
    width: int
    height: int

    @property
    def area(self) -> int:
        return max(0, self.width) * max(0, self.height)

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.width, self.height)

    def iou(self, other: Box) -> float:
        left, top = max(self.x, other.x), max(self.y, other.y)
        right = min(self.x + self.width, other.x + other.width)
        bottom = min(self.y + self.height, other.y + other.height)
        inter = max(0, right - left) * max(0, bottom - top)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


def to_gray(image: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3) or gray (H, W) uint8 to gray (H, W) uint8 with the ITU-R 601 weights PIL uses."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    raise ValueError(f"expected an RGB or grayscale image, got shape {image.shape}")


def resize_gray(gray: np.ndarray, size: int) -> np.ndarray:
    """Resize a grayscale square (or not) to `size`x`size`, area-averaging when shrinking."""
    if gray.shape[0] == size and gray.shape[1] == size:
        return gray
    shrinking = gray.shape[0] > size or gray.shape[1] > size
    return cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def downscale(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Shrink an image to `width`x`height` by halving (exact 2x2 means) and one final linear step.

    Within about one grey level of INTER_AREA on real frames, at a fraction of its cost (0.33 ms
    against 1.8 ms for 640x480 -> 192x144 on the slower CPU, 13 ms against 58 ms from 12 MP):
    INTER_AREA at a non-integer ratio was a tenth or more of the detector's time on a live frame.
    Enlarging falls back to a linear resize."""
    while image.shape[1] >= 2 * width and image.shape[0] >= 2 * height:
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_LINEAR)
    if image.shape[1] == width and image.shape[0] == height:
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def square_with_margin(box: Box, margin: float) -> Box:
    """The square around `box`, widened by `margin`; it may extend past the image (padded later)."""
    side = int(round(max(box.width, box.height) * (1.0 + 2.0 * margin)))
    center_x = box.x + box.width / 2.0
    center_y = box.y + box.height / 2.0
    return Box(int(round(center_x - side / 2.0)), int(round(center_y - side / 2.0)), side, side)


def face_region(image: np.ndarray, box: Box, margin: float) -> np.ndarray:
    """The part of `image` (any channels) inside the widened square around `box`, clipped to the
    image; empty when the square lies outside. A view, not a copy."""
    height, width = image.shape[:2]
    square = square_with_margin(box, margin)
    x0, y0 = max(0, square.x), max(0, square.y)
    x1, y1 = min(width, square.x + square.width), min(height, square.y + square.height)
    return image[y0:max(y0, y1), x0:max(x0, x1)]


def crop_face(image: np.ndarray, box: Box, size: int, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """Grayscale `size`x`size` crop of the face in `box`, replicating edge pixels where the
    widened square leaves the image (a face at the border keeps its proportions)."""
    gray = to_gray(image)
    height, width = gray.shape
    square = square_with_margin(box, margin)
    pad_left = max(0, -square.x)
    pad_top = max(0, -square.y)
    pad_right = max(0, square.x + square.width - width)
    pad_bottom = max(0, square.y + square.height - height)
    x0, y0 = max(0, square.x), max(0, square.y)
    x1, y1 = min(width, square.x + square.width), min(height, square.y + square.height)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"face box {box.as_tuple()} lies outside the {width}x{height} image")
    crop = gray[y0:y1, x0:x1]
    if pad_left or pad_top or pad_right or pad_bottom:
        crop = cv2.copyMakeBorder(crop, pad_top, pad_bottom, pad_left, pad_right, cv2.BORDER_REPLICATE)
    return resize_gray(crop, size)


def resize_faces(faces: np.ndarray, size: int) -> np.ndarray:
    """uint8 faces (N, S, S) at `size` x `size` (unchanged when S is already `size`)."""
    if faces.shape[1] == size and faces.shape[2] == size:
        return faces
    return np.stack([resize_gray(face, size) for face in faces]) if len(faces) else faces.reshape(0, size, size)


def scale_pixels(gray_batch: np.ndarray) -> np.ndarray:
    """uint8 (N, S, S) faces to the model's float32 (N, S, S, 1) input in [0, 1]."""
    batch = np.asarray(gray_batch, dtype=np.float32) * (1.0 / 255.0)
    return batch[..., np.newaxis] if batch.ndim == 3 else batch
