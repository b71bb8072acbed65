"""Training a zoo model into a run folder that survives interruption.

A run folder holds `train_config.json` (the resolved arguments), `history.csv`, and under
`checkpoints/` the latest epoch with optimizer state (`last.keras`, for `--resume`), the best
epoch by validation accuracy (`best.keras`) and `state.json`. `finalize_run` (export.py) then
adds model.keras, model.tflite, card.json and evaluation.json (see card.py).

The learning rate is set every step from the global step (warm-up then cosine), rather than
stored as a schedule object, so a resumed run may change `--epochs` and needs no custom objects
to load.

With `average_last` N, `checkpoints/average.keras` holds the mean of the weights (batch-norm
statistics included) of the run's last N epochs, a running mean updated after each of them: at the
end of a cosine schedule the epochs' weights scatter around a better point than any one of them
(stochastic weight averaging's tail). `finalize_run` serves it when the run kept one.

A fine-tune (`init_from`) writes `lineage.json`: every ancestor's card and history, so a model
folder carries its whole learning curve. A distilled run (`teacher`) trains on the teacher's
test-time-augmented predictions (fer_core.distillation). Progress and cancellation go through a
`TrainingReporter` (fer_core.runs writes them to the run folder for the app's pages).
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

from fer_core import distillation, zoo
from fer_core.augmentation import MixedTargetLoss
from fer_core.card import (
    CARD_FILE,
    HISTORY_FILE,
    KERAS_FILE,
    LINEAGE_FILE,
    load_keras_model,
    read_card,
    read_history,
    sha256_of,
)
from fer_core.data import FaceDataset, load_dataset
from fer_core.ensemble import is_ensemble
from fer_core.errors import FerError, ModelError
from fer_core.progress import TrainingCancelled, TrainingReporter

__all__ = ["TrainConfig", "TrainResult", "TrainingCancelled", "TrainingReporter", "read_history", "train"]

CHECKPOINT_DIR = "checkpoints"  # git-ignored: latest and best checkpoints, resume state
CHECKPOINT_FILE = f"{CHECKPOINT_DIR}/last.keras"
BEST_FILE = f"{CHECKPOINT_DIR}/best.keras"
AVERAGE_FILE = f"{CHECKPOINT_DIR}/average.keras"
STATE_FILE = f"{CHECKPOINT_DIR}/state.json"
TEACHER_CACHE = f"{CHECKPOINT_DIR}/teacher_targets.npz"
CONFIG_FILE = "train_config.json"
FINISHED_ON_CPU = "the rest on the CPU path"  # what a resumed accelerator run's `accelerator` adds
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
    photo_augment: bool = False  # also photometric jitter (pipeline.PHOTO_AUGMENT): exposure, noise, blur, JPEG
    train_usage: list[str] = field(default_factory=lambda: ["Training"])
    val_usage: list[str] = field(default_factory=lambda: ["PublicTest"])
    val_fraction: float = 0.1  # held out of the training data when no val_data is given
    limit: int | None = None  # use only the first N training images (smoke tests)
    weights: str | None = None  # pretrained base weights file (mobilenet_transfer)
    init_from: str | None = None  # start from this model's weights (model folder or .keras): fine-tuning
    init_sha256: str | None = None  # filled in by train(): which file init_from was when the run began
    mixup: float = 0.0  # mixup Beta(alpha, alpha); 0 turns it off
    mix_data: list[str] = field(default_factory=list)  # more training data added to train_data (e.g. FER2013)
    teacher: str | None = None  # distil from this model folder's test-time-augmented predictions
    teacher_sha256: str | None = None  # filled in by train(): which weights the teacher had
    teacher_tta: str = "auto"  # the teacher's TTA for its targets; auto: its card's best
    distill_alpha: float = 0.8  # weight of the teacher's targets against the true labels
    distill_temperature: float = 4.0
    seed: int = 1337
    average_last: int = 0  # average the weights of the last N epochs into checkpoints/average.keras; 0: off
    accelerator: str | None = None  # filled by `train --accelerator`: Keras, its backend and the device

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

    @classmethod
    def of_run(cls, run_dir: Path, config: TrainConfig) -> TrainResult:
        """Where a run stands, from its state file (written after each finished epoch)."""
        state = json.loads((run_dir / STATE_FILE).read_text(encoding="utf-8"))
        return cls(
            run_dir=run_dir,
            epochs_done=state["epochs_done"],
            best_epoch=state["best_epoch"],
            best_val_accuracy=state["best_val_accuracy"],
            stopped_early=state["epochs_done"] < config.epochs,
        )


def _is_dataset_root(path: str) -> bool:
    from fer_core.dataset_store import is_dataset_root

    return is_dataset_root(path)


def _load_split(path: str, usages: list[str], input_size: int, store_split: str) -> FaceDataset:
    """One split of any data source: a CSV's Usage values, a dataset store's split, or a folder."""
    if _is_dataset_root(path):
        return load_dataset(path, [store_split], image_size=input_size)
    return load_dataset(path, usages if str(path).lower().endswith(".csv") else None, image_size=input_size)


def _concatenate(parts: list[FaceDataset]) -> FaceDataset:
    if len(parts) == 1:
        return parts[0]
    ids = [f"{part.source}:{face}" for part in parts for face in (part.ids or [str(i) for i in range(len(part))])]
    return FaceDataset(
        np.concatenate([part.images for part in parts]),
        np.concatenate([part.labels for part in parts]),
        " + ".join(part.source for part in parts),
        ids=ids,
    )


def load_validation_data(config: TrainConfig) -> FaceDataset:
    """The validation set alone (cheap when val_data is given; else the hold-out of train)."""
    input_size = zoo.get_spec(config.architecture).input_size
    if config.val_data:
        return _load_split(config.val_data, config.val_usage, input_size, "val")
    if _is_dataset_root(config.train_data):
        store_val = _store_validation(config.train_data, input_size)
        if store_val is not None:
            return store_val
    return load_training_data(config)[1]


def _store_validation(root: str, input_size: int) -> FaceDataset | None:
    """A dataset store's own val split, or None when it has no labelled face yet."""
    try:
        return load_dataset(root, ["val"], image_size=input_size)
    except FerError:
        return None


def load_training_data(config: TrainConfig) -> tuple[FaceDataset, FaceDataset]:
    """Training and validation sets; without val_data, a dataset store's val split, else a
    stratified seeded hold-out of train. `mix_data` sources are added to the training set."""
    input_size = zoo.get_spec(config.architecture).input_size
    train = _load_split(config.train_data, config.train_usage, input_size, "train")
    if config.mix_data:
        train = _concatenate([train, *(_load_split(path, config.train_usage, input_size, "train") for path in config.mix_data)])
    if config.limit:
        order = np.random.default_rng(config.seed).permutation(len(train))[: config.limit]
        train = train.subset(order)
    if config.val_data:
        return train, _load_split(config.val_data, config.val_usage, input_size, "val")
    if _is_dataset_root(config.train_data):
        store_val = _store_validation(config.train_data, input_size)
        if store_val is not None:
            return train, store_val
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


@keras.saving.register_keras_serializable(package="fer_core")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to the peak over `warmup` steps, then cosine decay to zero at step `total`."""

    def __init__(self, peak: float, warmup: int, total: int):
        self.peak, self.warmup, self.total = float(peak), max(1, int(warmup)), max(int(warmup) + 1, int(total))

    @classmethod
    def for_run(cls, config: TrainConfig, steps_per_epoch: int) -> WarmupCosine:
        return cls(config.learning_rate, int(config.warmup_epochs * steps_per_epoch), config.epochs * steps_per_epoch)

    def __call__(self, step):
        """In the optimizer's graph (the accelerator path)."""
        ops = keras.ops
        return self._curve(ops.cast(step, "float32"), ops.cos, ops.minimum, ops.where)

    def value(self, step: int) -> float:
        """In plain Python: what the CPU path sets before each step, at no tensor cost."""
        return float(self._curve(float(step), math.cos, min, lambda before, rising, falling: rising if before else falling))

    def _curve(self, step, cos, minimum, where):
        rising = self.peak * (step + 1.0) / self.warmup
        progress = minimum(1.0, (step - self.warmup) / (self.total - self.warmup))
        falling = self.peak * 0.5 * (1.0 + cos(math.pi * progress))
        return where(step < self.warmup, rising, falling)

    def get_config(self) -> dict:
        return {"peak": self.peak, "warmup": self.warmup, "total": self.total}


def learning_rate_at(step: int, config: TrainConfig, steps_per_epoch: int) -> float:
    """The learning rate at `step` (the CPU path sets it per step, so a resumed run may add epochs)."""
    return WarmupCosine.for_run(config, steps_per_epoch).value(step)


def initial_model_file(source: str | os.PathLike) -> Path:
    """The .keras file --init-from names: a model folder's model.keras, or the file itself."""
    path = Path(source)
    if path.is_dir():
        if (path / CARD_FILE).is_file() and is_ensemble(card := read_card(path)):
            names = ", ".join(member["name"] for member in card.members)
            raise ModelError(f"{source}: an ensemble of {len(card.members)} networks ({names}); a fine-tune starts "
                             "from one network: pass a single model's folder")
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


def write_lineage(run_dir: Path, init_from: str | os.PathLike) -> None:
    """Record the parent model's lineage (its ancestors and itself) in a new fine-tuning run, so
    the finished model carries its whole learning curve (reports.model_lineage reads it back)."""
    from fer_core.reports import model_lineage

    parent = Path(init_from)
    if parent.is_dir() and (parent / CARD_FILE).is_file():
        _write_json(run_dir / LINEAGE_FILE, [dataclasses.asdict(step) for step in model_lineage(parent)])


def _make_optimizer(config: TrainConfig, schedule: WarmupCosine | None = None) -> keras.optimizers.Optimizer:
    learning_rate = schedule or config.learning_rate
    if config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(
            learning_rate=learning_rate, momentum=0.9, nesterov=True, weight_decay=config.weight_decay or None
        )
    elif config.optimizer == "adam":
        optimizer = keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=config.weight_decay or 0.0)
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
        self,
        run_dir: Path,
        config: TrainConfig,
        steps_per_epoch: int,
        best: float,
        best_epoch: int,
        train_images: int,
        reporter: TrainingReporter,
        saved_model: keras.Model | None = None,
        set_lr_per_step: bool = True,
    ):
        """`saved_model`: what the checkpoints hold when it is not the model being fitted (the
        accelerator path fits it wrapped in its augmentation layers). `set_lr_per_step` False:
        the optimizer follows a `WarmupCosine` schedule of its own."""
        super().__init__()
        self.saved_model = saved_model
        self.set_lr_per_step = set_lr_per_step
        self.train_images = train_images
        self.run_dir = run_dir
        self.config = config
        self.steps_per_epoch = steps_per_epoch
        self.best = best
        self.best_epoch = best_epoch
        self.reporter = reporter
        self.epoch_started = 0.0
        self.epoch = 0
        self.average: list[np.ndarray] | None = None  # running mean of the last epochs' weights
        self.averaged_epochs = 0
        self.average_model: keras.Model | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self.reporter.check_cancel()
        self.reporter.phase("training", f"epoch {epoch + 1} of {self.config.epochs}")
        self.epoch_started = time.perf_counter()
        self.epoch = epoch + 1

    def on_train_batch_begin(self, batch, logs=None):
        if not self.set_lr_per_step:
            return
        step = int(self.model.optimizer.iterations.numpy())
        self.model.optimizer.learning_rate.assign(learning_rate_at(step, self.config, self.steps_per_epoch))

    def on_train_batch_end(self, batch, logs=None):
        # A cancel stops here, between batches: the unfinished epoch is dropped, the last
        # finished one stays checkpointed (resumable).
        self.reporter.check_cancel()
        self.reporter.batch(self.epoch, self.config.epochs, batch + 1, self.steps_per_epoch, dict(logs or {}))

    def on_test_begin(self, logs=None):
        self.reporter.phase("validating", f"epoch {self.epoch} of {self.config.epochs}")

    def on_test_batch_end(self, batch, logs=None):
        self.reporter.check_cancel()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        seconds = time.perf_counter() - self.epoch_started
        done = epoch + 1
        saved = self.saved_model or self.model
        _save_atomically(saved, self.run_dir / CHECKPOINT_FILE)
        val_accuracy = float(logs.get("val_accuracy", float("nan")))
        if val_accuracy > self.best:
            self.best, self.best_epoch = val_accuracy, done
            _save_atomically(saved, self.run_dir / BEST_FILE)
        window_start = self.config.epochs - self.config.average_last + 1
        if self.config.average_last and done >= window_start:
            self._add_to_average(saved, starts=done == window_start)
        elif self.averaged_epochs:  # resumed with more epochs: the window has moved past this one
            self.average, self.averaged_epochs = None, 0
            (self.run_dir / AVERAGE_FILE).unlink(missing_ok=True)
        row = {
            "epoch": done,
            "loss": logs.get("loss"),
            "accuracy": logs.get("accuracy"),
            "val_loss": logs.get("val_loss"),
            "val_accuracy": logs.get("val_accuracy"),
            "lr": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
            "seconds": round(seconds, 2),
        }
        _append_history(self.run_dir / HISTORY_FILE, row)
        _write_json(
            self.run_dir / STATE_FILE,
            {
                "epochs_done": done,
                "best_epoch": self.best_epoch,
                "best_val_accuracy": self.best,
                "train_images": self.train_images,
                **({"averaged_epochs": self.averaged_epochs} if self.config.average_last else {}),
            },
        )
        print(
            f"epoch {done}/{self.config.epochs}: loss {row['loss']:.4f} acc {row['accuracy']:.4f} "
            f"val_loss {row['val_loss']:.4f} val_acc {val_accuracy:.4f} lr {row['lr']:.5f} "
            f"({seconds:.0f}s) best {self.best:.4f}@{self.best_epoch}",
            flush=True,
        )
        self.reporter.epoch_end(row)
        if done - self.best_epoch >= self.config.patience:
            print(f"early stopping: no better val_accuracy for {self.config.patience} epochs", flush=True)
            self.model.stop_training = True

    def resume_average(self, averaged_epochs: int) -> None:
        """Pick up the running mean a resumed run had saved (on_epoch_end drops it if a longer
        run's window has moved past it)."""
        if averaged_epochs and (self.run_dir / AVERAGE_FILE).is_file():
            self.average = keras.saving.load_model(self.run_dir / AVERAGE_FILE, compile=False).get_weights()
            self.averaged_epochs = averaged_epochs

    def _add_to_average(self, saved: keras.Model, starts: bool) -> None:
        """Fold this epoch's weights into the mean; the window's first epoch (`starts`) begins it
        afresh, so a resumed run given more epochs starts its window again."""
        weights = saved.get_weights()  # all float: the zoo's models hold no integer state
        if starts or self.average is None:
            self.average, self.averaged_epochs = weights, 1
        else:
            self.averaged_epochs += 1
            self.average = [mean + (weight - mean) / self.averaged_epochs for mean, weight in zip(self.average, weights, strict=True)]
        if self.average_model is None:  # a copy to save: the model in training keeps its weights
            # (from its layer config: clone_model and to_json carry the compiled optimizer along)
            self.average_model = type(saved).from_config(saved.get_config())
        self.average_model.set_weights(self.average)
        _save_atomically(self.average_model, self.run_dir / AVERAGE_FILE)


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


def _truncate_history(path: Path, epochs_done: int) -> None:
    rows = [row for row in read_history(path) if row["epoch"] <= epochs_done]
    path.unlink(missing_ok=True)
    for row in rows:
        _append_history(path, row)


def _compile_for(
    model: keras.Model, config: TrainConfig, schedule: WarmupCosine | None = None, mixes: bool = False, **compile_args
) -> None:
    """`mixes`: the model blends its faces itself and appends mixup's weight to its output
    (the accelerator path's mixup), so the loss blends the targets to match."""
    optimizer = _make_optimizer(config, schedule)
    _exclude_norms_and_biases(optimizer)
    if config.teacher:
        loss = distillation.DistillationLoss(config.distill_alpha, config.distill_temperature, config.label_smoothing)
        metrics = [distillation.HardLabelAccuracy()]
    else:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
        metrics = ["accuracy"]
    if mixes:
        loss, metrics = MixedTargetLoss(loss), [distillation.HardLabelAccuracy()]
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, **compile_args)


def _continue_without_optimizer_state(model: keras.Model, config: TrainConfig, step: int) -> None:
    """Resume from a checkpoint saved without its optimizer (the accelerator path saves the bare
    model): a fresh optimizer that starts at `step`, so the schedule goes on where it stopped;
    only the momentum starts again from zero."""
    print(f"the checkpoint has no optimizer state (an accelerator run): the optimizer starts afresh "
          f"at step {step}, only its momentum is lost", flush=True)
    _compile_for(model, config)
    model.optimizer.iterations.assign(step)


def _teacher_targets(
    config: TrainConfig, run_dir: Path, train_set: FaceDataset, val_set: FaceDataset, reporter: TrainingReporter
) -> tuple[np.ndarray, np.ndarray]:
    """The teacher's probabilities for the training and validation faces (cached in the run)."""
    reporter.phase("teacher predictions", f"{config.teacher} labels {len(train_set) + len(val_set)} faces ({config.teacher_tta} TTA)")
    total = len(train_set) + len(val_set)

    def progress(offset: int) -> object:
        def report(done: int, _count: int) -> None:
            reporter.check_cancel()
            reporter.step((offset + done) / total, f"{offset + done} of {total} faces")

        return report

    cache = run_dir / TEACHER_CACHE
    train_targets = distillation.cached_teacher_predictions(
        cache, config.teacher, train_set, config.teacher_tta, progress(0), config.teacher_sha256
    )
    val_cache = cache.with_name("teacher_val_targets.npz")
    val_targets = distillation.cached_teacher_predictions(
        val_cache, config.teacher, val_set, config.teacher_tta, progress(len(train_set)), config.teacher_sha256
    )
    return train_targets, val_targets


def train(
    config: TrainConfig, resume: bool = False, verbose: int | None = None, reporter: TrainingReporter | None = None
) -> TrainResult:
    """Train (or resume) a run; returns where the run stands. Call `finalize_run` afterwards.

    Raises TrainingCancelled when `reporter` asks to stop; the last finished epoch stays resumable.
    """
    reporter = reporter or TrainingReporter()
    run_dir = Path(config.out)
    state_path = run_dir / STATE_FILE
    fresh_state = {"epochs_done": 0, "best_epoch": 0, "best_val_accuracy": -1.0}
    if resume:
        if not (run_dir / CONFIG_FILE).is_file():
            raise FerError(f"{run_dir}: nothing to resume (no {CONFIG_FILE})")
        saved = json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
        # The saved run wins, except for the number of epochs and the patience, which may grow,
        # and the weight average, which may be asked for late.
        config = dataclasses.replace(TrainConfig(**saved), epochs=config.epochs, patience=config.patience, out=str(run_dir),
                                     average_last=config.average_last or saved.get("average_last", 0))
        # A run stopped before its first epoch ended has no checkpoint: it starts again from epoch 1.
        resume = (run_dir / CHECKPOINT_FILE).is_file() and state_path.is_file()
        state = json.loads(state_path.read_text(encoding="utf-8")) if resume else fresh_state
        if resume and config.accelerator and FINISHED_ON_CPU not in config.accelerator:  # a GPU run finished here
            config = dataclasses.replace(
                config, accelerator=f"{config.accelerator}, epochs 1-{state['epochs_done']}; {FINISHED_ON_CPU}")
    else:
        if (run_dir / CHECKPOINT_FILE).exists():
            raise FerError(f"{run_dir}: a run is already there; pass --resume to continue it or choose another --out")
        config = config.resolved()
        if config.init_from:  # which file it was, even after that model folder is replaced
            config = dataclasses.replace(config, init_sha256=sha256_of(initial_model_file(config.init_from)))
        if config.teacher:
            config = dataclasses.replace(config, teacher_sha256=distillation.describe_teacher(config.teacher)["sha256"])
        state = fresh_state
    (run_dir / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    _write_json(run_dir / CONFIG_FILE, dataclasses.asdict(config))
    if config.init_from and not resume:
        write_lineage(run_dir, config.init_from)

    from fer_core.pipeline import PHOTO_AUGMENT, AugmentConfig, make_dataset  # TensorFlow: the CPU path only

    keras.utils.set_random_seed(config.seed + state["epochs_done"])
    keras.mixed_precision.set_global_policy(config.precision)
    try:
        reporter.phase("loading data", str(config.train_data))
        train_set, val_set = load_training_data(config)
        reporter.check_cancel()
        spec = zoo.get_spec(config.architecture)
        print(
            f"training {config.architecture} on {len(train_set)} images ({train_set.source}), "
            f"validating on {len(val_set)} ({val_set.source})",
            flush=True,
        )
        train_targets = val_targets = None
        if config.teacher:
            train_targets, val_targets = _teacher_targets(config, run_dir, train_set, val_set, reporter)
        train_data = make_dataset(
            train_set.images, train_set.labels, spec.input_size, config.batch_size, training=True,
            augment=(PHOTO_AUGMENT if config.photo_augment else AugmentConfig()) if config.augment else None,
            seed=config.seed, mixup_alpha=config.mixup,
            soft_targets=train_targets,
        )
        val_data = make_dataset(val_set.images, val_set.labels, spec.input_size, 256, training=False, soft_targets=val_targets)
        steps_per_epoch = math.ceil(len(train_set) / config.batch_size)

        if resume:
            _truncate_history(run_dir / HISTORY_FILE, state["epochs_done"])
            model = keras.saving.load_model(run_dir / CHECKPOINT_FILE)
            if getattr(model, "optimizer", None) is None:
                _continue_without_optimizer_state(model, config, state["epochs_done"] * steps_per_epoch)
            else:
                _exclude_norms_and_biases(model.optimizer)
        else:
            (run_dir / HISTORY_FILE).unlink(missing_ok=True)
            kwargs = {"weights": config.weights} if config.weights else {}
            model = zoo.create_model(config.architecture, **kwargs)
            if config.init_from:
                load_initial_weights(model, config.init_from)
            _compile_for(model, config)
        callback = RunFolderCallback(
            run_dir, config, steps_per_epoch, state["best_val_accuracy"], state["best_epoch"], len(train_set), reporter
        )
        callback.resume_average(state.get("averaged_epochs", 0))
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
    return TrainResult.of_run(run_dir, config)
