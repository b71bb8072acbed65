"""Stored evaluations of a model and what the Training report page computes from them.

An evaluation is kept beside the model in `evaluations/<slug>.json` (the report: accuracy,
macro-F1, per-class metrics, confusion matrix, which data and TTA) plus `<slug>.npz` (every
face's probabilities, true label and id within the data, so calibration, the most-confused
pairs and the gallery of mistakes need no second pass over the data). A model holds several,
named by data, split and TTA, e.g. `val-none`, `fer2013.csv-PrivateTest-multicrop`.

Also here: calibration (reliability bins, expected calibration error), confused pairs, the
per-class table with macro and weighted averages, and a model's learning curve across the
cycles of its lineage. No Streamlit, no TensorFlow at import.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from fer_core.card import EVALUATIONS_DIR, HISTORY_FILE, LINEAGE_FILE, read_card, read_history
from fer_core.classes import CLASSES, NUM_CLASSES
from fer_core.data import FaceDataset
from fer_core.errors import FerError
from fer_core.evaluation import EvaluationReport, report_from_predictions

EVALUATION_BATCH = 256
_SLUG_PART = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass
class StoredEvaluation:
    """One evaluation of one model; arrays are loaded with `load_evaluation`."""

    slug: str
    report: EvaluationReport
    created: str = ""
    usage: list[str] | None = None
    probabilities: np.ndarray | None = field(default=None, repr=False)  # (N, 7) float32
    labels: np.ndarray | None = field(default=None, repr=False)  # (N,) int
    ids: list[str] | None = field(default=None, repr=False)

    @property
    def title(self) -> str:
        usage = f" [{', '.join(self.usage)}]" if self.usage else ""
        return f"{self.report.data}{usage}, {self.report.n_images} faces, TTA {self.report.tta}"

    @property
    def predictions(self) -> np.ndarray:
        if self.probabilities is None:
            raise FerError(f"evaluation {self.slug}: no per-face predictions stored")
        return self.probabilities.argmax(axis=1)

    @property
    def confidences(self) -> np.ndarray:
        if self.probabilities is None:
            raise FerError(f"evaluation {self.slug}: no per-face predictions stored")
        return self.probabilities.max(axis=1)


def evaluation_slug(data: str, usages: Sequence[str] | None, tta: str) -> str:
    """A file-safe name from the data's last path part, the usages/splits and the TTA mode."""
    name = Path(str(data).rstrip("/")).name or "data"
    parts = [name, *(usages or []), tta]
    return "-".join(_SLUG_PART.sub("_", part).strip("_") or "x" for part in parts)[:120]


def predict_dataset(
    predict: Callable[[np.ndarray, str], np.ndarray],
    faces: np.ndarray,
    tta: str,
    progress: Callable[[int, int], None] | None = None,
    batch: int = EVALUATION_BATCH,
) -> np.ndarray:
    """`predict(faces, tta)` over all faces in batches, reporting (done, total) after each."""
    outputs = []
    for start in range(0, len(faces), batch):
        outputs.append(np.asarray(predict(faces[start : start + batch], tta), np.float32))
        if progress is not None:
            progress(min(start + batch, len(faces)), len(faces))
    return np.concatenate(outputs) if outputs else np.zeros((0, NUM_CLASSES), np.float32)


def store_evaluation(
    model_dir: str | os.PathLike,
    probabilities: np.ndarray,
    dataset: FaceDataset,
    tta: str,
    usages: Sequence[str] | None = None,
    model_name: str = "",
    extra: dict | None = None,
    slug: str | None = None,
) -> StoredEvaluation:
    """Build the report from per-face probabilities and keep both in `evaluations/` (atomically)."""
    report = report_from_predictions(
        dataset.labels, probabilities.argmax(axis=1), tta=tta, data=dataset.source, model=model_name
    )
    report.extra = dict(extra or {})
    slug = slug or evaluation_slug(dataset.source, usages, tta)
    folder = Path(model_dir) / EVALUATIONS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    arrays = folder / f".{slug}.tmp.npz"
    np.savez_compressed(
        arrays,
        probabilities=probabilities.astype(np.float16),
        labels=dataset.labels.astype(np.int8),
        ids=np.asarray(dataset.ids if dataset.ids is not None else [], dtype=str),
    )
    os.replace(arrays, folder / f"{slug}.npz")
    meta = folder / f".{slug}.tmp.json"
    meta.write_text(json.dumps({"slug": slug, "created": created, "usage": list(usages) if usages else None,
                                "report": report.to_dict()}, indent=1) + "\n", encoding="utf-8")
    os.replace(meta, folder / f"{slug}.json")
    return StoredEvaluation(slug, report, created, list(usages) if usages else None,
                            probabilities.astype(np.float32), dataset.labels, dataset.ids)


def evaluate_and_store(
    model_dir: str | os.PathLike,
    dataset: FaceDataset,
    tta: str = "auto",
    usages: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    classifier=None,
    slug: str | None = None,
) -> StoredEvaluation:
    """Evaluate a model folder's served path on cropped faces and store the result beside it.

    `classifier` may be another model's (a comparison stored under this model; give it a `slug`)."""
    if classifier is None:
        from fer_core.inference import EmotionClassifier

        classifier = EmotionClassifier(model_dir)
    tta = classifier.best_tta if tta == "auto" else tta
    probabilities = predict_dataset(classifier.predict_faces, dataset.images, tta, progress)
    return store_evaluation(
        model_dir, probabilities, dataset, tta, usages, model_name=classifier.card.name,
        extra={"backend": classifier.backend}, slug=slug,
    )


def list_evaluations(model_dir: str | os.PathLike) -> list[StoredEvaluation]:
    """The stored evaluations of a model (reports only, newest first); unreadable files are skipped."""
    folder = Path(model_dir) / EVALUATIONS_DIR
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if path.name.startswith("."):
            continue
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            report = EvaluationReport(**{key: value for key, value in raw["report"].items()
                                         if key in EvaluationReport.__dataclass_fields__})
        except (OSError, ValueError, KeyError, TypeError):
            continue
        found.append(StoredEvaluation(raw.get("slug", path.stem), report, raw.get("created", ""), raw.get("usage")))
    found.sort(key=lambda item: item.created, reverse=True)
    return found


def load_evaluation(model_dir: str | os.PathLike, slug: str) -> StoredEvaluation:
    """A stored evaluation with its per-face arrays."""
    for item in list_evaluations(model_dir):
        if item.slug == slug:
            arrays = Path(model_dir) / EVALUATIONS_DIR / f"{slug}.npz"
            if arrays.is_file():
                with np.load(arrays) as stored:
                    item.probabilities = stored["probabilities"].astype(np.float32)
                    item.labels = stored["labels"].astype(np.int64)
                    ids = [str(value) for value in stored["ids"]]
                    item.ids = ids if len(ids) == len(item.labels) else None
            return item
    raise FerError(f"{model_dir}: no stored evaluation named {slug!r}")


# --- what the page computes from an evaluation ----------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """Reliability of the top-class confidence: per bin, mean confidence vs accuracy."""

    edges: list[float]  # bins + 1 edges in [0, 1]
    confidence: list[float | None]  # mean confidence per bin (None when empty)
    accuracy: list[float | None]
    counts: list[int]
    ece: float  # expected calibration error: sum over bins of |acc - conf| weighted by share
    mce: float  # maximum calibration error over non-empty bins


def calibration(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> Calibration:
    """Equal-width confidence bins (Guo et al. 2017)."""
    if len(labels) == 0:
        raise FerError("calibration needs at least one prediction")
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    mean_conf, accuracy, counts = [], [], []
    ece, mce = 0.0, 0.0
    for index in range(bins):
        members = which == index
        count = int(members.sum())
        counts.append(count)
        if count == 0:
            mean_conf.append(None)
            accuracy.append(None)
            continue
        bin_conf, bin_acc = float(confidence[members].mean()), float(correct[members].mean())
        mean_conf.append(bin_conf)
        accuracy.append(bin_acc)
        gap = abs(bin_acc - bin_conf)
        ece += gap * count / len(labels)
        mce = max(mce, gap)
    return Calibration(edges.tolist(), mean_conf, accuracy, counts, float(ece), float(mce))


@dataclass(frozen=True)
class ConfusedPair:
    true: str
    predicted: str
    count: int
    share: float  # of the true class's faces


def confused_pairs(confusion: Sequence[Sequence[int]], classes: Sequence[str] = CLASSES, top: int = 10) -> list[ConfusedPair]:
    """The off-diagonal cells of a confusion matrix (rows true), largest first."""
    matrix = np.asarray(confusion)
    totals = matrix.sum(axis=1)
    pairs = [
        ConfusedPair(classes[row], classes[col], int(matrix[row, col]), float(matrix[row, col] / totals[row]) if totals[row] else 0.0)
        for row in range(len(classes))
        for col in range(len(classes))
        if row != col and matrix[row, col] > 0
    ]
    pairs.sort(key=lambda pair: (-pair.count, -pair.share))
    return pairs[:top]


def mistakes(evaluation: StoredEvaluation, true: str | None = None, predicted: str | None = None) -> np.ndarray:
    """Positions of misclassified faces (optionally one true/predicted pair), most confident first."""
    labels, guesses, confidence = evaluation.labels, evaluation.predictions, evaluation.confidences
    wrong = guesses != labels
    if true is not None:
        wrong &= labels == CLASSES.index(true)
    if predicted is not None:
        wrong &= guesses == CLASSES.index(predicted)
    positions = np.flatnonzero(wrong)
    return positions[np.argsort(-confidence[positions], kind="stable")]


def per_class_rows(report: EvaluationReport) -> list[dict]:
    """Per-class precision/recall/F1/support, then macro and weighted averages (for a table)."""
    rows = [{"class": name, **{key: report.per_class[name][key] for key in ("precision", "recall", "f1", "support")}}
            for name in report.classes]
    support = np.array([row["support"] for row in rows], float)
    present = support > 0
    for kind in ("macro avg", "weighted avg"):
        weights = present.astype(float) if kind == "macro avg" else support
        total = weights.sum() or 1.0
        rows.append({
            "class": kind,
            **{key: float(sum(row[key] * weight for row, weight in zip(rows[: len(report.classes)], weights, strict=True)) / total)
               for key in ("precision", "recall", "f1")},
            "support": int(support.sum()),
        })
    return rows


# --- a model's lineage --------------------------------------------------------------------------


@dataclass(frozen=True)
class LineageStep:
    """One training cycle in a model's ancestry (the model itself is the last)."""

    name: str
    sha256: str
    kept_epoch: int
    epochs_trained: int
    checkpoint: str
    created: str
    notes: str
    metrics: dict
    training_config: dict
    history: list[dict]


def model_lineage(model_dir: str | os.PathLike) -> list[LineageStep]:
    """The cycles that made a model, oldest first: its lineage.json ancestors, then itself."""
    folder = Path(model_dir)
    path = folder / LINEAGE_FILE
    raw = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    card = read_card(folder)
    raw.append({
        "name": card.name, "sha256": card.sha256.get("model.keras", ""), "kept_epoch": card.best_epoch,
        "epochs_trained": card.epochs_trained, "checkpoint": card.checkpoint, "created": card.created,
        "notes": card.notes, "metrics": card.metrics, "training_config": card.training_config,
        "history": read_history(folder / HISTORY_FILE),
    })
    keys = LineageStep.__dataclass_fields__
    return [LineageStep(**{key: entry.get(key, default) for key, default in
                           (("name", ""), ("sha256", ""), ("kept_epoch", 0), ("epochs_trained", 0), ("checkpoint", "best"),
                            ("created", ""), ("notes", ""), ("metrics", {}), ("training_config", {}), ("history", []))
                           if key in keys}) for entry in raw]


def lineage_curve(steps: Sequence[LineageStep]) -> list[dict]:
    """One learning curve across cycles: each ancestor's epochs up to the one its child started
    from (later epochs are kept, marked `after_kept`), numbered on one running epoch axis."""
    rows: list[dict] = []
    offset = 0
    for cycle, step in enumerate(steps, start=1):
        last = step is steps[-1]
        for row in step.history:
            rows.append({**row, "cycle": cycle, "model": step.name, "global_epoch": offset + row["epoch"],
                         "after_kept": (not last) and row["epoch"] > step.kept_epoch,
                         "kept": row["epoch"] == step.kept_epoch})
        offset += step.kept_epoch if not last else 0
    return rows
