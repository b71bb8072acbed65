"""Inference: from an RGB image to every face's box, 7 probabilities and top label.

`EmotionClassifier` is loaded once from a model folder and serves through the compiled TFLite
export (`model.tflite`, ~60x faster than eager Keras at batch 1); all faces of an image go
through one call. It takes its input size and classes from the card, never from constants.
`EmotionRecognizer` adds a face detector in front of it.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer_core.card import KERAS_FILE, TFLITE_FILE, ModelCard, load_keras_model, read_card
from fer_core.classes import TopLabelMixin
from fer_core.detection import DetectorSettings, FaceDetector
from fer_core.errors import ModelError
from fer_core.evaluation import predict_with_tta
from fer_core.preprocessing import Box, crop_face, resize_gray, scale_pixels, to_gray
from fer_core.tflite_runtime import make_interpreter


@dataclass
class FacePrediction(TopLabelMixin):
    """One classified face. `index` is 1-based, matching the number drawn on the image."""

    index: int
    box: Box
    detection_score: float
    probabilities: np.ndarray  # (7,) in card.classes order
    classes: tuple[str, ...]
    crop: np.ndarray = field(repr=False)  # (S, S) uint8, what the model saw

    def as_row(self) -> dict:
        row = {
            "face": self.index,
            "x": self.box.x,
            "y": self.box.y,
            "width": self.box.width,
            "height": self.box.height,
            "emotion": self.label,
            "confidence": round(self.confidence, 4),
        }
        row.update({name: round(float(p), 4) for name, p in zip(self.classes, self.probabilities, strict=True)})
        return row


@dataclass
class ImageResult:
    faces: list[FacePrediction]
    width: int
    height: int
    timings_ms: dict[str, float] = field(default_factory=dict)
    whole_image: bool = False  # True when the whole picture was classified as one face


class EmotionClassifier:
    """A model folder loaded for serving. Thread-safe: calls are serialised by a lock."""

    def __init__(
        self,
        model_dir: str | os.PathLike,
        prefer_tflite: bool = True,
        num_threads: int | None = None,
        card: ModelCard | None = None,
    ):
        """`card` overrides the folder's card.json (used while a model folder is being finalized).
        `prefer_tflite` False takes model.keras where the folder has one."""
        self.model_dir = Path(model_dir)
        self.card: ModelCard = card or read_card(self.model_dir)
        self.input_size = int(self.card.input_size)
        self.classes = tuple(self.card.classes)
        self.margin = float(self.card.face_margin)
        self._lock = threading.Lock()
        self._threads = num_threads or min(2, os.cpu_count() or 1)
        tflite_path, keras_path = self.model_dir / TFLITE_FILE, self.model_dir / KERAS_FILE
        if tflite_path.is_file() and (prefer_tflite or not keras_path.is_file()):
            self.backend = "tflite"
            self._load_tflite(tflite_path)
        elif keras_path.is_file():
            self.backend = "keras"
            self._load_keras(keras_path)
        else:
            raise ModelError(f"{self.model_dir}: the folder has a card but neither {TFLITE_FILE} nor {KERAS_FILE}")

    # --- loading ---------------------------------------------------------------------------
    def _load_tflite(self, path: Path) -> None:
        try:
            self._single = make_interpreter(path, self._threads)
            self._batched = make_interpreter(path, self._threads)
        except (ValueError, RuntimeError) as error:
            raise ModelError(f"{path}: not a valid TFLite model ({error})") from None
        detail = self._single.get_input_details()[0]
        self._check_shape(path, tuple(detail["shape"]))
        # Tensor indexes are fixed per model: look them up once, not on every (per-frame) call.
        self._input_index = detail["index"]
        self._output_index = self._single.get_output_details()[0]["index"]
        self._batched_size = 0

    def _load_keras(self, path: Path) -> None:
        import keras

        self._keras = load_keras_model(path)
        self._check_shape(path, tuple(self._keras.input_shape))
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            self._compiled = tf.function(lambda x: self._keras(x, training=False), reduce_retracing=True)
        else:  # a GPU machine's JAX (teacher targets for `train --accelerator`): Keras compiles it
            self._compiled = self._keras.predict_on_batch

    def _check_shape(self, path: Path, shape: tuple) -> None:
        expected = (self.input_size, self.input_size, 1)
        actual = tuple(int(value) for value in shape[1:])  # plain ints: TFLite gives numpy ints
        if actual != expected:
            raise ModelError(
                f"{path}: the network takes input {actual}, but card.json says {expected} "
                f"(input_size {self.input_size}, grayscale)"
            )

    # --- prediction --------------------------------------------------------------------------
    @property
    def best_tta(self) -> str:
        """The test-time augmentation that scored best on validation when the model was finalized."""
        return str(self.card.metrics.get("best_tta", "none"))

    def predict_faces(self, faces: np.ndarray, tta: str = "none") -> np.ndarray:
        """Probabilities (N, 7) for uint8 grayscale faces (N, S, S) already at the input size.

        tta: "none" (one pass: the live-video path), "flip", "tencrop", "multicrop", or "auto" for `best_tta`."""
        if tta == "auto":
            tta = self.best_tta
        faces = np.asarray(faces)
        if faces.ndim != 3 or faces.shape[1:] != (self.input_size, self.input_size):
            raise ValueError(f"expected faces of shape (N, {self.input_size}, {self.input_size}), got {faces.shape}")
        if len(faces) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        return predict_with_tta(self._predict_batch, faces, tta)

    def _predict_batch(self, faces: np.ndarray) -> np.ndarray:
        batch = scale_pixels(faces)
        with self._lock:
            if self.backend == "keras":
                return np.asarray(self._compiled(batch), dtype=np.float32)
            if len(batch) == 1:
                interpreter = self._single
            else:
                interpreter = self._batched
                if self._batched_size != len(batch):  # re-plan only when the batch size changes
                    interpreter.resize_tensor_input(self._input_index, batch.shape)
                    interpreter.allocate_tensors()
                    self._batched_size = len(batch)
            interpreter.set_tensor(self._input_index, batch)
            interpreter.invoke()
            return interpreter.get_tensor(self._output_index).copy()

    def prepare_face(self, image: np.ndarray, box: Box | None = None) -> np.ndarray:
        """The model's view of one face: the crop around `box`, or the whole image when None."""
        if box is None:
            return resize_gray(to_gray(image), self.input_size)
        return crop_face(image, box, self.input_size, self.margin)


class EmotionRecognizer:
    """Detector + classifier: `analyze(rgb)` finds and classifies every face in one model call."""

    def __init__(self, detector: FaceDetector, classifier: EmotionClassifier):
        self.detector = detector
        self.classifier = classifier

    def analyze(self, rgb: np.ndarray, settings: DetectorSettings = DetectorSettings(), tta: str = "none") -> ImageResult:
        started = time.perf_counter()
        detections = self.detector.detect(rgb, settings)
        detected = time.perf_counter()
        crops = [self.classifier.prepare_face(rgb, detection.box) for detection in detections]
        probabilities = self.classifier.predict_faces(np.stack(crops), tta) if crops else np.zeros((0, 7))
        classified = time.perf_counter()
        faces = [
            FacePrediction(index, detection.box, detection.score, probs, self.classifier.classes, crop)
            for index, (detection, probs, crop) in enumerate(zip(detections, probabilities, crops, strict=True), start=1)
        ]
        return ImageResult(
            faces,
            width=rgb.shape[1],
            height=rgb.shape[0],
            timings_ms={"detect": (detected - started) * 1e3, "classify": (classified - detected) * 1e3},
        )

    def classify_whole_image(self, rgb: np.ndarray, tta: str = "none") -> ImageResult:
        """Treat the whole picture as one face (for tight crops the detector cannot find)."""
        crop = self.classifier.prepare_face(rgb)
        probabilities = self.classifier.predict_faces(crop[np.newaxis], tta)[0]
        box = Box(0, 0, rgb.shape[1], rgb.shape[0])
        face = FacePrediction(1, box, 1.0, probabilities, self.classifier.classes, crop)
        return ImageResult([face], width=rgb.shape[1], height=rgb.shape[0], whole_image=True)


def faces_per_second(classifier: EmotionClassifier, batch: int, seconds: float = 1.0, warmup: int = 3) -> float:
    """How many faces a second `classifier` serves at this batch size on this machine (single
    pass, random faces; the median of short timed rounds over about `seconds`)."""
    faces = np.random.default_rng(0).integers(0, 256, (batch, classifier.input_size, classifier.input_size), dtype=np.uint8)
    for _ in range(warmup):
        classifier.predict_faces(faces)
    rounds: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(rounds) < 5:
        started = time.perf_counter()
        classifier.predict_faces(faces)
        rounds.append(time.perf_counter() - started)
    return batch / float(np.median(rounds))
