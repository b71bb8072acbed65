"""The model registry: the model folders under `models/`, their cards, and which is default.

A model is any sub-folder with a valid `card.json`; `models/registry.json` names the default.
Registering a run copies only what serving and reporting need (no checkpoints), so the
registry stays small enough to commit.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from fer_core.card import (
    CARD_FILE,
    EVALUATION_FILE,
    EVALUATIONS_DIR,
    HISTORY_FILE,
    KERAS_FILE,
    LINEAGE_FILE,
    MEMBERS_DIR,
    TFLITE_FILE,
    ModelCard,
    read_card,
)
from fer_core.errors import ModelError

DEFAULT_MODELS_DIR = Path(os.environ.get("FER_MODELS_DIR", Path(__file__).resolve().parent.parent / "models"))
REGISTRY_FILE = "registry.json"
MODEL_FILES = (KERAS_FILE, TFLITE_FILE, CARD_FILE, HISTORY_FILE, EVALUATION_FILE, LINEAGE_FILE, "train_config.json")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class RegisteredModel:
    name: str
    path: Path
    card: ModelCard
    is_default: bool = False

    @property
    def val_accuracy(self) -> float | None:
        return self.card.metrics.get("val_accuracy")

    def label(self) -> str:
        accuracy = self.val_accuracy
        shown = f"{accuracy:.1%} val" if isinstance(accuracy, (int, float)) else "not evaluated"
        return f"{self.name} ({self.card.architecture}, {shown}){' - default' if self.is_default else ''}"


@dataclass
class ModelRegistry:
    root: Path = field(default_factory=lambda: DEFAULT_MODELS_DIR)

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    # --- reading --------------------------------------------------------------------------
    def _entries(self) -> dict:
        path = self.root / REGISTRY_FILE
        if not path.is_file():
            return {}
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return {}
        return entries if isinstance(entries, dict) else {}

    def _default_name(self) -> str | None:
        return self._entries().get("default")

    def live_default(self) -> RegisteredModel:
        """The model the live webcam uses unless the user picks another: registry.json's "live"
        (a fast model), else the default model."""
        models = self.list()
        if not models:
            raise ModelError(f"{self.root}: no usable model folder")
        live = self._entries().get("live")
        return next((model for model in models if model.name == live), models[0])

    def _write_entries(self, **changes: str) -> None:
        path = self.root / REGISTRY_FILE
        entries = {**self._entries(), **changes}
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, path)

    def scan(self) -> tuple[list[RegisteredModel], dict[str, str]]:
        """Valid models (default first, then by name) and the problems of invalid folders."""
        models, problems = [], {}
        default = self._default_name()
        if self.root.is_dir():
            for folder in sorted(self.root.iterdir()):
                if not folder.is_dir() or folder.name.startswith("."):
                    continue
                try:
                    card = read_card(folder)
                except ModelError as error:
                    problems[folder.name] = str(error)
                    continue
                if not (folder / TFLITE_FILE).is_file() and not (folder / KERAS_FILE).is_file():
                    problems[folder.name] = f"{folder}: no {TFLITE_FILE} or {KERAS_FILE} (unfinished training run?)"
                    continue
                models.append(RegisteredModel(folder.name, folder, card, folder.name == default))
        if models and not any(model.is_default for model in models):
            best = max(models, key=lambda model: model.val_accuracy or 0.0)
            best.is_default = True
        models.sort(key=lambda model: (not model.is_default, model.name))
        return models, problems

    def list(self) -> list[RegisteredModel]:
        return self.scan()[0]

    def get(self, name: str) -> RegisteredModel:
        for model in self.list():
            if model.name == name:
                return model
        raise ModelError(f"no model named {name!r} in {self.root}")

    def default(self) -> RegisteredModel:
        models = self.list()
        if not models:
            raise ModelError(f"{self.root}: no usable model folder (each needs card.json and model.tflite or model.keras)")
        return models[0]

    # --- writing --------------------------------------------------------------------------
    def set_default(self, name: str) -> None:
        self.get(name)  # must exist
        self._write_entries(default=name)

    def set_live_default(self, name: str) -> None:
        """Make `name` the live webcam's model (photos keep using the default model)."""
        self.get(name)
        self._write_entries(live=name)

    def next_name(self, base: str) -> str:
        """`base`, or `base_v2`, `base_v3`... whichever is free."""
        if not (self.root / base).exists():
            return base
        version = 2
        while (self.root / f"{base}_v{version}").exists():
            version += 1
        return f"{base}_v{version}"

    def register(self, run_dir: str | os.PathLike, name: str | None = None) -> RegisteredModel:
        """Copy a finalized run's model files into `models/<name>` (never overwriting)."""
        run_dir = Path(run_dir)
        card = read_card(run_dir)
        name = name or self.next_name(card.name)
        if not _NAME.match(name):
            raise ModelError(f"{name!r}: a model name uses letters, digits, '_', '-' and '.' (64 at most)")
        target = self.root / name
        if target.resolve() == run_dir.resolve():
            return self.get(name)
        if target.exists():
            raise ModelError(f"{target}: a model of that name exists already")
        staging = self.root / f".{name}.incoming"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for file in MODEL_FILES:
            if (run_dir / file).is_file():
                shutil.copy2(run_dir / file, staging / file)
        for folder in (EVALUATIONS_DIR, MEMBERS_DIR):
            if (run_dir / folder).is_dir():
                shutil.copytree(run_dir / folder, staging / folder)
        card.name = name
        (staging / CARD_FILE).write_text(card.to_json(), encoding="utf-8")
        os.replace(staging, target)  # appears complete or not at all
        return self.get(name)
