"""The model card: what a model folder is, stored beside its weights as `card.json`.

Inference reads the input size and the class list from here, never from constants, and the
registry lists models by their cards. A model folder holds:
  model.keras      the trained network (float32)
  model.tflite     the compiled serving path (optional; built from model.keras, weights per tflite_weights)
  card.json        this card
  history.csv      per-epoch loss, accuracy, val_loss, val_accuracy, lr
  evaluation.json  the evaluation report on the validation data
  lineage.json     a fine-tune's ancestors: their cards and histories (optional)
  evaluations/     stored evaluations with per-face predictions (fer_core.reports)
  members/         an ensemble's member histories, <member>.csv (fer_core.ensemble)
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fer_core.classes import CLASSES
from fer_core.errors import ModelError
from fer_core.preprocessing import DEFAULT_MARGIN

CARD_FILE = "card.json"
KERAS_FILE = "model.keras"
TFLITE_FILE = "model.tflite"
HISTORY_FILE = "history.csv"
EVALUATION_FILE = "evaluation.json"
LINEAGE_FILE = "lineage.json"  # the cycles a fine-tuned model descends from (fer_core.reports)
EVALUATIONS_DIR = "evaluations"  # stored evaluations with per-face predictions (fer_core.reports)
MEMBERS_DIR = "members"  # an ensemble's member histories (fer_core.ensemble)
# The weights model.tflite may hold (the card's `tflite_weights`), with how reports name each backend.
TFLITE_WEIGHTS = {
    "int8": "tflite (dynamic-range int8 weights)",
    "float32": "tflite (float32 weights)",
}


# How a run's weights become a model: "best" the epoch with the best single-pass val accuracy,
# "last" the final epoch, "average" the mean weights of the last epochs (train --average-last).
CHECKPOINTS = ("best", "last", "average")


@dataclass
class ModelCard:
    name: str
    architecture: str
    input_size: int
    classes: list[str] = field(default_factory=lambda: list(CLASSES))
    color_mode: str = "grayscale"
    face_margin: float = DEFAULT_MARGIN  # fraction of the detector box added on each side before cropping
    parameters: int = 0
    flops: int = 0  # floating-point operations per face (multiply-add = 2); 0 when not counted
    created: str = ""
    train_data: str = ""
    val_data: str = ""
    train_images: int = 0
    val_images: int = 0
    epochs_trained: int = 0
    best_epoch: int = 0  # the epoch whose weights these are
    checkpoint: str = "best"  # how the weights were chosen: one of CHECKPOINTS
    averaged_epochs: int = 0  # checkpoint "average": the weights are the mean of this many epochs, ending at best_epoch
    seconds_per_epoch: float = 0.0
    training_config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)
    teacher: dict[str, Any] = field(default_factory=dict)  # a distilled model's teacher (name, sha256, TTA...)
    members: list[dict[str, Any]] = field(default_factory=list)  # an ensemble's networks (fer_core.ensemble)
    tflite_weights: str = "int8"  # model.tflite's weights: "int8" (dynamic range) or "float32" (fer_core.export)
    notes: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=False) + "\n"


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weights_file(folder: str | os.PathLike) -> Path:
    """The file that identifies a model folder's weights: model.keras, else (a serving-only
    folder such as a shipped ensemble) model.tflite."""
    folder = Path(folder)
    return folder / KERAS_FILE if (folder / KERAS_FILE).is_file() else folder / TFLITE_FILE


def load_keras_model(path: str | os.PathLike):
    """A saved .keras model (uncompiled); any unreadable file becomes one ModelError naming it."""
    import keras  # lazily: reading cards must not pull in TensorFlow

    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001 - Keras raises many types for a bad file
        raise ModelError(f"{path}: cannot be loaded as a Keras model ({type(error).__name__}: {error})") from None


def write_card(folder: str | os.PathLike, card: ModelCard) -> Path:
    """Write card.json atomically (a reader never sees half a card)."""
    path = Path(folder) / CARD_FILE
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(card.to_json(), encoding="utf-8")
    os.replace(temporary, path)
    return path


def read_card(folder: str | os.PathLike) -> ModelCard:
    """Read and validate a model folder's card; ModelError says what is wrong."""
    folder = Path(folder)
    path = folder / CARD_FILE
    if not folder.is_dir():
        raise ModelError(f"{folder}: no such model folder")
    if not path.is_file():
        raise ModelError(f"{folder}: not a model folder (it has no {CARD_FILE})")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelError(f"{path}: the card is not valid JSON ({error})") from None
    if not isinstance(raw, dict):
        raise ModelError(f"{path}: the card must be a JSON object")
    known = {item.name for item in dataclasses.fields(ModelCard)}
    missing = [name for name in ("name", "architecture", "input_size") if name not in raw]
    if missing:
        raise ModelError(f"{path}: the card lacks {', '.join(missing)}")
    card = ModelCard(**{key: value for key, value in raw.items() if key in known})
    if not isinstance(card.input_size, int) or not 8 <= card.input_size <= 512:
        raise ModelError(f"{path}: input_size must be an integer between 8 and 512, got {card.input_size!r}")
    if list(card.classes) != list(CLASSES):
        raise ModelError(f"{path}: the card's classes {card.classes} differ from this app's {list(CLASSES)}")
    return card


def read_history(path: str | os.PathLike) -> list[dict]:
    """history.csv as a list of dicts with float values (epoch as int)."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        rows = []
        for raw in csv.DictReader(handle):
            row = {key: (float(value) if value not in ("", None) else float("nan")) for key, value in raw.items()}
            row["epoch"] = int(row["epoch"])
            rows.append(row)
    return rows
