"""fer_core.training and fer_core.export: a real 1-epoch run on a tiny image folder, its run folder,
finalizing it into a servable model folder, and resuming it.

The run goes through the CLI entry point in-process (`fer_core.cli.main`), so the arguments users
type are what is tested. One module-scoped run is shared by the tests, in order.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from fer_core import cli
from fer_core.card import CARD_FILE, EVALUATION_FILE, KERAS_FILE, TFLITE_FILE, read_card, sha256_of
from fer_core.data import FaceDataset
from fer_core.evaluation import EvaluationReport
from fer_core.training import (
    AVERAGE_FILE,
    BEST_FILE,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    HISTORY_COLUMNS,
    STATE_FILE,
    TrainConfig,
    learning_rate_at,
    load_initial_weights,
    load_training_data,
    read_history,
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, make_training_folders) -> dict[str, Path]:
    """Train resnet_fer_small for one epoch on 70 synthetic faces, validating on 14."""
    paths = make_training_folders(tmp_path_factory.mktemp("training"))
    status = cli.main(train_args(paths, epochs=1) + ["--no-finalize"])
    assert status == 0
    return paths


def train_args(paths: dict[str, Path], epochs: int) -> list[str]:
    return [
        "train", "--arch", "resnet_fer_small",
        "--data", str(paths["train"]), "--val", str(paths["val"]), "--out", str(paths["run"]),
        "--epochs", str(epochs), "--batch-size", "35", "--warmup-epochs", "0.5",
    ]


def history_rows(run: Path) -> list[dict[str, str]]:
    with (run / "history.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_one_epoch_writes_a_complete_run_folder(tiny_run):
    run = tiny_run["run"]
    for name in (CONFIG_FILE, "history.csv", CHECKPOINT_FILE, BEST_FILE, STATE_FILE):
        assert (run / name).is_file(), f"{name} missing from the run folder"
    config = json.loads((run / CONFIG_FILE).read_text())
    assert config["architecture"] == "resnet_fer_small" and config["epochs"] == 1
    assert config["batch_size"] == 35 and config["optimizer"] == "sgd"  # resolved from the zoo spec
    rows = history_rows(run)
    assert len(rows) == 1 and tuple(rows[0]) == HISTORY_COLUMNS and rows[0]["epoch"] == "1"
    assert all(np.isfinite(float(rows[0][column])) for column in HISTORY_COLUMNS)
    state = json.loads((run / STATE_FILE).read_text())
    assert state["epochs_done"] == 1 and state["best_epoch"] == 1
    assert state["best_val_accuracy"] == pytest.approx(float(rows[0]["val_accuracy"]))


def test_finalize_writes_a_servable_model_folder(tiny_run, capsys):
    run = tiny_run["run"]
    assert cli.main(["finalize", "--run", str(run)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    for name in (KERAS_FILE, TFLITE_FILE, CARD_FILE, EVALUATION_FILE):
        assert (run / name).is_file(), f"{name} missing after finalize"
    card = read_card(run)
    assert card.architecture == "resnet_fer_small" and card.input_size == 48 and card.checkpoint == "best"
    assert (card.train_images, card.val_images, card.epochs_trained, card.best_epoch) == (70, 14, 1, 1)
    assert card.parameters > 0 and card.seconds_per_epoch > 0 and card.created
    assert card.sha256 == {KERAS_FILE: sha256_of(run / KERAS_FILE), TFLITE_FILE: sha256_of(run / TFLITE_FILE)}
    assert card.metrics == metrics
    assert set(metrics) >= {"val_accuracy", "val_macro_f1", "val_accuracy_by_tta", "best_tta", "keras_float32_val_accuracy"}
    assert 0.0 <= metrics["val_accuracy"] <= 1.0 and set(metrics["val_accuracy_by_tta"]) == {"none", "flip", "tencrop", "multicrop"}

    report = EvaluationReport.read_json(run / EVALUATION_FILE)
    assert report.n_images == 14 and sum(map(sum, report.confusion_matrix)) == 14
    assert report.accuracy == pytest.approx(metrics["val_accuracy"], abs=1e-4)
    assert report.extra["backend"].startswith("tflite")

    from fer_core.inference import EmotionClassifier

    classifier = EmotionClassifier(run)
    assert classifier.predict_faces(np.zeros((2, 48, 48), np.uint8)).shape == (2, 7)
    assert card.tflite_weights == "int8" and report.extra["backend"] == "tflite (dynamic-range int8 weights)"


def test_export_rebuilds_the_served_file_in_float32_and_evaluates_it_again(tiny_run, tmp_path: Path, capsys):
    import shutil

    from fer_core.inference import EmotionClassifier

    folder = tmp_path / "model"
    shutil.copytree(tiny_run["run"], folder)  # the finalized run; the shared one stays as it is
    before = read_card(folder)
    int8_size = (folder / TFLITE_FILE).stat().st_size

    assert cli.main(["export", "--model", str(folder), "--tflite-weights", "float32"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    card = read_card(folder)
    assert card.tflite_weights == "float32" and card.metrics == metrics
    assert card.sha256 == {KERAS_FILE: sha256_of(folder / KERAS_FILE), TFLITE_FILE: sha256_of(folder / TFLITE_FILE)}
    assert card.sha256[KERAS_FILE] == before.sha256[KERAS_FILE] and card.sha256[TFLITE_FILE] != before.sha256[TFLITE_FILE]
    assert (folder / TFLITE_FILE).stat().st_size > 2.5 * int8_size  # 4 bytes a weight instead of 1
    for field in ("created", "epochs_trained", "best_epoch", "training_config", "val_images", "notes"):
        assert getattr(card, field) == getattr(before, field), f"export changed the card's {field}"

    # float32 TFLite computes what Keras computes, so its single pass scores what Keras scores
    faces = np.random.default_rng(3).integers(0, 256, (6, 48, 48), dtype=np.uint8)
    served = EmotionClassifier(folder).predict_faces(faces)
    reference = EmotionClassifier(folder, prefer_tflite=False).predict_faces(faces)
    assert np.abs(served - reference).max() < 1e-4
    assert metrics["val_accuracy"] == metrics["keras_float32_val_accuracy"]
    report = EvaluationReport.read_json(folder / EVALUATION_FILE)
    assert report.extra["backend"] == "tflite (float32 weights)" and report.n_images == 14

    assert cli.main(["export", "--model", str(folder), "--tflite-weights", "int8"]) == 0
    assert read_card(folder).tflite_weights == "int8" and (folder / TFLITE_FILE).stat().st_size == int8_size


def test_export_of_a_model_without_its_training_run_evaluates_on_the_cards_validation_data(tiny_run, tmp_path, capsys):
    """A model folder copied from elsewhere may carry no training_config: the card's val_data is
    enough; with neither, export says so."""
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_run["run"], folder, ignore=shutil.ignore_patterns("checkpoints"))
    card_file = folder / CARD_FILE
    card = json.loads(card_file.read_text())
    card["training_config"] = {}
    card_file.write_text(json.dumps(card))
    assert cli.main(["export", "--model", str(folder), "--tflite-weights", "float32"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert read_card(folder).tflite_weights == "float32" and 0.0 <= metrics["val_accuracy"] <= 1.0
    assert EvaluationReport.read_json(folder / EVALUATION_FILE).n_images == 14  # the card's 14 validation faces

    card = json.loads(card_file.read_text())
    card["val_data"] = ""
    card_file.write_text(json.dumps(card))
    assert cli.main(["export", "--model", str(folder), "--tflite-weights", "int8"]) == 2
    assert "neither its training run nor validation data" in capsys.readouterr().err


def test_export_of_a_folder_that_is_no_model_fails_clearly(tmp_path: Path, capsys):
    assert cli.main(["export", "--model", str(tmp_path), "--tflite-weights", "float32"]) == 2
    assert "not a model folder" in capsys.readouterr().err


def test_resume_to_two_epochs_appends_exactly_one_history_row(tiny_run):
    run = tiny_run["run"]
    before = history_rows(run)
    assert cli.main(train_args(tiny_run, epochs=2) + ["--resume", "--no-finalize"]) == 0
    after = history_rows(run)
    assert len(after) == len(before) + 1 == 2
    assert after[0] == before[0] and after[1]["epoch"] == "2"
    assert json.loads((run / STATE_FILE).read_text())["epochs_done"] == 2
    assert json.loads((run / CONFIG_FILE).read_text())["epochs"] == 2


def test_resume_cuts_history_back_to_the_last_checkpoint(tiny_run):
    """A crash after writing a history row but before the state file leaves an extra row; the
    next resume removes it (here with nothing left to train)."""
    run = tiny_run["run"]
    with (run / "history.csv").open("a") as handle:
        handle.write("3,1.0,0.5,1.0,0.5,0.01,1.0\n")
    assert cli.main(train_args(tiny_run, epochs=2) + ["--resume", "--no-finalize"]) == 0
    assert [row["epoch"] for row in read_history(run / "history.csv")] == [1, 2]


def test_training_into_an_existing_run_or_resuming_nothing_fails_clearly(tiny_run, tmp_path: Path, capsys):
    assert cli.main(train_args(tiny_run, epochs=1) + ["--no-finalize"]) == 2
    assert "a run is already there; pass --resume" in capsys.readouterr().err
    empty = {**tiny_run, "run": tmp_path / "empty_run"}
    assert cli.main(train_args(empty, epochs=1) + ["--resume"]) == 2
    assert "empty_run: nothing to resume" in capsys.readouterr().err
    assert cli.main(["finalize", "--run", str(tmp_path)]) == 2
    assert "not a training run (needs train_config.json" in capsys.readouterr().err
    assert cli.main(["finalize", "--run", str(tiny_run["run"]), "--checkpoint", "average"]) == 2
    error = capsys.readouterr().err
    assert "no averaged weights" in error and "train --average-last N" in error


def test_the_last_epochs_weights_are_averaged_and_the_finished_run_serves_them(make_training_folders, tmp_path: Path):
    """--average-last N keeps the running mean of the last N epochs' weights (batch-norm statistics
    included) through a resume, and the finished run is finalized from it."""
    import keras

    paths = make_training_folders(tmp_path)
    run = paths["run"]
    assert cli.main(train_args(paths, epochs=2) + ["--average-last", "1", "--no-finalize"]) == 0
    epoch_2 = keras.saving.load_model(run / CHECKPOINT_FILE).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(keras.saving.load_model(run / AVERAGE_FILE).get_weights(), epoch_2, strict=True))
    # one more epoch, resumed with a window of the last two: epochs 2 and 3
    assert cli.main(train_args(paths, epochs=3) + ["--resume", "--average-last", "2"]) == 0
    epoch_3 = keras.saving.load_model(run / CHECKPOINT_FILE).get_weights()
    averaged = keras.saving.load_model(run / AVERAGE_FILE)
    assert getattr(averaged, "optimizer", None) is None  # the weights alone, not a second copy of the optimizer state
    average = averaged.get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(epoch_2, epoch_3, strict=True))
    for mean, a, b in zip(average, epoch_2, epoch_3, strict=True):
        assert np.allclose(mean, (a + b) / 2, atol=1e-6)
    assert json.loads((run / STATE_FILE).read_text())["averaged_epochs"] == 2
    card = read_card(run)  # finalized at the end of the run, from the average
    assert (card.checkpoint, card.averaged_epochs, card.best_epoch) == ("average", 2, 3)
    assert "Weights averaged over epochs 2-3 (2 epochs)" in card.notes
    served = keras.saving.load_model(run / KERAS_FILE).get_weights()
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(served, average, strict=True))


def test_fine_tuning_starts_from_the_given_weights_with_mixup(tiny_run, tmp_path: Path):
    """--init-from copies a trained model's weights into the new run (not the optimizer), and the
    run records where it started and its mixup."""
    import keras

    from fer_core import zoo

    source = tiny_run["run"] / BEST_FILE
    fresh = zoo.create_model("resnet_fer_small")
    load_initial_weights(fresh, source)
    trained = keras.saving.load_model(source, compile=False)
    for ours, theirs in zip(fresh.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)

    paths = {**tiny_run, "run": tmp_path / "fine_tuned"}
    args = train_args(paths, epochs=1) + ["--init-from", str(source), "--mixup", "0.2", "--no-finalize"]
    assert cli.main(args) == 0
    config = json.loads((paths["run"] / CONFIG_FILE).read_text())
    assert config["init_from"] == str(source) and config["mixup"] == 0.2
    assert config["init_sha256"] == sha256_of(source)  # which file it was, even if the folder is replaced later
    assert len(read_history(paths["run"] / "history.csv")) == 1

    assert cli.main(["finalize", "--run", str(paths["run"]), "--checkpoint", "last"]) == 0
    card = read_card(paths["run"])
    assert card.checkpoint == "last" and card.best_epoch == card.epochs_trained == 1
    assert f"Fine-tuned from {source} (model.keras sha256 {sha256_of(source)[:12]})" in card.notes


def test_fine_tuning_from_another_architecture_or_a_non_model_fails_clearly(tiny_run, tmp_path: Path, capsys):
    paths = {**tiny_run, "run": tmp_path / "wrong"}
    args = train_args(paths, epochs=1)
    args[args.index("resnet_fer_small")] = "tiny_cnn32"
    assert cli.main(args + ["--init-from", str(tiny_run["run"] / BEST_FILE)]) == 2
    assert "its weights do not fit tiny_cnn32" in capsys.readouterr().err
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a zip archive")
    assert cli.main(train_args({**paths, "run": tmp_path / "junk_run"}, epochs=1) + ["--init-from", str(junk)]) == 2
    assert "junk.keras: cannot be loaded as a Keras model" in capsys.readouterr().err
    assert cli.main(train_args({**paths, "run": tmp_path / "none_run"}, epochs=1) + ["--init-from", str(tmp_path)]) == 2
    assert "no model to start from" in capsys.readouterr().err


# --- pieces of the training set-up that need no training -----------------------------------------


def test_learning_rate_warms_up_then_decays_to_zero():
    config = TrainConfig("resnet_fer", "x", "y", epochs=10, learning_rate=0.1, warmup_epochs=2)
    steps = 10  # per epoch
    assert learning_rate_at(0, config, steps) == pytest.approx(0.1 / 20)
    assert learning_rate_at(19, config, steps) == pytest.approx(0.1)
    assert learning_rate_at(20, config, steps) == pytest.approx(0.1)  # cosine starts at the peak
    assert learning_rate_at(60, config, steps) == pytest.approx(0.05)  # half-way through the decay
    assert learning_rate_at(100, config, steps) == pytest.approx(0.0, abs=1e-12)


def test_without_val_data_a_stratified_hold_out_is_used(tmp_path: Path, make_fer_csv):
    path = make_fer_csv(tmp_path / "fer.csv", per_class=10, usages=("Training",))
    config = TrainConfig("resnet_fer_small", str(path), str(tmp_path / "run"), val_fraction=0.2)
    train, val = load_training_data(config)
    assert isinstance(train, FaceDataset) and len(train) == 56 and len(val) == 14
    assert set(val.class_counts().values()) == {2}
    assert "hold-out 20%" in val.source
    again_train, again_val = load_training_data(config)
    np.testing.assert_array_equal(again_val.images, val.images)  # seeded: the same split every time
    limited, _ = load_training_data(
        TrainConfig("resnet_fer_small", str(path), "run", limit=21, val_data=str(path), val_usage=["Training"])
    )
    assert len(limited) == 21


def test_train_argv_reproduces_the_config_it_was_made_from(tmp_path: Path):
    """The app's background runner starts `python -m fer_core train` with `train_argv(config)`:
    parsed back, those arguments must give the same config, photometric augmentation included."""
    from fer_core.cli import build_parser, config_from_args, train_argv

    config = TrainConfig(
        architecture="resnet_fer_lite", train_data=str(tmp_path / "train"), out=str(tmp_path / "run"),
        val_data=str(tmp_path / "val"), epochs=7, batch_size=64, learning_rate=0.05, optimizer="sgd",
        warmup_epochs=1.0, patience=3, photo_augment=True, mixup=0.2, mix_data=[str(tmp_path / "more")], seed=9,
        average_last=3,
    )
    argv = train_argv(config)
    assert "--photo-augment" in argv
    assert config_from_args(build_parser().parse_args(argv)) == config
    plain = TrainConfig(architecture="tiny_cnn32", train_data="t", out="o", augment=False)
    assert config_from_args(build_parser().parse_args(train_argv(plain))) == plain
