"""Ensembles: several trained networks served as one model whose output is their mean probability.

Why: networks of one recipe that differ only in seed or mixup disagree on hard faces, and their
mean is right more often than any of them. Four resnet_fer runs of 68.9-69.9% alone score 72.4% on
FER2013 PublicTest averaged in one pass each: a point above the best one with 12-crop test-time
augmentation, at a third of its cost (4 network passes a face against 12). For photos, members
are a better use of compute than crops.

The ensemble is one Keras functional model (members side by side, then `keras.layers.Average`),
so it exports to one TFLite file and serves through the same `EmotionClassifier` as any model.
Its folder records each member (card facts and checksum) on the card, and keeps each member's
history.csv under `members/`, so the Training report can show how every member learned.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from fer_core.card import (
    HISTORY_FILE,
    KERAS_FILE,
    MEMBERS_DIR,
    ModelCard,
    load_keras_model,
    read_card,
    read_history,
    sha256_of,
    write_card,
)
from fer_core.errors import ModelError

ENSEMBLE_ARCHITECTURE = "ensemble"
MIN_MEMBERS = 2


def is_ensemble(card: ModelCard) -> bool:
    return card.architecture == ENSEMBLE_ARCHITECTURE


def member_histories(model_dir: str | os.PathLike) -> dict[str, list[dict]]:
    """Each member's per-epoch history, by member name (empty for a single network)."""
    folder = Path(model_dir)
    card = read_card(folder)
    return {member["name"]: read_history(folder / MEMBERS_DIR / f"{member['name']}.csv") for member in card.members}


def _member_record(folder: Path, card: ModelCard) -> dict:
    """What the ensemble's card keeps about one member: enough to tell which weights it was."""
    metrics = card.metrics
    best = metrics.get("best_tta", "none")
    return {
        "name": card.name,
        "path": str(folder),
        "architecture": card.architecture,
        "sha256": sha256_of(folder / KERAS_FILE),
        "parameters": card.parameters,
        "flops": card.flops,
        "epochs_trained": card.epochs_trained,
        "best_epoch": card.best_epoch,
        "checkpoint": card.checkpoint,
        "seed": card.training_config.get("seed"),
        "mixup": card.training_config.get("mixup"),
        "val_accuracy": metrics.get("val_accuracy"),
        "best_tta": best,
        "val_accuracy_best_tta": (metrics.get("val_accuracy_by_tta") or {}).get(best),
        "notes": card.notes,
    }


def _check_members(folders: list[Path]) -> list[ModelCard]:
    """The members' cards, once every member is shown to be a network the ensemble can average."""
    if len(folders) < MIN_MEMBERS:
        raise ModelError(f"an ensemble needs at least {MIN_MEMBERS} member models, got {len(folders)}")
    if len({folder.resolve() for folder in folders}) != len(folders):
        raise ModelError("the same member model is named twice")
    cards = [read_card(folder) for folder in folders]
    first = cards[0]
    for folder, card in zip(folders, cards, strict=True):
        if is_ensemble(card):
            raise ModelError(f"{folder}: is itself an ensemble; name its member networks instead")
        if not (folder / KERAS_FILE).is_file():
            raise ModelError(f"{folder}: a member needs its {KERAS_FILE} (the float32 network)")
        for field in ("input_size", "color_mode", "face_margin"):
            if getattr(card, field) != getattr(first, field):
                raise ModelError(f"{folder}: its {field} is {getattr(card, field)!r}, but {folders[0]}'s is "
                                 f"{getattr(first, field)!r}; members must see faces the same way")
    names = [card.name for card in cards]
    if len(set(names)) != len(names):
        raise ModelError(f"members must have distinct names (their histories are kept by name): {names}")
    return cards


def build_ensemble_model(members: list, name: str = "ensemble"):
    """One Keras model: every member on the same input, their softmax outputs averaged."""
    import keras

    inputs = keras.Input(shape=members[0].input_shape[1:], name="face")
    outputs = []
    for index, member in enumerate(members):
        member.name = f"member_{index}"  # layer names must be unique within the ensemble
        outputs.append(member(inputs, training=False))
    averaged = keras.layers.Average(name="mean_probability", dtype="float32")(outputs)
    return keras.Model(inputs, averaged, name=name)


def make_ensemble(
    member_dirs: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    tta_modes: tuple[str, ...] = ("none", "flip"),
    tflite_weights: str = "int8",
    keep_keras: bool = False,
    val_data: str | None = None,
) -> ModelCard:
    """Build, export, evaluate and describe an ensemble of registered models in `out_dir`.

    `tta_modes` are the test-time augmentations tried on validation (the best becomes the card's
    best_tta, which the Upload page uses). The default leaves out the crop modes: with N members
    they cost 10-12 N passes a face. `keep_keras` False leaves model.keras out of the folder
    (the members' float32 weights, N times one network's size) once it has been evaluated: the
    TFLite file serves, and the card's member checksums name the weights it was built from.
    """
    from fer_core.export import export_and_evaluate, validation_usages
    from fer_core.training import TrainConfig, load_validation_data
    from fer_core.zoo import count_flops

    folders = [Path(folder) for folder in member_dirs]
    cards = _check_members(folders)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ModelError(f"{out_dir}: exists and is not empty; an ensemble is written into a new folder")
    first = cards[0]
    config = TrainConfig(architecture=first.architecture, train_data=first.train_data, out=str(out_dir),
                         val_data=val_data or first.val_data or None)
    val_set = load_validation_data(config)  # faces first: a bad path fails before any model is built

    model = build_ensemble_model([load_keras_model(folder / KERAS_FILE) for folder in folders], name=out_dir.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MEMBERS_DIR).mkdir(exist_ok=True)
    for folder, card in zip(folders, cards, strict=True):
        if (folder / HISTORY_FILE).is_file():
            shutil.copy2(folder / HISTORY_FILE, out_dir / MEMBERS_DIR / f"{card.name}.csv")
    model.save(out_dir / KERAS_FILE)
    members = [_member_record(folder, card) for folder, card in zip(folders, cards, strict=True)]
    member_list = ", ".join(f"{member['name']} ({member['val_accuracy']:.1%})" if isinstance(member["val_accuracy"], float)
                            else member["name"] for member in members)
    card = ModelCard(
        name=out_dir.name,
        architecture=ENSEMBLE_ARCHITECTURE,
        input_size=first.input_size,
        color_mode=first.color_mode,
        face_margin=first.face_margin,
        parameters=int(model.count_params()),
        flops=count_flops(model),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        train_data=first.train_data,
        val_data=val_set.source,
        train_images=first.train_images,
        val_images=len(val_set),
        members=members,
        notes=(f"Ensemble of {len(members)} networks, their probabilities averaged: {member_list}. "
               f"Test-time augmentation tried on validation: {', '.join(tta_modes)}"),
    )
    card = export_and_evaluate(out_dir, card, model, val_set, validation_usages(config), tta_modes, tflite_weights)
    if not keep_keras:
        (out_dir / KERAS_FILE).unlink()
        card.sha256.pop(KERAS_FILE, None)
        card.notes += (f". {KERAS_FILE} was not kept (the members' weights, {len(members)} times one network's size); "
                       "rebuild it with `python -m fer_core ensemble` from the members above")
        write_card(out_dir, card)
    return card


def summary_rows(card: ModelCard) -> list[dict]:
    """One row per member for tables (Training report, CLI)."""
    return [{key: member.get(key) for key in ("name", "architecture", "seed", "mixup", "epochs_trained", "best_epoch",
                                               "val_accuracy", "best_tta", "val_accuracy_best_tta")}
            | {"sha256": str(member.get("sha256", ""))[:12]} for member in card.members]

