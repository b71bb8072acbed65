"""Training a zoo model into a run folder that survives interruption.

A run folder holds `train_config.json` (the resolved arguments), `history.csv`, and under
`checkpoints/` the latest epoch with optimizer state (`last.keras`, for `--resume`), the best
epoch by validation accuracy (`best.keras`) and `state.json`. `finalize_run` (export.py) then
adds model.keras, model.tflite, card.json and evaluation.json (see card.py).

The learning rate is set every step from the global step (warm-up then cosine), rather than
stored as a schedule object, so a resumed run may change `--epochs` and needs no custom objects
to load.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from fer_core import zoo
from fer_core.card import KERAS_FILE, load_keras_model, sha256_of
from fer_core.data import FaceDataset, load_dataset
from fer_core.errors import FerError, ModelError
from fer_core.pipeline import AugmentConfig, make_dataset

CHECKPOINT_DIR = "checkpoints"  # git-ignored: latest and best checkpoints, resume state
CHECKPOINT_FILE = f"{CHECKPOINT_DIR}/last.keras"
BEST_FILE = f"{CHECKPOINT_DIR}/best.keras"
STATE_FILE = f"{CHECKPOINT_DIR}/state.json"
CONFIG_FILE = "train_config.json"
HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")


@dataclass
class TrainConfig:
    architecture: str
    train_data: str
    out: str
    val_data: str | None = None
    epochs: int = 60
    batch_size: int | None = None  # None: the architecture's default
    learning_rate: float | None = None  # peak learning rate; None: the architecture's default
    optimizer: str | None = None  # "sgd" or "adam"; None: the architecture's default
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    warmup_epochs: float = 2.0
    patience: int = 20  # epochs without a better val_accuracy before stopping
    precision: str = "float32"  # or "mixed_bfloat16" (+~30% speed on CPUs with AVX512-BF16)
    augment: bool = True
    train_usage: list[str] = field(default_factory=lambda: ["Training"])
    val_usage: list[str] = field(default_factory=lambda: ["PublicTest"])
    val_fraction: float = 0.1  # held out of the training data when no val_data is given
    limit: int | None = None  # use only the first N training images (smoke tests)
    weights: str | None = None  # pretrained base weights file (mobilenet_transfer)
    init_from: str | None = None  # start from this model's weights (model folder or .keras): fine-tuning
    init_sha256: str | None = None  # filled in by train(): which file init_from was when the run began
    mixup: float = 0.0  # mixup Beta(alpha, alpha); 0 turns it off
    seed: int = 1337

    def resolved(self) -> TrainConfig:
        spec = zoo.get_spec(self.architecture)
        return dataclasses.replace(
            self,
            batch_size=self.batch_size or spec.batch_size,
            learning_rate=self.learning_rate or spec.learning_rate,
            optimizer=self.optimizer or spec.optimizer,
        )


@dataclass
class TrainResult:
    run_dir: Path
    epochs_done: int
    best_epoch: int
    best_val_accuracy: float
    stopped_early: bool


def _load_split(path: str, usages: list[str], input_size: int) -> FaceDataset:
    return load_dataset(path, usages if str(path).lower().endswith(".csv") else None, image_size=input_size)


def load_validation_data(config: TrainConfig) -> FaceDataset:
    """The validation set alone (cheap when val_data is given; else the hold-out of train)."""
    if config.val_data:
        return _load_split(config.val_data, config.val_usage, zoo.get_spec(config.architecture).input_size)
    return load_training_data(config)[1]


def load_training_data(config: TrainConfig) -> tuple[FaceDataset, FaceDataset]:
    """Training and validation sets; without val_data, a stratified seeded hold-out of train."""
    input_size = zoo.get_spec(config.architecture).input_size
    train = _load_split(config.train_data, config.train_usage, input_size)
    if config.limit:
        order = np.random.default_rng(config.seed).permutation(len(train))[: config.limit]
        train = train.subset(order)
    if config.val_data:
        return train, _load_split(config.val_data, config.val_usage, input_size)
    rng = np.random.default_rng(config.seed)
    val_index = []
    for label in np.unique(train.labels):
        members = np.flatnonzero(train.labels == label)
        count = max(1, int(round(len(members) * config.val_fraction))) if len(members) > 1 else 0
        val_index.extend(rng.choice(members, count, replace=False).tolist())
    is_val = np.zeros(len(train), dtype=bool)
    is_val[val_index] = True
    source = f"{train.source} (hold-out {config.val_fraction:.0%})"
    return train.subset(~is_val), train.subset(is_val, source)


def learning_rate_at(step: int, config: TrainConfig, steps_per_epoch: int) -> float:
    """Linear warm-up to the peak, then cosine decay to zero at the last step."""
    peak = float(config.learning_rate)
    warmup = max(1, int(config.warmup_epochs * steps_per_epoch))
    total = max(warmup + 1, config.epochs * steps_per_epoch)
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / (total - warmup))
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


def initial_model_file(source: str | os.PathLike) -> Path:
    """The .keras file --init-from names: a model folder's model.keras, or the file itself."""
    path = Path(source)
    if path.is_dir():
        path = path / KERAS_FILE
    if not path.is_file():
        raise ModelError(f"{source}: no model to start from (expected a model folder or a .keras file)")
    return path


def load_initial_weights(model: keras.Model, source: str | os.PathLike) -> None:
    """Copy the weights of a saved model of the same architecture into `model` (a fine-tune start).

    Only weights are taken, so the new run gets a fresh optimizer and its own schedule.
    """
    path = initial_model_file(source)
    trained = load_keras_model(path)
    ours = [tuple(weight.shape) for weight in model.weights]
    theirs = [tuple(weight.shape) for weight in trained.weights]
    if ours != theirs:
        raise ModelError(
            f"{path}: its weights do not fit {model.name} ({len(theirs)} tensors vs {len(ours)}; "
            "--init-from needs a model of the same architecture)"
        )
    model.set_weights(trained.get_weights())


def _make_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    if config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(
            learning_rate=config.learning_rate, momentum=0.9, nesterov=True, weight_decay=config.weight_decay or None
        )
    elif config.optimizer == "adam":
        optimizer = keras.optimizers.AdamW(learning_rate=config.learning_rate, weight_decay=config.weight_decay or 0.0)
    else:
        raise ValueError(f"unknown optimizer {config.optimizer!r}; use sgd or adam")
    return optimizer


def _exclude_norms_and_biases(optimizer: keras.optimizers.Optimizer) -> None:
    # Decaying BN scales/shifts and biases hurts; the weights of convs and dense layers only.
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])


class RunFolderCallback(keras.callbacks.Callback):
    """Per step: the learning rate. Per epoch: checkpoint, best model, history row, state, early stop.

    The state file is written last, so after a crash `state.json` never claims an epoch whose
    checkpoint is missing; `history.csv` is cut back to it on resume.
    """

    def __init__(
        self, run_dir: Path, config: TrainConfig, steps_per_epoch: int, best: float, best_epoch: int, train_images: int
    ):
        super().__init__()
        self.train_images = train_images
        self.run_dir = run_dir
        self.config = config
        self.steps_per_epoch = steps_per_epoch
        self.best = best
        self.best_epoch = best_epoch
        self.epoch_started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.perf_counter()

    def on_train_batch_begin(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        self.model.optimizer.learning_rate.assign(learning_rate_at(step, self.config, self.steps_per_epoch))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        seconds = time.perf_counter() - self.epoch_started
        done = epoch + 1
        _save_atomically(self.model, self.run_dir / CHECKPOINT_FILE)
        val_accuracy = float(logs.get("val_accuracy", float("nan")))
        if val_accuracy > self.best:
            self.best, self.best_epoch = val_accuracy, done
            _save_atomically(self.model, self.run_dir / BEST_FILE)
        row = {
            "epoch": done,
            "loss": logs.get("loss"),
            "accuracy": logs.get("accuracy"),
            "val_loss": logs.get("val_loss"),
            "val_accuracy": logs.get("val_accuracy"),
            "lr": float(self.model.optimizer.learning_rate.numpy()),
            "seconds": round(seconds, 2),
        }
        _append_history(self.run_dir / "history.csv", row)
        _write_json(
            self.run_dir / STATE_FILE,
            {
                "epochs_done": done,
                "best_epoch": self.best_epoch,
                "best_val_accuracy": self.best,
                "train_images": self.train_images,
            },
        )
        print(
            f"epoch {done}/{self.config.epochs}: loss {row['loss']:.4f} acc {row['accuracy']:.4f} "
            f"val_loss {row['val_loss']:.4f} val_acc {val_accuracy:.4f} lr {row['lr']:.5f} "
            f"({seconds:.0f}s) best {self.best:.4f}@{self.best_epoch}",
            flush=True,
        )
        if done - self.best_epoch >= self.config.patience:
            print(f"early stopping: no better val_accuracy for {self.config.patience} epochs", flush=True)
            self.model.stop_training = True


def _save_atomically(model: keras.Model, path: Path) -> None:
    temporary = path.with_name(path.stem + ".tmp.keras")
    model.save(temporary)
    os.replace(temporary, path)


def _write_json(path: Path, payload: dict) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def _append_history(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)


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


def _truncate_history(path: Path, epochs_done: int) -> None:
    rows = [row for row in read_history(path) if row["epoch"] <= epochs_done]
    path.unlink(missing_ok=True)
    for row in rows:
        _append_history(path, row)


def train(config: TrainConfig, resume: bool = False, verbose: int | None = None) -> TrainResult:
    """Train (or resume) a run; returns where the run stands. Call `finalize_run` afterwards."""
    run_dir = Path(config.out)
    state_path = run_dir / STATE_FILE
    if resume:
        if not (run_dir / CONFIG_FILE).is_file() or not (run_dir / CHECKPOINT_FILE).is_file():
            raise FerError(f"{run_dir}: nothing to resume (no {CONFIG_FILE} and {CHECKPOINT_FILE})")
        saved = json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
        # The saved run wins, except for the number of epochs and the patience, which may grow.
        config = dataclasses.replace(TrainConfig(**saved), epochs=config.epochs, patience=config.patience, out=str(run_dir))
        state = json.loads(state_path.read_text(encoding="utf-8"))
    else:
        if (run_dir / CHECKPOINT_FILE).exists():
            raise FerError(f"{run_dir}: a run is already there; pass --resume to continue it or choose another --out")
        config = config.resolved()
        if config.init_from:  # which file it was, even after that model folder is replaced
            config = dataclasses.replace(config, init_sha256=sha256_of(initial_model_file(config.init_from)))
        state = {"epochs_done": 0, "best_epoch": 0, "best_val_accuracy": -1.0}
    (run_dir / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    _write_json(run_dir / CONFIG_FILE, dataclasses.asdict(config))

    keras.utils.set_random_seed(config.seed + state["epochs_done"])
    keras.mixed_precision.set_global_policy(config.precision)
    try:
        train_set, val_set = load_training_data(config)
        spec = zoo.get_spec(config.architecture)
        print(
            f"training {config.architecture} on {len(train_set)} images ({train_set.source}), "
            f"validating on {len(val_set)} ({val_set.source})",
            flush=True,
        )
        train_data = make_dataset(
            train_set.images, train_set.labels, spec.input_size, config.batch_size, training=True,
            augment=AugmentConfig() if config.augment else None, seed=config.seed, mixup_alpha=config.mixup,
        )
        val_data = make_dataset(val_set.images, val_set.labels, spec.input_size, 256, training=False)
        steps_per_epoch = math.ceil(len(train_set) / config.batch_size)

        if resume:
            _truncate_history(run_dir / "history.csv", state["epochs_done"])
            model = keras.saving.load_model(run_dir / CHECKPOINT_FILE)
            _exclude_norms_and_biases(model.optimizer)
        else:
            (run_dir / "history.csv").unlink(missing_ok=True)
            kwargs = {"weights": config.weights} if config.weights else {}
            model = zoo.create_model(config.architecture, **kwargs)
            if config.init_from:
                load_initial_weights(model, config.init_from)
            optimizer = _make_optimizer(config)
            _exclude_norms_and_biases(optimizer)
            model.compile(
                optimizer=optimizer,
                loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
                metrics=["accuracy"],
            )
        callback = RunFolderCallback(
            run_dir, config, steps_per_epoch, state["best_val_accuracy"], state["best_epoch"], len(train_set)
        )
        if state["epochs_done"] < config.epochs and state["epochs_done"] - state["best_epoch"] < config.patience:
            model.fit(
                train_data,
                validation_data=val_data,
                epochs=config.epochs,
                initial_epoch=state["epochs_done"],
                callbacks=[callback],
                verbose=verbose if verbose is not None else (1 if sys.stdout.isatty() else 0),
            )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    state = json.loads(state_path.read_text(encoding="utf-8"))
    return TrainResult(
        run_dir=run_dir,
        epochs_done=state["epochs_done"],
        best_epoch=state["best_epoch"],
        best_val_accuracy=state["best_val_accuracy"],
        stopped_early=state["epochs_done"] < config.epochs,
    )
