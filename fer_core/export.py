"""Turning a finished (or stopped) training run into a servable model folder.

`finalize_run` takes the best checkpoint (or the last, or the weight average of the last
epochs), rebuilds it in float32 (training may run in
mixed bfloat16), exports the compiled serving path (TFLite, by default with dynamic-range int8
weights), evaluates it on the validation data and writes the card with checksums.

The TFLite weights are a per-model choice (`TFLITE_WEIGHTS`, recorded in the card): int8 weights
made resnet_fer 17% faster a face on a 2-core AVX-512 Xeon for 0.1 point of accuracy, but the 0.7M-
parameter resnet_fer_lite ran as fast in float32 and kept 0.3 point that int8 lost.
`reexport_model` switches a finished model folder between them and evaluates it again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import warnings
from datetime import UTC, datetime
from pathlib import Path

import keras
import numpy as np

from fer_core import zoo
from fer_core.card import (
    CHECKPOINTS,
    EVALUATION_FILE,
    HISTORY_FILE,
    KERAS_FILE,
    TFLITE_FILE,
    TFLITE_WEIGHTS,
    ModelCard,
    load_keras_model,
    read_card,
    sha256_of,
    write_card,
)
from fer_core.data import FaceDataset, list_image_folder
from fer_core.dataset_store import is_dataset_root
from fer_core.distillation import describe_teacher
from fer_core.errors import FerError
from fer_core.evaluation import TTA_MODES, evaluate, report_from_predictions
from fer_core.reports import predict_dataset, store_evaluation
from fer_core.training import (
    AVERAGE_FILE,
    BEST_FILE,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    STATE_FILE,
    TrainConfig,
    load_training_data,
    load_validation_data,
    read_history,
)


def to_float32(model: keras.Model, architecture: str, **kwargs) -> keras.Model:
    """The same network with a float32 policy (weights copied), for export and serving."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        clean = zoo.create_model(architecture, num_classes=model.output_shape[-1], **kwargs)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    clean.set_weights(model.get_weights())
    return clean


def to_tflite(model: keras.Model, weights: str = "int8") -> bytes:
    """Convert a Keras model to TFLite; `weights` "int8" quantizes them (dynamic range), "float32" keeps them."""
    import tensorflow as tf

    if weights not in TFLITE_WEIGHTS:
        raise FerError(f"unknown TFLite weights {weights!r}; use {' or '.join(TFLITE_WEIGHTS)}")
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as scratch:
        warnings.simplefilter("ignore")
        # Going through a SavedModel keeps the converter's output quiet and deterministic.
        model.export(scratch, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(scratch)
        if weights == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        return converter.convert()


def _count_training_images(config: TrainConfig) -> int:
    """Training-set size for runs whose state predates recording it (listing files is cheap)."""
    if Path(config.train_data).is_dir():
        total = len(list_image_folder(config.train_data)[0])
        return min(total, config.limit) if config.limit else total
    return len(load_training_data(config)[0])


def _teacher_record(config: TrainConfig) -> dict:
    """What the card says about a distilled model's teacher (the weights it had at the start)."""
    try:
        record = describe_teacher(config.teacher)
    except FerError:  # the teacher folder is gone: keep what the run recorded
        record = {"path": config.teacher}
    if config.teacher_sha256 and record.get("sha256") != config.teacher_sha256:
        record["sha256"] = config.teacher_sha256
        record["note"] = "the teacher folder has changed since this model was trained"
    record["tta"] = config.teacher_tta
    record["alpha"] = config.distill_alpha
    record["temperature"] = config.distill_temperature
    return record


def validation_usages(config: TrainConfig) -> list[str] | None:
    """How the validation faces were selected, for naming the stored evaluation."""
    source = config.val_data or config.train_data
    if str(source).lower().endswith(".csv"):
        return list(config.val_usage if config.val_data else config.train_usage)
    if is_dataset_root(source):
        return ["val"]
    return None


def finalize_run(
    run_dir: str | os.PathLike,
    tta_modes: tuple[str, ...] = TTA_MODES,
    checkpoint: str | None = None,
    tflite_weights: str = "int8",
) -> ModelCard:
    """Write model.keras, model.tflite, evaluation.json and card.json into `run_dir`.

    `checkpoint` "best" takes the epoch with the best single-pass val accuracy; "last" the final
    epoch (at the end of a cosine schedule, often as good or better once test-time augmentation
    is used, and chosen on val the same way); "average" the mean weights of the last epochs of a
    run trained with `average_last`; None the average when the run kept one, else the best.
    `tflite_weights` is the serving file's precision.
    """
    run_dir = Path(run_dir)
    if checkpoint is None:
        checkpoint = "average" if (run_dir / AVERAGE_FILE).is_file() else "best"
    if checkpoint not in CHECKPOINTS:
        raise FerError(f"unknown checkpoint {checkpoint!r}; use {', '.join(CHECKPOINTS)}")
    config_path = run_dir / CONFIG_FILE
    if checkpoint == "average":
        source = run_dir / AVERAGE_FILE
        if config_path.is_file() and not source.is_file():
            raise FerError(f"{run_dir}: no averaged weights ({AVERAGE_FILE}); they come from train --average-last N, "
                           "once the run reaches its last N epochs")
    elif checkpoint == "best" and (run_dir / BEST_FILE).is_file():
        source = run_dir / BEST_FILE
    else:
        source, checkpoint = run_dir / CHECKPOINT_FILE, "last"
    if not config_path.is_file() or not source.is_file():
        raise FerError(f"{run_dir}: not a training run (needs {CONFIG_FILE} and {source.relative_to(run_dir)})")
    config = TrainConfig(**json.loads(config_path.read_text(encoding="utf-8")))
    state = json.loads((run_dir / STATE_FILE).read_text(encoding="utf-8"))
    averaged = int(state.get("averaged_epochs", 0)) if checkpoint == "average" else 0
    spec = zoo.get_spec(config.architecture)
    notes = spec.description
    if config.init_from:
        origin = f" (model.keras sha256 {config.init_sha256[:12]})" if config.init_sha256 else ""
        notes = f"{notes}. Fine-tuned from {config.init_from}{origin}"
    teacher = {}
    if config.teacher:
        teacher = _teacher_record(config)
        notes = (f"{notes}. Distilled from {teacher.get('name', config.teacher)} (model.keras sha256 "
                 f"{(config.teacher_sha256 or '')[:12]}, {config.teacher_tta} TTA targets, alpha {config.distill_alpha}, "
                 f"temperature {config.distill_temperature})")
    if config.accelerator:
        notes = f"{notes}. Trained with train --accelerator ({config.accelerator})"
    if int(state["epochs_done"]) < config.epochs:
        notes = f"{notes}. Stopped after epoch {state['epochs_done']} of {config.epochs}"
    if averaged:
        first = int(state["epochs_done"]) - averaged + 1
        notes = f"{notes}. Weights averaged over epochs {first}-{state['epochs_done']} ({averaged} epochs)"

    trained = load_keras_model(source)
    model = to_float32(trained, config.architecture)
    model.save(run_dir / KERAS_FILE)

    history = read_history(run_dir / HISTORY_FILE)
    val_set = load_validation_data(config)
    card = ModelCard(
        name=run_dir.name,
        architecture=config.architecture,
        input_size=spec.input_size,
        parameters=int(model.count_params()),
        flops=zoo.count_flops(model),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        train_data=config.train_data,
        val_data=val_set.source,
        train_images=int(state.get("train_images") or _count_training_images(config)),
        val_images=len(val_set),
        epochs_trained=int(state["epochs_done"]),
        best_epoch=int(state["best_epoch"] if checkpoint == "best" else state["epochs_done"]),
        checkpoint=checkpoint,
        averaged_epochs=averaged,
        seconds_per_epoch=float(np.median([row["seconds"] for row in history])) if history else 0.0,
        training_config=dataclasses.asdict(config),
        teacher=teacher,
        notes=notes,
    )
    return export_and_evaluate(run_dir, card, model, val_set, validation_usages(config), tta_modes, tflite_weights)


def reexport_model(
    model_dir: str | os.PathLike, tflite_weights: str, tta_modes: tuple[str, ...] = TTA_MODES
) -> ModelCard:
    """Rebuild a model folder's model.tflite with other weights and evaluate it again on the
    validation data its card names (the card's metrics, evaluation.json and the stored per-face
    predictions all describe the new file; everything else on the card is kept)."""
    model_dir = Path(model_dir)
    card = read_card(model_dir)
    known = {item.name for item in dataclasses.fields(TrainConfig)}
    recorded = {key: value for key, value in card.training_config.items() if key in known}
    if not {"architecture", "train_data", "out"} <= recorded.keys():
        if not card.val_data:
            raise FerError(f"{model_dir}: the card records neither its training run nor validation data to evaluate on")
        recorded = {"architecture": card.architecture, "train_data": card.train_data, "out": str(model_dir),
                    "val_data": card.val_data}
    config = TrainConfig(**recorded)  # the same validation faces the model was finalized on
    val_set = load_validation_data(config)
    model = load_keras_model(model_dir / KERAS_FILE)
    return export_and_evaluate(model_dir, card, model, val_set, validation_usages(config), tta_modes, tflite_weights)


def export_and_evaluate(
    folder: Path,
    card: ModelCard,
    model: keras.Model,
    val_set: FaceDataset,
    usages: list[str] | None,
    tta_modes: tuple[str, ...],
    tflite_weights: str,
) -> ModelCard:
    """Write model.tflite, evaluate it and model.keras on `val_set`, and write the card last:
    readers never see a card without metrics or one whose metrics describe another file."""
    from fer_core.inference import EmotionClassifier

    (folder / TFLITE_FILE).write_bytes(to_tflite(model, tflite_weights))
    card.tflite_weights = tflite_weights
    served = EmotionClassifier(folder, prefer_tflite=True, card=card)
    probabilities = {mode: predict_dataset(served.predict_faces, val_set.images, mode) for mode in tta_modes}
    reports = {
        mode: report_from_predictions(val_set.labels, probs.argmax(axis=1), tta=mode, data=val_set.source, model=card.name)
        for mode, probs in probabilities.items()
    }
    best_mode = max(reports, key=lambda mode: reports[mode].accuracy)
    float_accuracy = evaluate(EmotionClassifier(folder, prefer_tflite=False, card=card).predict_faces, val_set).accuracy
    backend = TFLITE_WEIGHTS[tflite_weights]
    for mode in dict.fromkeys(("none", best_mode)):  # per-face predictions for the report page
        store_evaluation(folder, probabilities[mode], val_set, mode, usages, model_name=card.name,
                         extra={"split": "validation (checkpoint selection)", "backend": backend})
    report = reports["none"]
    report.extra = {
        "split": "validation (checkpoint selection)",
        "accuracy_by_tta": {mode: round(item.accuracy, 4) for mode, item in reports.items()},
        "keras_float32_accuracy": round(float_accuracy, 4),
        "backend": backend,
    }
    report.write_json(folder / EVALUATION_FILE)
    card.metrics = {
        "val_accuracy": round(report.accuracy, 4),
        "val_macro_f1": round(report.macro_f1, 4),
        "val_accuracy_by_tta": report.extra["accuracy_by_tta"],
        "val_macro_f1_by_tta": {mode: round(item.macro_f1, 4) for mode, item in reports.items()},
        "best_tta": best_mode,
        "keras_float32_val_accuracy": round(float_accuracy, 4),
    }
    card.sha256 = {name: sha256_of(folder / name) for name in (KERAS_FILE, TFLITE_FILE)}
    write_card(folder, card)
    return card
