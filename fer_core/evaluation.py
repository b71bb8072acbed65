"""Evaluating a classifier on already-cropped faces (no detection here).

Produces the report the CLI prints, the app's Training report page draws and `evaluation.json`
stores: accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from fer_core.classes import CLASSES, NUM_CLASSES
from fer_core.data import FaceDataset

TTA_MODES = ("none", "flip", "tencrop", "multicrop")


@dataclass
class EvaluationReport:
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    confusion_matrix: list[list[int]]  # rows: true class, columns: predicted class
    classes: list[str]
    n_images: int
    tta: str = "none"
    data: str = ""
    model: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def write_json(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read_json(cls, path: str | os.PathLike) -> EvaluationReport:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        known = {item.name for item in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in raw.items() if key in known})

    def table(self) -> str:
        """A plain-text table for the terminal."""
        lines = [f"{'class':<10} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}"]
        for name in self.classes:
            row = self.per_class[name]
            lines.append(
                f"{name:<10} {row['precision']:>9.3f} {row['recall']:>7.3f} {row['f1']:>6.3f} {int(row['support']):>8d}"
            )
        lines.append(
            f"accuracy {self.accuracy:.4f}   macro-F1 {self.macro_f1:.4f}   images {self.n_images}   TTA {self.tta}"
        )
        return "\n".join(lines)


def report_from_predictions(y_true: np.ndarray, y_pred: np.ndarray, **info) -> EvaluationReport:
    """Metrics from integer labels; classes absent from both get zeros rather than warnings."""
    labels = list(range(NUM_CLASSES))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    # scikit-learn's macro-F1: classes that are true or predicted (a wrongly predicted absent class counts)
    present = (support > 0) | np.isin(labels, y_pred)
    per_class = {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(CLASSES, precision, recall, f1, support, strict=True)
    }
    return EvaluationReport(
        accuracy=float(np.mean(y_true == y_pred)) if len(y_true) else 0.0,
        macro_f1=float(np.mean(f1[present])) if present.any() else 0.0,
        per_class=per_class,
        confusion_matrix=confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        classes=list(CLASSES),
        n_images=int(len(y_true)),
        **info,
    )


def tta_views(faces: np.ndarray, mode: str, crop_fraction: float = 0.9) -> np.ndarray:
    """Views of (N, S, S) uint8 faces for test-time augmentation, shaped (V, N, S, S).

    flip: original + mirror. tencrop: four corner crops and the centre crop (resized back to S)
    and their mirrors, the classic ten-crop at 90% of the side. multicrop: flip's two views and
    tencrop's ten (12): the whole face as well as its crops, for the bigger faces.
    """
    if mode == "none":
        return faces[np.newaxis]
    if mode == "flip":
        return np.stack([faces, faces[:, :, ::-1]])
    if mode == "multicrop":
        return np.concatenate([tta_views(faces, "flip", crop_fraction), tta_views(faces, "tencrop", crop_fraction)])
    if mode != "tencrop":
        raise ValueError(f"unknown TTA mode {mode!r}; use one of {', '.join(TTA_MODES)}")
    import cv2

    side = faces.shape[1]
    crop = int(round(side * crop_fraction))
    offsets = [(0, 0), (0, side - crop), (side - crop, 0), (side - crop, side - crop), ((side - crop) // 2,) * 2]
    views = []
    for top, left in offsets:
        cropped = faces[:, top : top + crop, left : left + crop]
        resized = np.stack([cv2.resize(face, (side, side), interpolation=cv2.INTER_LINEAR) for face in cropped])
        views.extend([resized, resized[:, :, ::-1]])
    return np.stack(views)


def predict_with_tta(predict: Callable[[np.ndarray], np.ndarray], faces: np.ndarray, mode: str = "none") -> np.ndarray:
    """Average the probabilities of `predict` over the TTA views of `faces`."""
    views = tta_views(faces, mode)
    return np.mean([predict(view) for view in views], axis=0)


def evaluate(
    predict: Callable[[np.ndarray], np.ndarray], dataset: FaceDataset, tta: str = "none", model: str = ""
) -> EvaluationReport:
    """Evaluate a `predict(uint8 faces (N, S, S)) -> probabilities (N, 7)` function on a dataset."""
    probabilities = predict_with_tta(predict, dataset.images, tta)
    return report_from_predictions(
        dataset.labels, probabilities.argmax(axis=1), tta=tta, data=dataset.source, model=model
    )
