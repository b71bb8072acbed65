"""fer_core.accelerated (`train --accelerator`) and fer_core.augmentation: augmentation inside the
model, the warm-up/cosine schedule as an optimizer schedule, and a run folder that `finalize`
takes as it takes a CPU run's.

On the GPU machine this path runs on JAX; here it runs on TensorFlow, the backend this machine
has. The code is the same Keras, so what is checked here (the run folder, the saved bare model,
the schedule, distillation from a cached teacher) holds there.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from fer_core import accelerated, cli
from fer_core.accelerated import StopBeforeDeadline, augmented, model_targets
from fer_core.augmentation import (
    PHOTO_AUGMENT,
    AugmentConfig,
    MixedTargetLoss,
    MixupPairs,
    PhotometricJitter,
    RandomErasing,
    erasing_mask,
)
from fer_core.card import read_card
from fer_core.data import FaceDataset
from fer_core.training import (
    BEST_FILE,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    STATE_FILE,
    TEACHER_CACHE,
    TrainConfig,
    WarmupCosine,
    learning_rate_at,
)


def test_random_erasing_layer_blanks_one_rectangle_in_training_only():
    layer = RandomErasing(probability=1.0, seed=3)
    zeros = np.zeros((16, 48, 48, 1), np.float32)
    assert np.array_equal(keras.ops.convert_to_numpy(layer(zeros, training=False)), zeros)
    erased = keras.ops.convert_to_numpy(layer(zeros, training=True))[..., 0]
    for image in erased:
        rows, cols = np.nonzero(image)
        assert len(rows) > 0, "nothing was erased"
        box = image[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert box.size <= 0.2 * 48 * 48 * 1.2
        assert (box > 0).mean() > 0.95


def test_photometric_jitter_layer_jitters_in_training_only_and_saves_its_settings():
    layer = PhotometricJitter(PHOTO_AUGMENT, seed=5)
    faces = np.random.default_rng(1).random((64, 48, 48, 1)).astype(np.float32)
    assert np.array_equal(keras.ops.convert_to_numpy(layer(faces, training=False)), faces)
    jittered = keras.ops.convert_to_numpy(layer(faces, training=True))
    changed = np.abs(jittered - faces).max(axis=(1, 2, 3)) > 0
    assert 16 <= changed.sum() <= 48  # about half the faces (photometric_probability 0.5)
    assert 0.0 <= jittered.min() and jittered.max() <= 1.0
    again = PhotometricJitter.from_config(layer.get_config())
    assert again.config == PHOTO_AUGMENT and again.seed == 5


def test_erasing_mask_covers_the_drawn_area_at_the_drawn_place():
    # area fraction 0.1 of 40x40 = 160 px, aspect 1 (the middle of the log range), top-left corner
    uniforms = np.array([[0.5], [0.5], [0.0], [0.0]], np.float32)
    mask = keras.ops.convert_to_numpy(erasing_mask(40, 40, (0.0, 0.2), uniforms))[0, ..., 0]
    side = int(np.ceil(np.sqrt(160)))
    assert mask[:side, :side].all() and mask.sum() == side * side and not mask[side:, :].any()


def test_augmentation_changes_faces_when_training_and_passes_them_unchanged_otherwise():
    model = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Flatten(), keras.layers.Dense(7, activation="softmax")])
    wrapped = augmented(model, AugmentConfig(), seed=1)
    faces = np.random.default_rng(0).random((8, 48, 48, 1)).astype(np.float32)
    augment = keras.Model(wrapped.input, wrapped.layers[-2].output)  # the last augmentation step
    assert np.allclose(keras.ops.convert_to_numpy(augment(faces, training=False)), faces)
    changed = keras.ops.convert_to_numpy(augment(faces, training=True))
    assert sum(not np.allclose(a, b) for a, b in zip(changed, faces, strict=True)) >= 6
    assert not any(isinstance(layer, PhotometricJitter) for layer in wrapped.layers)
    assert any(isinstance(layer, PhotometricJitter) for layer in augmented(model, PHOTO_AUGMENT, seed=1).layers)


def test_the_schedule_object_follows_the_cpu_paths_learning_rates():
    config = TrainConfig("resnet_fer_small", "x", "y", epochs=5, learning_rate=0.1, warmup_epochs=1.0)
    schedule = WarmupCosine.for_run(config, steps_per_epoch=20)
    for step in (0, 10, 19, 20, 55, 99, 100):
        assert float(keras.ops.convert_to_numpy(schedule(step))) == pytest.approx(learning_rate_at(step, config, 20), abs=1e-6)
    assert WarmupCosine(**schedule.get_config()).get_config() == schedule.get_config()


def test_distillation_targets_append_the_teachers_probabilities():
    dataset = FaceDataset(np.zeros((3, 48, 48), np.uint8), np.array([0, 3, 6]), "x")
    soft = np.full((3, 7), 1 / 7, np.float32)
    targets = model_targets(dataset, soft)
    assert targets.shape == (3, 14) and list(targets[:, :7].argmax(axis=1)) == [0, 3, 6]
    assert np.allclose(targets[:, 7:], soft)


def small_run(paths: dict[str, Path], *extra: str) -> list[str]:
    """`train --accelerator` of the small network on the test folders (batches of 35: 2 an epoch)."""
    return ["train", "--accelerator", "--arch", "resnet_fer_small", "--data", str(paths["train"]), "--val", str(paths["val"]),
            "--out", str(paths["run"]), "--batch-size", "35", *extra]


@pytest.fixture(scope="module")
def accelerated_run(tmp_path_factory: pytest.TempPathFactory, make_training_folders) -> dict[str, Path]:
    paths = make_training_folders(tmp_path_factory.mktemp("accelerated"))
    status = cli.main(small_run(paths, "--epochs", "2", "--warmup-epochs", "0.5", "--time-limit", "600", "--photo-augment"))
    assert status == 0
    return paths


def test_an_accelerator_run_folder_is_a_cpu_run_folder_that_finalize_takes(accelerated_run, capsys):
    run = accelerated_run["run"]
    for name in (CONFIG_FILE, "history.csv", CHECKPOINT_FILE, BEST_FILE, STATE_FILE):
        assert (run / name).is_file(), f"{name} missing"
    with (run / "history.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    # the schedule's value at the end of each epoch (2 steps an epoch, 1 of warm-up, 4 in all)
    config = TrainConfig(**json.loads((run / CONFIG_FILE).read_text()))
    assert [float(row["lr"]) for row in rows] == pytest.approx([learning_rate_at(s, config, 2) for s in (2, 4)], abs=1e-6)
    checkpoint = keras.saving.load_model(run / BEST_FILE)
    assert checkpoint.name == "resnet_fer_small"  # the bare zoo model, not its training wrapper
    assert not any(kind in layer.name for layer in checkpoint.layers for kind in ("erasing", "random", "photometric"))
    assert config.photo_augment  # the run records it (the wrapper's layers: the augmentation test)
    capsys.readouterr()
    assert cli.main(["finalize", "--run", str(run), "--tflite-weights", "float32"]) == 0
    card = read_card(run)
    assert config.accelerator == f"Keras {keras.__version__} on {keras.backend.backend()}"
    assert f"Trained with train --accelerator ({config.accelerator})" in card.notes and "Stopped after" not in card.notes
    state = json.loads((run / STATE_FILE).read_text())
    assert card.metrics["val_accuracy"] == pytest.approx(state["best_val_accuracy"], abs=1 / 14 + 1e-6)


def test_a_time_limit_ends_the_run_between_epochs_and_the_card_says_so(make_training_folders, tmp_path, capsys):
    paths = make_training_folders(tmp_path)
    assert cli.main(small_run(paths, "--epochs", "4", "--time-limit", "1")) == 0
    assert json.loads((paths["run"] / STATE_FILE).read_text())["epochs_done"] == 1
    assert "1 epochs" in capsys.readouterr().out
    assert cli.main(["finalize", "--run", str(paths["run"]), "--tflite-weights", "float32"]) == 0
    assert "Stopped after epoch 1 of 4" in read_card(paths["run"]).notes


def test_a_gpu_run_stopped_early_is_finished_on_the_cpu_path_with_resume(make_training_folders, tmp_path, capsys):
    """The accelerator path saves the bare model: the CPU path resumes it with a fresh optimizer
    that starts where the schedule stopped."""
    paths = make_training_folders(tmp_path)
    common = ["--arch", "resnet_fer_small", "--data", str(paths["train"]), "--val", str(paths["val"]),
              "--out", str(paths["run"]), "--epochs", "4", "--batch-size", "35", "--warmup-epochs", "0.5"]
    assert cli.main(["train", "--accelerator", *common, "--time-limit", "1"]) == 0
    stopped = keras.saving.load_model(paths["run"] / CHECKPOINT_FILE)
    capsys.readouterr()
    assert cli.main(["train", "--resume", *common, "--no-finalize"]) == 0
    assert "the optimizer starts afresh at step 2" in capsys.readouterr().out
    with (paths["run"] / "history.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["1", "2", "3", "4"]
    config = TrainConfig(**json.loads((paths["run"] / CONFIG_FILE).read_text()))
    # the CPU path sets each step's rate before the step; the row shows the epoch's last one
    assert [float(row["lr"]) for row in rows[1:]] == pytest.approx([learning_rate_at(s, config, 2) for s in (3, 5, 7)], abs=1e-6)
    finished = keras.saving.load_model(paths["run"] / CHECKPOINT_FILE)
    assert finished.optimizer is not None  # the CPU path's checkpoints hold the optimizer again
    assert any(not np.allclose(a, b) for a, b in zip(stopped.get_weights(), finished.get_weights(), strict=True))
    assert json.loads((paths["run"] / STATE_FILE).read_text())["epochs_done"] == 4
    assert config.accelerator == f"Keras {keras.__version__} on {keras.backend.backend()}, epochs 1-1; the rest on the CPU path"
    assert cli.main(["finalize", "--run", str(paths["run"]), "--tflite-weights", "float32"]) == 0
    notes = read_card(paths["run"]).notes
    assert f"Trained with train --accelerator ({config.accelerator})" in notes and "Stopped after" not in notes


def test_a_student_distils_from_cached_targets_when_the_teacher_did_not_travel(accelerated_run, tmp_path, capsys):
    """The GPU machine gets the run folder with the teacher's cached targets, not the teacher."""
    finalized = accelerated_run["run"]
    if not (finalized / "card.json").is_file():
        pytest.skip("needs the finalized run of the previous test")
    teacher = tmp_path / "teacher"
    shutil.copytree(finalized, teacher, ignore=shutil.ignore_patterns("checkpoints"))
    student = tmp_path / "student"
    args = ["train", "--arch", "resnet_fer_small", "--data", str(accelerated_run["train"]), "--val", str(accelerated_run["val"]),
            "--epochs", "1", "--batch-size", "35", "--teacher", str(teacher), "--no-finalize"]
    assert cli.main([*args, "--out", str(tmp_path / "cpu_student")]) == 0  # makes the cache on "the CPU machine"
    (student / "checkpoints").mkdir(parents=True)
    for name in ("teacher_targets.npz", "teacher_val_targets.npz"):
        shutil.copy(tmp_path / "cpu_student" / "checkpoints" / name, student / "checkpoints" / name)
    sha256 = json.loads((tmp_path / "cpu_student" / CONFIG_FILE).read_text())["teacher_sha256"]
    (teacher / "model.keras").unlink()  # the teacher did not travel: its TFLite file must not stand in for it
    assert cli.main([*args[:-1], "--accelerator", "--out", str(student)]) == 0
    config = json.loads((student / CONFIG_FILE).read_text())
    assert config["teacher_sha256"] == sha256 and config["teacher"] == str(teacher)
    with np.load(student / TEACHER_CACHE) as cached:
        assert str(cached["teacher_sha256"]) == sha256


def test_what_the_accelerator_path_does_not_do_is_refused_in_one_line(tmp_path, make_image_folder, capsys):
    data = make_image_folder(tmp_path / "faces", per_class=2, seed=4)
    base = ["train", "--accelerator", "--arch", "resnet_fer_small", "--data", str(data), "--out", str(tmp_path / "run")]
    for extra, message in ((["--resume"], "finish a stopped one there with train --resume"), (["--register"], "start afresh")):
        assert cli.main([*base, *extra]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "run" / CHECKPOINT_FILE).exists()


def test_without_the_teacher_or_its_cache_the_accelerator_path_says_so(tmp_path, make_image_folder, capsys):
    data = make_image_folder(tmp_path / "faces", per_class=2, seed=4)
    teacher = tmp_path / "gone"
    teacher.mkdir()
    status = cli.main(["train", "--accelerator", "--arch", "resnet_fer_small", "--data", str(data), "--val", str(data),
                       "--out", str(tmp_path / "run"), "--epochs", "1", "--teacher", str(teacher)])
    assert status == 2
    assert "no cached targets" in capsys.readouterr().err


def test_mixup_in_the_model_blends_mirror_rows_and_the_loss_blends_their_targets_alike():
    faces = np.random.default_rng(3).random((8, 48, 48, 1)).astype("float32")
    mixed, lam = (np.asarray(value) for value in MixupPairs(0.4, seed=5)(faces, training=True))
    assert lam.shape == (8,) and (lam >= 0.5).all() and (lam <= 1).all() and (lam < 0.99).any()
    weight = lam[:, None, None, None]
    np.testing.assert_allclose(mixed, weight * faces + (1 - weight) * faces[::-1], atol=1e-6)
    unchanged, ones = MixupPairs(0.4, seed=5)(faces, training=False)
    assert np.array_equal(np.asarray(unchanged), faces) and np.all(np.asarray(ones) == 1)

    labels = np.eye(7, dtype="float32")[[0, 1, 2, 3, 4, 5, 6, 0]]
    probabilities = keras.ops.softmax(np.random.default_rng(4).normal(size=(8, 7)).astype("float32"))
    inner = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)
    with_weight = keras.ops.concatenate([probabilities, lam[:, None]], axis=1)
    blended = lam[:, None] * labels + (1 - lam[:, None]) * labels[::-1]
    assert float(MixedTargetLoss(inner)(labels, with_weight)) == pytest.approx(float(inner(blended, probabilities)), rel=1e-5)


def test_an_accelerator_run_with_mixup_trains_the_bare_model_and_finalize_takes_it(make_training_folders, tmp_path, capsys):
    paths = make_training_folders(tmp_path)
    assert cli.main(small_run(paths, "--epochs", "2", "--mixup", "0.2")) == 0
    assert json.loads((paths["run"] / CONFIG_FILE).read_text())["mixup"] == 0.2
    with (paths["run"] / "history.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert all(0 <= float(row["accuracy"]) <= 1 and 0 <= float(row["val_accuracy"]) <= 1 for row in rows)
    checkpoint = keras.saving.load_model(paths["run"] / BEST_FILE)
    assert checkpoint.name == "resnet_fer_small" and checkpoint.output_shape == (None, 7)
    assert not any(isinstance(layer, MixupPairs) for layer in checkpoint.layers)
    assert cli.main(["finalize", "--run", str(paths["run"]), "--tflite-weights", "float32"]) == 0


def test_the_time_limit_measures_epochs_after_the_first_which_also_compiles(monkeypatch):
    """A first epoch of 90 s (compiling) and later ones of 2 s: with 18 s left the run goes on
    (judged by the first epoch it would stop there, two minutes early); with 2 s left it stops."""
    clock = [0.0]
    monkeypatch.setattr(accelerated.time, "monotonic", lambda: clock[0])
    stop = StopBeforeDeadline(deadline=400.0)
    stop.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    stop.model.stop_training = False

    def epoch(begins_at: float, seconds: float) -> bool:
        clock[0] = begins_at
        stop.on_epoch_begin(0)
        clock[0] += seconds
        stop.on_epoch_end(0)
        return stop.model.stop_training

    assert not epoch(0.0, 90.0) and not epoch(90.0, 2.0) and not epoch(92.0, 2.0)
    assert not epoch(380.0, 2.0)
    assert epoch(396.0, 2.0)
