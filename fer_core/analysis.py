"""Analysing one uploaded picture end to end: bytes in, a small picklable result out.

The Upload page caches these results by file content, so everything the page shows for a
file lives here: faces, a display-sized annotated preview (already JPEG-encoded, so a rerun
re-sends bytes instead of re-encoding 12 megapixels), colour thumbnails per face, notes and
timings. Bad files come back as a result with `error` set, never as an exception, so one bad
file never stops the others. The full-resolution annotated PNG is made only on demand.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from fer_core.detection import DetectorSettings
from fer_core.drawing import draw_faces
from fer_core.errors import ImageError
from fer_core.image_io import decode_image
from fer_core.inference import EmotionRecognizer, FacePrediction, ImageResult
from fer_core.preprocessing import Box, downscale, face_region

if TYPE_CHECKING:
    import pandas

# Streamlit shows images at most 1460 px wide (2 x 730); a wider preview would be resized
# (and re-encoded) by Streamlit on every rerun.
PREVIEW_WIDTH: int = 1460
THUMBNAIL_SIZE: int = 128
THUMBNAIL_MARGIN: float = 0.15
JPEG_QUALITY: int = 90


def content_digest(data: bytes) -> str:
    """The cache key of a file: the SHA-256 of its bytes (the name plays no part)."""
    return hashlib.sha256(data).hexdigest()


@dataclass
class UploadAnalysis:
    """Everything shown for one file. Boxes in `result` are in analysed-image pixels;
    `rows()` reports them in the original file's pixels."""

    name: str
    digest: str
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    original_size: tuple[int, int] | None = None  # (width, height) of the file
    result: ImageResult | None = None
    preview_jpeg: bytes | None = field(default=None, repr=False)  # annotated, <= PREVIEW_WIDTH wide
    thumbnails: list[np.ndarray] = field(default_factory=list, repr=False)  # RGB, one per face
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None

    @property
    def faces(self) -> list[FacePrediction]:
        return self.result.faces if self.result is not None else []

    @property
    def whole_image(self) -> bool:
        return bool(self.result is not None and self.result.whole_image)

    @property
    def scale(self) -> float:
        """Analysed pixels per original pixel (below 1 when a huge image was downscaled)."""
        if self.result is None or not self.original_size:
            return 1.0
        return self.result.width / self.original_size[0]

    def original_box(self, box: Box) -> Box:
        """`box` mapped back to the pixel coordinates of the uploaded file."""
        factor = 1.0 / self.scale
        return Box(round(box.x * factor), round(box.y * factor), round(box.width * factor), round(box.height * factor))

    def rows(self) -> list[dict]:
        """One table row per face: file, face #, box (original pixels), top emotion, all 7 probabilities."""
        rows = []
        for face in self.faces:
            row = {"file": self.name, **face.as_row()}
            box = self.original_box(face.box)
            row.update({"x": box.x, "y": box.y, "width": box.width, "height": box.height})
            rows.append(row)
        return rows


def annotate(rgb: np.ndarray, faces: Sequence[FacePrediction]) -> np.ndarray:
    """A copy of `rgb` with every face boxed, numbered and labelled (the input is untouched)."""
    return draw_faces(rgb.copy(), faces, numbered=True)


def face_thumbnail(rgb: np.ndarray, box: Box, size: int = THUMBNAIL_SIZE) -> np.ndarray:
    """A colour square around the face for display (the model's own input is `face.crop`)."""
    crop = face_region(rgb, box, THUMBNAIL_MARGIN)
    if crop.size == 0:
        return np.zeros((size, size, 3), np.uint8)
    longest = max(crop.shape[:2])
    factor = size / longest
    new_size = (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor)))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    return cv2.resize(crop, new_size, interpolation=interpolation)


def encode_jpeg(rgb: np.ndarray, max_width: int = PREVIEW_WIDTH, quality: int = JPEG_QUALITY) -> bytes:
    """JPEG bytes of `rgb`, downscaled to at most `max_width` pixels wide."""
    if rgb.shape[1] > max_width:
        rgb = downscale(rgb, max_width, max(1, round(rgb.shape[0] * max_width / rgb.shape[1])))
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buffer.tobytes()


def encode_png(rgb: np.ndarray) -> bytes:
    """Lossless PNG bytes (fast compression: these are downloads, not archives)."""
    ok, buffer = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError("PNG encoding failed")
    return buffer.tobytes()


def analyze_bytes(
    data: bytes,
    name: str,
    recognizer: EmotionRecognizer,
    settings: DetectorSettings = DetectorSettings(),
    whole_image: bool = False,
    digest: str | None = None,
) -> UploadAnalysis:
    """Decode, detect, classify and draw one file; problems are reported in `.error`."""
    digest = digest or content_digest(data)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    try:
        decoded = decode_image(data, name)
    except ImageError as error:
        return UploadAnalysis(name=name, digest=digest, error=str(error))
    timings["decode"] = (time.perf_counter() - started) * 1e3
    rgb = decoded.rgb
    # Photos can afford the test-time augmentation that scored best on validation (a few ms a face).
    if whole_image:
        result = recognizer.classify_whole_image(rgb, tta="auto")
    else:
        result = recognizer.analyze(rgb, settings, tta="auto")
    timings.update(result.timings_ms)
    if whole_image:
        timings["classify"] = (time.perf_counter() - started) * 1e3 - timings["decode"]
    mark = time.perf_counter()
    annotated = annotate(rgb, result.faces)
    timings["draw"] = (time.perf_counter() - mark) * 1e3
    mark = time.perf_counter()
    preview = encode_jpeg(annotated)
    thumbnails = [face_thumbnail(rgb, face.box) for face in result.faces]
    timings["preview"] = (time.perf_counter() - mark) * 1e3
    timings["total"] = (time.perf_counter() - started) * 1e3
    return UploadAnalysis(
        name=name,
        digest=digest,
        notes=list(decoded.notes),
        original_size=decoded.original_size,
        result=result,
        preview_jpeg=preview,
        thumbnails=thumbnails,
        timings_ms=timings,
    )


def annotated_png(data: bytes, name: str, faces: Sequence[FacePrediction]) -> bytes:
    """The full-resolution annotated picture as PNG, re-decoded on demand (download button)."""
    return encode_png(annotate(decode_image(data, name).rgb, faces))


def results_frame(analyses: Sequence[UploadAnalysis]) -> pandas.DataFrame:
    """The results table over all files and faces (files without faces add no row)."""
    import pandas

    from fer_core.classes import CLASSES

    rows = [row for analysis in analyses for row in analysis.rows()]
    classes = next((list(analysis.faces[0].classes) for analysis in analyses if analysis.faces), list(CLASSES))
    columns = ["file", "face", "x", "y", "width", "height", "emotion", "confidence", *classes]
    return pandas.DataFrame(rows, columns=columns)
