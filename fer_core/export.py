"""Turning a finished (or stopped) training run into a servable model folder.

`finalize_run` takes the best checkpoint, rebuilds it in float32 (training may run in
mixed bfloat16), exports the compiled serving path (TFLite with dynamic-range int8 weights:
~4x faster than float32 TFLite here at the same accuracy, checked in the evaluation it writes),
evaluates it on the validation data and writes the card with checksums.
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
    EVALUATION_FILE,
    HISTORY_FILE,
    KERAS_FILE,
    TFLITE_FILE,
    ModelCard,
    load_keras_model,
    sha256_of,
    write_card,
)
from fer_core.data import list_image_folder
from fer_core.dataset_store import is_dataset_root
from fer_core.distillation import describe_teacher
from fer_core.errors import FerError
from fer_core.evaluation import TTA_MODES, evaluate, report_from_predictions
from fer_core.reports import predict_dataset, store_evaluation
from fer_core.training import (
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


def to_tflite(model: keras.Model, quantize: bool = True) -> bytes:
    """Convert a Keras model to TFLite; `quantize` stores int8 weights (dynamic range)."""
    import tensorflow as tf

    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as scratch:
        warnings.simplefilter("ignore")
        # Going through a SavedModel keeps the converter's output quiet and deterministic.
        model.export(scratch, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(scratch)
        if quantize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        return converter.convert()


def _count_training_images(config: TrainConfig) -> int:
    """Training-set size for runs whose state predates recording it (listing files is cheap)."""
    if Path(config.train_data).is_dir():
        total = len(list_image_folder(config.train_data)[0])
        return min(total, config.limit) if config.limit else total
    return len(load_training_data(config)[0])


CHECKPOINTS = ("best", "last")


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


def _validation_usages(config: TrainConfig) -> list[str] | None:
    """How the validation faces were selected, for naming the stored evaluation."""
    source = config.val_data or config.train_data
    if str(source).lower().endswith(".csv"):
        return list(config.val_usage if config.val_data else config.train_usage)
    if is_dataset_root(source):
        return ["val"]
    return None


def finalize_run(
    run_dir: str | os.PathLike, tta_modes: tuple[str, ...] = TTA_MODES, checkpoint: str = "best"
) -> ModelCard:
    """Write model.keras, model.tflite, evaluation.json and card.json into `run_dir`.

    `checkpoint` "best" takes the epoch with the best single-pass val accuracy; "last" the final
    epoch (at the end of a cosine schedule, often as good or better once test-time augmentation
    is used, and chosen on val the same way).
    """
    if checkpoint not in CHECKPOINTS:
        raise FerError(f"unknown checkpoint {checkpoint!r}; use best or last")
    from fer_core.inference import EmotionClassifier

    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_FILE
    if checkpoint == "best" and (run_dir / BEST_FILE).is_file():
        source = run_dir / BEST_FILE
    else:
        source, checkpoint = run_dir / CHECKPOINT_FILE, "last"
    if not config_path.is_file() or not source.is_file():
        raise FerError(f"{run_dir}: not a training run (needs {CONFIG_FILE} and {source.relative_to(run_dir)})")
    config = TrainConfig(**json.loads(config_path.read_text(encoding="utf-8")))
    state = json.loads((run_dir / STATE_FILE).read_text(encoding="utf-8"))
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

    trained = load_keras_model(source)
    model = to_float32(trained, config.architecture)
    model.save(run_dir / KERAS_FILE)
    (run_dir / TFLITE_FILE).write_bytes(to_tflite(model, quantize=True))

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
        seconds_per_epoch=float(np.median([row["seconds"] for row in history])) if history else 0.0,
        training_config=dataclasses.asdict(config),
        teacher=teacher,
        notes=notes,
    )
    # Evaluate the served (quantized TFLite) path, and the float Keras model for comparison.
    # The card is written once, complete, at the end: readers never see one without metrics.
    served = EmotionClassifier(run_dir, prefer_tflite=True, card=card)
    probabilities = {mode: predict_dataset(served.predict_faces, val_set.images, mode) for mode in tta_modes}
    reports = {
        mode: report_from_predictions(val_set.labels, probs.argmax(axis=1), tta=mode, data=val_set.source, model=card.name)
        for mode, probs in probabilities.items()
    }
    best_mode = max(reports, key=lambda mode: reports[mode].accuracy)
    float_accuracy = evaluate(EmotionClassifier(run_dir, prefer_tflite=False, card=card).predict_faces, val_set).accuracy
    usages = _validation_usages(config)
    for mode in dict.fromkeys(("none", best_mode)):  # per-face predictions for the report page
        store_evaluation(run_dir, probabilities[mode], val_set, mode, usages, model_name=card.name,
                         extra={"split": "validation (checkpoint selection)", "backend": served.backend})
    report = reports["none"]
    report.extra = {
        "split": "validation (checkpoint selection)",
        "accuracy_by_tta": {mode: round(item.accuracy, 4) for mode, item in reports.items()},
        "keras_float32_accuracy": round(float_accuracy, 4),
        "backend": "tflite (dynamic-range int8 weights)",
    }
    report.write_json(run_dir / EVALUATION_FILE)
    card.metrics = {
        "val_accuracy": round(report.accuracy, 4),
        "val_macro_f1": round(report.macro_f1, 4),
        "val_accuracy_by_tta": report.extra["accuracy_by_tta"],
        "val_macro_f1_by_tta": {mode: round(item.macro_f1, 4) for mode, item in reports.items()},
        "best_tta": best_mode,
        "keras_float32_val_accuracy": round(float_accuracy, 4),
    }
    card.sha256 = {name: sha256_of(run_dir / name) for name in (KERAS_FILE, TFLITE_FILE)}
    write_card(run_dir, card)
    return card
