"""fer_core.runs: real background trainings started the way the Training report page starts them.

A tiny zoo model trains on a few dozen generated faces in a child process (`python -m fer_core
train`). The tests watch its progress file, start a second training while it runs (refused,
naming the first), cancel it (the last finished epoch stays resumable), resume it to the end
(finalized and registered), and kill one outright (it reads as stopped and can be resumed).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from fer_core.classes import CLASSES
from fer_core.errors import FerError
from fer_core.registry import ModelRegistry
from fer_core.runs import (
    active_run,
    cancel_run,
    check_run_name,
    check_training_request,
    config_for_resume,
    list_runs,
    read_run,
    start_training,
)
from fer_core.training import CHECKPOINT_FILE, TrainConfig


def wait_for(condition, timeout: float = 240.0, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory, make_image_folder) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("run_faces")
    return {
        "train": make_image_folder(base / "train", per_class=8, seed=3),
        "val": make_image_folder(base / "val", per_class=2, seed=4),
    }


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The registry the training child registers into (and this process reads)."""
    import fer_core.registry

    root = tmp_path / "models"
    root.mkdir()
    monkeypatch.setenv("FER_MODELS_DIR", str(root))
    monkeypatch.setattr(fer_core.registry, "DEFAULT_MODELS_DIR", root)
    return root


def tiny_config(faces: dict[str, Path], out: Path, epochs: int) -> TrainConfig:
    return TrainConfig(
        architecture="tiny_cnn32", train_data=str(faces["train"]), val_data=str(faces["val"]), out=str(out),
        epochs=epochs, patience=epochs, batch_size=4, seed=5,
    )


def test_start_watch_refuse_second_cancel_resume_register(faces, private_runs_dir: Path, models_dir: Path):
    run_dir = private_runs_dir / "tiny_bg"
    config = tiny_config(faces, run_dir, epochs=400)
    counts = check_training_request(config, private_runs_dir, run_name="tiny_bg")
    assert sum(counts["train"].values()) == 56 and sum(counts["val"].values()) == 14

    started = start_training(config, private_runs_dir, register="tiny_bg")
    assert started.state in ("starting", "running") and started.pid
    # progress is reported from inside the child: epochs and batches
    progress = wait_for(lambda: read_run(run_dir).progress.get("last_epoch") and read_run(run_dir).progress,
                        what="a finished epoch in progress.json")
    assert progress["epochs"] == 400 and progress["steps"] == 14
    assert progress["last_epoch"]["val_accuracy"] is not None
    assert read_run(run_dir).state == "running"
    assert active_run(private_runs_dir).path == run_dir

    # one training per machine: a second start is refused and names the running one
    with pytest.raises(FerError, match="another training is running: .*tiny_bg"):
        start_training(tiny_config(faces, private_runs_dir / "second", epochs=1), private_runs_dir)

    cancelled = cancel_run(run_dir, wait=60)
    assert cancelled.state == "cancelled", cancelled
    assert "resumed" in cancelled.message
    assert cancelled.resumable and cancelled.epochs_done >= 1
    assert (run_dir / CHECKPOINT_FILE).is_file()
    assert not (run_dir / "card.json").exists()
    assert active_run(private_runs_dir) is None
    epochs_before = cancelled.epochs_done
    assert len(cancelled.history()) == epochs_before

    # resume to a near end: the run finishes, is finalized and lands in the registry
    resumed = start_training(config_for_resume(cancelled, epochs=epochs_before + 1), private_runs_dir, resume=True, register="tiny_bg")
    assert resumed.state in ("starting", "running")
    finished = wait_for(lambda: (info := read_run(run_dir)).state not in ("starting", "running") and info,
                        what="the resumed run to end")
    assert finished.state == "finished", (finished, finished.log_tail())
    assert finished.registered == "tiny_bg"
    assert [row["epoch"] for row in finished.history()] == list(range(1, epochs_before + 2))
    model = ModelRegistry(models_dir).get("tiny_bg")
    assert model.card.epochs_trained == epochs_before + 1
    assert model.card.flops > 0
    assert (model.path / "evaluations" / "val-none.npz").is_file()
    log = finished.log_tail(200)
    assert "cancelled" in log and "registered tiny_bg" in log
    assert [run.name for run in list_runs(private_runs_dir)][0] == "tiny_bg"


def test_a_killed_run_reads_as_stopped_and_resumes(faces, private_runs_dir: Path, models_dir: Path):
    run_dir = private_runs_dir / "tiny_killed"
    start_training(tiny_config(faces, run_dir, epochs=400), private_runs_dir, register=None)
    wait_for(lambda: json.loads((run_dir / "checkpoints" / "state.json").read_text())["epochs_done"] >= 1
             if (run_dir / "checkpoints" / "state.json").is_file() else False, what="a checkpoint")
    os.kill(read_run(run_dir).pid, signal.SIGKILL)
    stopped = wait_for(lambda: (info := read_run(run_dir)).state == "stopped" and info, timeout=30, what="stopped")
    assert "killed" in stopped.message and stopped.resumable
    assert active_run(private_runs_dir) is None  # the lock died with the process

    start_training(config_for_resume(stopped, epochs=stopped.epochs_done + 1), private_runs_dir, resume=True, register=None)
    finished = wait_for(lambda: (info := read_run(run_dir)).state not in ("starting", "running") and info, what="the end")
    assert finished.state == "finished", finished.log_tail()
    assert finished.finalized and finished.registered is None


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden", "x" * 65, "white space"])
def test_run_names_with_path_tricks_are_refused(name: str, tmp_path: Path):
    with pytest.raises(FerError, match="not a valid run name"):
        check_run_name(name, tmp_path)


def test_bad_training_requests_fail_before_anything_starts(faces, tmp_path: Path, make_fer_csv):
    (tmp_path / "taken").mkdir()
    no_classes = tmp_path / "no_classes"
    (no_classes / "holiday").mkdir(parents=True)
    empty = tmp_path / "empty"
    for name in ("angry", "happy"):
        (empty / name).mkdir(parents=True)
    bad_csv = make_fer_csv(tmp_path / "bad.csv", rows=[["1", "2"]], header=("label", "image"))
    cases = {
        "exists already": tiny_config(faces, tmp_path / "taken", 1),
        "no such file or folder": TrainConfig("tiny_cnn32", str(tmp_path / "missing"), str(tmp_path / "a")),
        "unknown class folder": TrainConfig("tiny_cnn32", str(no_classes), str(tmp_path / "b")),
        "hold no images": TrainConfig("tiny_cnn32", str(empty), str(tmp_path / "c")),
        "expected the columns emotion,pixels": TrainConfig("tiny_cnn32", str(bad_csv), str(tmp_path / "d")),
        "unknown architecture": TrainConfig("no_such_net", str(faces["train"]), str(tmp_path / "e")),
        "not a model folder|no such model folder": TrainConfig("tiny_cnn32", str(faces["train"]), str(tmp_path / "f"),
                                                              init_from=str(tmp_path)),
    }
    for message, config in cases.items():
        with pytest.raises(FerError, match=message):
            check_training_request(config, tmp_path, run_name=Path(config.out).name)
    assert not (tmp_path / "a").exists()


def test_cancelling_a_run_that_is_not_running_says_so(tmp_path: Path):
    run_dir = tmp_path / "done"
    run_dir.mkdir()
    (run_dir / "train_config.json").write_text("{}")
    (run_dir / "status.json").write_text(json.dumps({"state": "finished", "pid": 1}))
    with pytest.raises(FerError, match="not running .*finished"):
        cancel_run(run_dir)


def test_a_retrain_on_a_custom_dataset_lands_registered_and_compared_on_its_test_split(
    tiny_model_dir: Path, tmp_path: Path, models_dir: Path
):
    """What the Dataset page's retrain does: fine-tune a model on the labelled faces of a dataset
    store (train split, validating on its val split), finalize, evaluate the new model and the one
    it started from on the store's test split, register, and show both in the page's table."""
    from fer_core import cli
    from fer_core.dataset_store import DatasetStore
    from tests.conftest import synthetic_face
    from ui.dataset_view import custom_test_table

    store = DatasetStore(tmp_path / "custom")
    rng = np.random.default_rng(21)
    for label, name in enumerate(CLASSES):
        for _ in range(12):
            store.add_face(synthetic_face(label, 48, rng), source="import", label=name)
    splits = {split: store.count(split=split) for split in ("train", "val", "test")}
    assert splits["test"] > 0 and splits["val"] > 0, splits
    code = cli.main(["train", "--arch", "tiny_cnn32", "--data", str(store.root), "--init-from", str(tiny_model_dir),
                     "--out", str(tmp_path / "runs" / "custom_tiny"), "--epochs", "1", "--batch-size", "8",
                     "--register", "custom_tiny"])
    assert code == 0
    model = ModelRegistry(models_dir).get("custom_tiny")
    result = model.card.metrics["custom_test"]
    assert result["faces"] == splits["test"] and result["data"] == str(store.root)
    assert result["previous"]["model"] == "tiny_test"
    assert model.card.train_images == splits["train"] and model.card.val_images == splits["val"]
    assert {path.name for path in (model.path / "evaluations").glob("*.json")} >= {
        f"{result['slug']}.json", f"{result['previous']['slug']}.json"}
    assert (model.path / "lineage.json").is_file(), "the fine-tune names its parent"
    row = custom_test_table([model]).iloc[0]
    assert (row["model"], row["started from"], row["test faces"]) == ("custom_tiny", "tiny_test", splits["test"])
    assert row["change"] == pytest.approx(result["accuracy"] - result["previous"]["accuracy"])


def test_a_training_run_in_process_frees_the_machine_when_it_ends(tmp_path: Path, faces, models_dir: Path):
    """`python -m fer_core train` called in this very process: when it returns, no training is
    reported as running (the lock's record named this process, which lives on)."""
    from fer_core import cli

    runs = Path(os.environ["FER_RUNS_DIR"])
    code = cli.main(["train", "--arch", "tiny_cnn32", "--data", str(faces["train"]), "--val", str(faces["val"]),
                     "--out", str(tmp_path / "inproc"), "--epochs", "1", "--batch-size", "8", "--no-finalize"])
    assert code == 0
    assert active_run(runs) is None
    assert read_run(tmp_path / "inproc").state == "finished"
