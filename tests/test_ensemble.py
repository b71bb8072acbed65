"""Ensembles (fer_core.ensemble): several networks served as one model, their probabilities averaged.

Members are real (untrained) zoo networks saved like finalized runs; what the shipped ensemble
scores on FER2013 is checked in test_shipped_model.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fer_core.card import KERAS_FILE, MEMBERS_DIR, TFLITE_FILE, read_card, sha256_of, write_card
from fer_core.cli import main
from fer_core.distillation import describe_teacher, teacher_predictions
from fer_core.ensemble import ENSEMBLE_ARCHITECTURE, make_ensemble, member_histories
from fer_core.errors import ModelError
from fer_core.inference import EmotionClassifier
from fer_core.registry import ModelRegistry
from fer_core.training import initial_model_file
from tests.conftest import build_model_folder

HISTORY = "epoch,loss,accuracy,val_loss,val_accuracy,lr\n1,1.9,0.2,1.9,0.21,0.1\n2,1.7,0.3,1.8,0.26,0.05\n"


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two tiny_cnn32 networks with different weights; the first has a training history."""
    root = tmp_path_factory.mktemp("members")
    first = build_model_folder(root / "net_a", seed=1)
    second = build_model_folder(root / "net_b", seed=2)
    (first / "history.csv").write_text(HISTORY, encoding="utf-8")
    return [first, second]


@pytest.fixture(scope="module")
def val_folder(tmp_path_factory: pytest.TempPathFactory, make_image_folder) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("val") / "val", per_class=2, size=32, seed=3)


@pytest.fixture(scope="module")
def ensemble_dir(tmp_path_factory: pytest.TempPathFactory, members: list[Path], val_folder: Path) -> Path:
    out = tmp_path_factory.mktemp("ensembles") / "pair"
    make_ensemble(members, out, tta_modes=("none", "flip"), keep_keras=True, val_data=str(val_folder))
    return out


def _faces(count: int = 12, size: int = 32) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (count, size, size), dtype=np.uint8)


def test_the_ensemble_predicts_the_mean_of_its_members(ensemble_dir: Path, members: list[Path]):
    faces = _faces()
    alone = [EmotionClassifier(member, prefer_tflite=False).predict_faces(faces) for member in members]
    assert not np.allclose(alone[0], alone[1], atol=1e-3)  # the members really differ
    together = EmotionClassifier(ensemble_dir, prefer_tflite=False).predict_faces(faces)
    np.testing.assert_allclose(together, np.mean(alone, axis=0), atol=1e-5)
    served = EmotionClassifier(ensemble_dir).predict_faces(faces)  # the int8 TFLite export
    np.testing.assert_allclose(served, together, atol=0.02)
    np.testing.assert_allclose(served.sum(axis=1), 1.0, atol=1e-4)


def test_the_card_records_members_checksums_costs_and_histories(ensemble_dir: Path, members: list[Path]):
    card = read_card(ensemble_dir)
    assert card.architecture == ENSEMBLE_ARCHITECTURE
    member_cards = [read_card(member) for member in members]
    assert [entry["name"] for entry in card.members] == ["net_a", "net_b"]
    assert [entry["sha256"] for entry in card.members] == [sha256_of(member / KERAS_FILE) for member in members]
    assert card.flops == sum(item.flops for item in member_cards)
    assert card.parameters == sum(item.parameters for item in member_cards)
    assert card.input_size == 32 and card.face_margin == member_cards[0].face_margin
    assert set(card.metrics["val_accuracy_by_tta"]) == {"none", "flip"}
    assert card.metrics["best_tta"] in ("none", "flip")
    assert card.sha256 == {name: sha256_of(ensemble_dir / name) for name in (KERAS_FILE, TFLITE_FILE)}
    histories = member_histories(ensemble_dir)
    assert [row["val_accuracy"] for row in histories["net_a"]] == [0.21, 0.26]
    assert histories["net_b"] == []  # that member had no history.csv
    assert "Ensemble of 2 networks" in card.notes


def test_without_keras_the_folder_serves_and_teaches_through_tflite(members: list[Path], val_folder: Path, tmp_path: Path):
    out = tmp_path / "slim"
    card = make_ensemble(members, out, tta_modes=("none",), val_data=str(val_folder))
    assert not (out / KERAS_FILE).exists()
    assert card.sha256 == {TFLITE_FILE: sha256_of(out / TFLITE_FILE)}
    assert read_card(out).sha256 == card.sha256 and "was not kept" in card.notes
    classifier = EmotionClassifier(out, prefer_tflite=False)  # no model.keras: the TFLite file serves
    assert classifier.backend == "tflite"
    assert describe_teacher(out)["sha256"] == sha256_of(out / TFLITE_FILE)
    targets = teacher_predictions(out, _faces(5), tta="none")
    assert targets.shape == (5, 7)


def test_a_fine_tune_from_an_ensemble_is_refused_naming_its_members(ensemble_dir: Path, members: list[Path]):
    with pytest.raises(ModelError, match=r"an ensemble of 2 networks \(net_a, net_b\); a fine-tune starts from one network"):
        initial_model_file(ensemble_dir)  # it has a model.keras, but of the averaging graph
    assert initial_model_file(members[0]) == members[0] / KERAS_FILE


def test_registering_an_ensemble_keeps_its_member_histories(ensemble_dir: Path, tmp_path: Path):
    registry = ModelRegistry(tmp_path / "models")
    registered = registry.register(ensemble_dir, "pair_registered")
    assert (registered.path / MEMBERS_DIR / "net_a.csv").read_text(encoding="utf-8") == HISTORY
    assert member_histories(registered.path)["net_a"][1]["epoch"] == 2


def test_members_that_see_faces_differently_are_refused(members: list[Path], val_folder: Path, tmp_path: Path):
    odd = tmp_path / "net_c"
    shutil.copytree(members[1], odd)
    card = read_card(odd)
    card.name, card.face_margin = "net_c", 0.2
    write_card(odd, card)
    with pytest.raises(ModelError, match="face_margin"):
        make_ensemble([members[0], odd], tmp_path / "bad", val_data=str(val_folder))
    assert not (tmp_path / "bad").exists()  # nothing half-written


@pytest.mark.parametrize("case", ["one member", "same member twice", "member is an ensemble", "no weights"])
def test_bad_member_lists_are_refused_with_a_reason(case: str, members: list[Path], ensemble_dir: Path,
                                                    val_folder: Path, tmp_path: Path):
    if case == "no weights":
        bare = tmp_path / "bare"
        shutil.copytree(members[1], bare)
        (bare / KERAS_FILE).unlink()
    chosen = {"one member": [members[0]], "same member twice": [members[0], members[0]],
              "member is an ensemble": [members[0], ensemble_dir],
              "no weights": [members[0], tmp_path / "bare"]}[case]
    expected = {"one member": "at least 2", "same member twice": "named twice",
                "member is an ensemble": "itself an ensemble", "no weights": "needs its model.keras"}[case]
    with pytest.raises(ModelError, match=expected):
        make_ensemble(chosen, tmp_path / "out", val_data=str(val_folder))


def test_an_existing_folder_is_never_overwritten(members: list[Path], ensemble_dir: Path, val_folder: Path):
    before = sha256_of(ensemble_dir / TFLITE_FILE)
    with pytest.raises(ModelError, match="not empty"):
        make_ensemble(members, ensemble_dir, val_data=str(val_folder))
    assert sha256_of(ensemble_dir / TFLITE_FILE) == before


def test_cli_builds_an_ensemble_and_rejects_unknown_tta(members: list[Path], val_folder: Path, tmp_path: Path, capsys):
    bad = main(["ensemble", *map(str, members), "--out", str(tmp_path / "x"), "--tta", "none,sideways"])
    assert bad == 2 and "sideways" in capsys.readouterr().err
    out = tmp_path / "cli_pair"
    assert main(["ensemble", *map(str, members), "--out", str(out), "--tta", "none",
                 "--val-data", str(val_folder)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["best_tta"] == "none" and read_card(out).architecture == ENSEMBLE_ARCHITECTURE
