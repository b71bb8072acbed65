"""Training on a GPU machine that has JAX but no TensorFlow (`train --accelerator`).

The CPU path (`training.train`) feeds a tf.data pipeline that augments batches beside the model.
A GPU would wait on that pipeline, and the GPU machines this project borrows have no TensorFlow.
Here Keras runs on JAX (`KERAS_BACKEND=jax`), the faces sit in memory, and the same augmentation
(`augmentation.geometric_layers`, `PhotometricJitter` with `--photo-augment`, and `RandomErasing`,
written once for both paths) runs inside the jitted training step, in front of the zoo model;
`--mixup` blends the augmented faces there too (`MixupPairs`) and the loss blends their targets. The
learning rate follows the same warm-up and cosine curve (`training.WarmupCosine`), and the run
folder is the CPU path's own
(train_config.json, history.csv, checkpoints/best.keras, last.keras and state.json), holding the
bare zoo model, so `python -m fer_core finalize RUN` on the CPU machine exports, evaluates and
registers it unchanged. A teacher's targets come from the run's cache, made on the CPU machine,
when the teacher itself did not travel.

Not on this path yet: resuming here; a run that a time limit stopped is finished on the CPU
path (`train --resume`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import keras
import numpy as np

from fer_core import zoo
from fer_core.augmentation import (
    PHOTO_AUGMENT,
    AugmentConfig,
    MixupPairs,
    PhotometricJitter,
    RandomErasing,
    geometric_layers,
)
from fer_core.card import KERAS_FILE, weights_file
from fer_core.classes import NUM_CLASSES
from fer_core.data import FaceDataset
from fer_core.distillation import describe_teacher
from fer_core.errors import FerError
from fer_core.preprocessing import resize_faces, scale_pixels
from fer_core.progress import TrainingReporter
from fer_core.training import (
    CHECKPOINT_DIR,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    HISTORY_FILE,
    TEACHER_CACHE,
    RunFolderCallback,
    TrainConfig,
    TrainResult,
    WarmupCosine,
    _compile_for,
    _teacher_targets,
    _write_json,
    load_training_data,
)

NO_AUGMENT = AugmentConfig(flip=False, rotation_degrees=0, shift=0, zoom=0, erasing_probability=0)


class StopBeforeDeadline(keras.callbacks.Callback):
    """Ends training after the epoch that leaves too little time for another (a borrowed machine's
    call has a hard time limit); the epochs done stay in the run folder."""

    def __init__(self, deadline: float):
        super().__init__()
        self.deadline = deadline
        self.started = 0.0
        self.durations: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        self.durations.append(time.monotonic() - self.started)
        # The first epoch also compiles (a minute or more on a shared GPU): later ones are the
        # measure, or a run would stop that long before its limit.
        longest = max(self.durations[1:] or self.durations)
        if time.monotonic() + 1.5 * longest > self.deadline:
            print(f"time limit: stopping after epoch {epoch + 1}", flush=True)
            self.model.stop_training = True


def model_inputs(dataset: FaceDataset, input_size: int) -> np.ndarray:
    """uint8 faces (N, S, S) -> float32 (N, size, size, 1) in [0, 1], as pipeline._to_inputs."""
    return scale_pixels(resize_faces(dataset.images, input_size))


def model_targets(dataset: FaceDataset, soft: np.ndarray | None) -> np.ndarray:
    """One-hot labels, with the teacher's probabilities appended when distilling."""
    targets = np.eye(NUM_CLASSES, dtype=np.float32)[dataset.labels]
    return targets if soft is None else np.concatenate([targets, soft.astype(np.float32)], axis=1)


def augmented(model: keras.Model, config: AugmentConfig, seed: int, mixup: float = 0.0) -> keras.Model:
    """`model` behind the training augmentation (active only when training), in float32. With
    `mixup` > 0 the faces are then blended in pairs and the output gains a last column, the
    blend's weight, for the loss (`training._compile_for(mixes=True)`)."""
    steps = geometric_layers(config, seed)
    if config.photometric_probability > 0:  # before erasing, as in tf.data: the erased patch is noise already
        steps.append(PhotometricJitter(config, seed=seed))
    steps.append(RandomErasing(config.erasing_probability, config.erasing_area, seed=seed))
    if keras.backend.backend() == "jax":
        # Keras marks its affine preprocessing layers unfit for XLA (TensorFlow's transform op is
        # not); on JAX they are plain jax.numpy and compile. Without this the whole training step
        # runs op by op, which on a GPU is slower than the CPU path.
        for layer in steps:
            layer.supports_jit = True
    inputs = keras.Input(shape=model.input_shape[1:], name="face")
    x = inputs
    for layer in steps:
        x = layer(x)
    if mixup <= 0:
        return keras.Model(inputs, model(x), name=f"{model.name}_training")
    mixing = MixupPairs(mixup, seed=seed)
    mixing.supports_jit = True
    x, lam = mixing(x)
    weight = keras.layers.Reshape((1,), name="mixup_weight")(lam)
    # the zoo's softmax is float32 under any precision policy, as lam is
    return keras.Model(inputs, keras.layers.Concatenate(name="with_mixup_weight")([model(x), weight]), name=f"{model.name}_training")


def describe_accelerator() -> str:
    """What trains: Keras, its backend and the device it runs on (recorded in the run's config)."""
    device = keras.backend.backend()
    if device == "jax":
        import jax

        first = jax.devices()[0]
        kind = str(getattr(first, "device_kind", ""))
        device = f"jax {jax.__version__}, {first.platform}" + (f" ({kind})" if kind and kind.lower() != first.platform else "")
    return f"Keras {keras.__version__} on {device}"


def _teacher_sha256(config: TrainConfig, run_dir: Path) -> str:
    """The teacher's weights: its model.keras when that travelled, else the targets cached with the
    run (made on the CPU machine from the weights that config names), else its TFLite file (a
    serving-only teacher such as a shipped ensemble)."""
    cache = run_dir / TEACHER_CACHE
    if not (Path(config.teacher) / KERAS_FILE).is_file() and cache.is_file():
        with np.load(cache) as cached:
            return str(cached["teacher_sha256"])
    if weights_file(config.teacher).is_file():
        return describe_teacher(config.teacher)["sha256"]
    raise FerError(f"{config.teacher}: no teacher here and no cached targets in {cache}")


def train_accelerated(
    config: TrainConfig, time_limit: float | None = None, steps_per_execution: int = 8, verbose: int = 2
) -> TrainResult:
    """Train a fresh run on the accelerator path; `time_limit` seconds end it early, between epochs."""
    started = time.monotonic()
    deadline = started + time_limit if time_limit else None
    run_dir = Path(config.out)
    if (run_dir / CHECKPOINT_FILE).exists():
        raise FerError(f"{run_dir}: a run is already there; the accelerator path starts runs afresh, choose another --out")
    config = dataclasses.replace(config.resolved(), accelerator=describe_accelerator())
    if config.teacher:
        config = dataclasses.replace(config, teacher_sha256=_teacher_sha256(config, run_dir))
    (run_dir / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    _write_json(run_dir / CONFIG_FILE, dataclasses.asdict(config))
    (run_dir / HISTORY_FILE).unlink(missing_ok=True)

    reporter = TrainingReporter()
    train_set, val_set = load_training_data(config)
    spec = zoo.get_spec(config.architecture)
    train_soft = val_soft = None
    if config.teacher:
        train_soft, val_soft = _teacher_targets(config, run_dir, train_set, val_set, reporter)
    x_train, y_train = model_inputs(train_set, spec.input_size), model_targets(train_set, train_soft)
    x_val, y_val = model_inputs(val_set, spec.input_size), model_targets(val_set, val_soft)
    print(f"training {config.architecture} on {len(train_set)} faces, validating on {len(val_set)} "
          f"(Keras {keras.__version__} on {keras.backend.backend()}; faces and targets ready after "
          f"{time.monotonic() - started:.0f}s)", flush=True)

    keras.utils.set_random_seed(config.seed)
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    try:
        augment = (PHOTO_AUGMENT if config.photo_augment else AugmentConfig()) if config.augment else NO_AUGMENT
        keras.mixed_precision.set_global_policy(config.precision)
        model = zoo.create_model(config.architecture, **({"weights": config.weights} if config.weights else {}))
        keras.mixed_precision.set_global_policy("float32")  # the augmentation computes in float32
        trainable = augmented(model, augment, config.seed, config.mixup)
        _compile_for(trainable, config, WarmupCosine.for_run(config, steps_per_epoch), mixes=config.mixup > 0,
                     steps_per_execution=steps_per_execution, jit_compile=keras.backend.backend() == "jax")
        callbacks: list[keras.callbacks.Callback] = [
            RunFolderCallback(run_dir, config, steps_per_epoch, -1.0, 0, len(train_set), reporter,
                              saved_model=model, set_lr_per_step=False)
        ]
        if deadline:
            callbacks.append(StopBeforeDeadline(deadline))
        trainable.fit(
            x_train, y_train, batch_size=config.batch_size, epochs=config.epochs, shuffle=True,
            validation_data=(x_val, y_val), validation_batch_size=512, callbacks=callbacks, verbose=verbose,
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return TrainResult.of_run(run_dir, config)
