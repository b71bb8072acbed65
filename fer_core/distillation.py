"""Knowledge distillation: a small, fast network learns from a big one's averaged predictions.

The teacher is any registered model folder; it labels every training face once with its
test-time-augmented probabilities (the card's best TTA: what the teacher is best at), and the
student is trained on those soft targets together with the true labels (Hinton et al. 2015):

    loss = alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(smoothed label, student)

where `_T` means softened with temperature T. The teacher's predictions are computed before the
first epoch and cached in the run folder, so a resumed run does not pay for them again. The
targets travel through tf.data beside the one-hot labels (a 2K-wide target row); the geometric
augmentation moves only the image, which is the usual approximation for offline distillation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
from keras import ops

from fer_core.card import read_card, sha256_of, weights_file
from fer_core.classes import NUM_CLASSES
from fer_core.data import FaceDataset
from fer_core.errors import ModelError
from fer_core.preprocessing import resize_faces

EPSILON = 1e-7
TEACHER_BATCH = 512


def _faces_digest(dataset: FaceDataset) -> str:
    """Identifies a training set's faces (pixels and labels), so cached targets match it."""
    digest = hashlib.sha256(dataset.images.tobytes())
    digest.update(dataset.labels.tobytes())
    return digest.hexdigest()


def teacher_predictions(
    teacher_dir: str | Path,
    faces: np.ndarray,
    tta: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """The teacher's probabilities (N, 7) for uint8 faces (N, S, S), in batches.

    Faces are resized to the teacher's input size when the student's differs.
    """
    from fer_core.inference import EmotionClassifier

    # The float Keras model: a batch job, where it is faster than the TFLite export (and exact);
    # a serving-only folder (a shipped ensemble) teaches through its TFLite file.
    teacher = EmotionClassifier(teacher_dir, prefer_tflite=False)
    outputs = []
    for start in range(0, len(faces), TEACHER_BATCH):
        batch = resize_faces(faces[start : start + TEACHER_BATCH], teacher.input_size)
        outputs.append(teacher.predict_faces(batch, tta=tta))
        if progress is not None:
            progress(min(start + TEACHER_BATCH, len(faces)), len(faces))
    return np.concatenate(outputs).astype(np.float32) if outputs else np.zeros((0, NUM_CLASSES), np.float32)


def cached_teacher_predictions(
    cache_file: Path,
    teacher_dir: str | Path,
    dataset: FaceDataset,
    tta: str,
    progress: Callable[[int, int], None] | None = None,
    teacher_sha256: str | None = None,
) -> np.ndarray:
    """`teacher_predictions` for `dataset`, reused from `cache_file` when teacher, TTA and faces match.

    The teacher is its weights' sha256: `teacher_sha256`, the run's record of them, wins over the
    folder's files, so a GPU machine that got the run's cache but not the teacher's model.keras
    (none at all, or only its TFLite file) keys the cache as the CPU machine that made it did.
    """
    if teacher_sha256 is None:
        teacher_file = weights_file(teacher_dir)
        teacher_sha256 = sha256_of(teacher_file) if teacher_file.is_file() else str(teacher_dir)
    key = {"teacher_sha256": teacher_sha256,
           "tta": tta, "faces": _faces_digest(dataset)}
    if cache_file.is_file():
        with np.load(cache_file) as cached:
            if all(str(cached[name]) == value for name, value in key.items()) and len(cached["probabilities"]) == len(dataset):
                return cached["probabilities"]
    probabilities = teacher_predictions(teacher_dir, dataset.images, tta, progress)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    temporary = cache_file.with_name(cache_file.stem + ".tmp.npz")
    np.savez(temporary, probabilities=probabilities, **key)
    temporary.replace(cache_file)
    return probabilities


def describe_teacher(teacher_dir: str | Path) -> dict:
    """What a student's card records about its teacher: name, architecture, accuracy, weights."""
    card = read_card(teacher_dir)
    weights = weights_file(teacher_dir)
    if not weights.is_file():
        raise ModelError(f"{teacher_dir}: the teacher has no weights (model.keras or model.tflite)")
    return {
        "name": card.name,
        "path": str(teacher_dir),
        "architecture": card.architecture,
        "best_tta": card.metrics.get("best_tta", "none"),
        "val_accuracy_by_tta": card.metrics.get("val_accuracy_by_tta", {}),
        "sha256": sha256_of(weights),
    }


@keras.saving.register_keras_serializable(package="fer_core")
class DistillationLoss(keras.losses.Loss):
    """y_true is [one-hot label (K) | teacher probabilities (K)]; y_pred the student's softmax."""

    def __init__(
        self,
        alpha: float = 0.8,
        temperature: float = 4.0,
        label_smoothing: float = 0.1,
        num_classes: int = NUM_CLASSES,
        name: str = "distillation",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.alpha = float(alpha)
        self.temperature = float(temperature)
        self.label_smoothing = float(label_smoothing)
        self.num_classes = int(num_classes)

    def call(self, y_true, y_pred):
        classes = self.num_classes
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        hard, soft = y_true[:, :classes], y_true[:, classes:]
        hard_loss = keras.losses.categorical_crossentropy(hard, y_pred, label_smoothing=self.label_smoothing)
        # Softmax outputs are turned back into log-probabilities; log(softmax(z)) / T gives the
        # logits z / T up to a constant, which the softmax below removes.
        teacher_logits = ops.log(ops.clip(soft, EPSILON, 1.0)) / self.temperature
        student_logits = ops.log(ops.clip(y_pred, EPSILON, 1.0)) / self.temperature
        teacher_log = ops.log_softmax(teacher_logits, axis=-1)
        student_log = ops.log_softmax(student_logits, axis=-1)
        kl = ops.sum(ops.exp(teacher_log) * (teacher_log - student_log), axis=-1) * self.temperature**2
        return self.alpha * kl + (1.0 - self.alpha) * hard_loss

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "temperature": self.temperature,
            "label_smoothing": self.label_smoothing,
            "num_classes": self.num_classes,
        }


@keras.saving.register_keras_serializable(package="fer_core")
class HardLabelAccuracy(keras.metrics.MeanMetricWrapper):
    """Accuracy against the one-hot half of a distillation target (named "accuracy", so the
    history has the same columns as any other run). Only the first K columns of y_pred count: a
    mixing training model appends mixup's weight (augmentation.MixupPairs)."""

    def __init__(self, num_classes: int = NUM_CLASSES, name: str = "accuracy", dtype=None):
        self.num_classes = int(num_classes)
        super().__init__(fn=self._accuracy, name=name, dtype=dtype)

    def _accuracy(self, y_true, y_pred):
        return keras.metrics.categorical_accuracy(y_true[:, : self.num_classes], y_pred[:, : self.num_classes])

    def get_config(self) -> dict:
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype}
