"""The custom dataset store (fer_core/dataset_store.py, fer_core/dataset_io.py): real SQLite and
real files in tmp folders, real processes and threads for the concurrency cases, the shipped model
and BlazeFace for the photo case. Nothing is mocked; failures are provoked with a real SQLite
trigger or a failing os.replace.
"""

from __future__ import annotations

import csv
import io
import multiprocessing
import os
import sqlite3
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_core import dataset_io
from fer_core.classes import CLASSES
from fer_core.data import load_dataset
from fer_core.dataset_io import export_csv, export_zip, face_candidates, picture_candidates
from fer_core.dataset_records import IMAGES_DIR, NewFace, Prediction, split_for
from fer_core.dataset_store import MAX_STORED_SIDE, DatasetStore, default_root, is_dataset_root
from fer_core.errors import ConflictError, DatasetError, DuplicateFaceError, FerError, ImageError
from fer_core.preprocessing import Box

REPO_ROOT = Path(__file__).resolve().parent.parent


def make_face(seed: int, size: int = 48, colour: bool = False) -> np.ndarray:
    """A unique noise image per seed (gray, or RGB with `colour`)."""
    rng = np.random.default_rng(seed)
    shape = (size, size, 3) if colour else (size, size)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def image_files(store: DatasetStore) -> list[Path]:
    folder = store.root / IMAGES_DIR
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


def png_bytes(array: np.ndarray, format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=format)
    return buffer.getvalue()


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    return DatasetStore(tmp_path / "dataset")


@pytest.fixture(scope="module")
def recognizer(blazeface_detector):
    """The shipped model behind BlazeFace, loaded once for this module."""
    from fer_core.inference import EmotionClassifier, EmotionRecognizer

    return EmotionRecognizer(blazeface_detector, EmotionClassifier(REPO_ROOT / "models" / "resnet_fer"))


# --- layout, adding, labelling ----------------------------------------------------------------------


def test_a_new_root_gets_the_index_schema_and_wal(tmp_path, monkeypatch):
    root = tmp_path / "fresh"
    assert not is_dataset_root(root)
    with pytest.raises(DatasetError, match="not a custom dataset"):
        DatasetStore(root, create=False)
    store = DatasetStore(root)
    assert is_dataset_root(root) and store.count() == 0
    with sqlite3.connect(store.index_path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 1
        indexes = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"faces_label", "faces_split", "faces_source", "faces_created", "faces_deleted_at", "faces_confidence"} <= indexes
    monkeypatch.setenv("FER_DATASET_DIR", str(tmp_path / "from_env"))
    assert default_root() == tmp_path / "from_env" and DatasetStore().root == tmp_path / "from_env"
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "index.sqlite").write_text("not a database")
    with pytest.raises(DatasetError, match="not a dataset index|cannot open the dataset index \\(file is not a database\\)"):
        DatasetStore(tmp_path / "junk")


def test_add_stores_a_png_named_by_its_pixel_hash(store):
    gray = make_face(1)
    record = store.add_face(gray, source="upload", origin="../../etc/passwd", notes="first", actor="tab-a")
    assert record.file == f"images/{record.sha256[:2]}/{record.sha256}.png"  # no user text in the path
    assert (store.root / record.file).is_file() and not (store.root.parent / "etc").exists()
    assert record.origin == "../../etc/passwd" and record.notes == "first"
    assert (record.width, record.height, record.channels, record.version) == (48, 48, 1, 1)
    assert record.label is None and record.prediction is None and record.box is None
    assert record.split == split_for(record.sha256) and record.created.endswith("+00:00")
    np.testing.assert_array_equal(store.load_image(record), gray)

    colour = make_face(2, size=600, colour=True)[:, :400]  # 400 wide, 600 high: downscaled to 256 high
    big = store.add_face(colour, source="camera", box=Box(10, 20, 400, 600), label="HAPPY")
    assert (big.width, big.height, big.channels) == (171, MAX_STORED_SIDE, 3)
    assert big.label == "happy" and big.box == Box(10, 20, 400, 600)
    assert store.load_image(big).shape == (256, 171, 3)
    assert len(image_files(store)) == 2


def test_split_is_reproducible_from_the_hash(store):
    records = [store.add_face(make_face(seed), source="import") for seed in range(60)]
    for record in records:
        bucket = int(record.sha256[:8], 16) % 10
        assert record.split == ("train" if bucket < 8 else "val" if bucket == 8 else "test")
    assert {record.split for record in records} == {"train", "val", "test"}


def test_an_exact_duplicate_is_refused_naming_the_face(store, tmp_path):
    face = make_face(3, colour=True)
    first = store.add_face(face, source="upload")
    with pytest.raises(DuplicateFaceError, match=f"exactly this face already: face {first.id}") as caught:
        store.add_face(face.copy(), source="webcam")
    assert caught.value.existing_id == first.id
    # The same pixels as PNG and as (lossless) BMP or TIFF are the same face.
    folder = tmp_path / "tree" / "sad"
    folder.mkdir(parents=True)
    (folder / "a.png").write_bytes(png_bytes(face))
    (folder / "a.bmp").write_bytes(png_bytes(face, "BMP"))
    (folder / "a.tiff").write_bytes(png_bytes(face, "TIFF"))
    report = store.import_path(tmp_path / "tree")
    assert report.added == [] and sorted(report.duplicates) == [(f"sad/a.{s}", first.id) for s in ("bmp", "png", "tiff")]
    store.delete(first.id)
    with pytest.raises(DuplicateFaceError, match=f"face {first.id} \\(deleted: restore it instead\\)"):
        store.add_face(face, source="upload")
    assert store.count(include_deleted=True) == 1


def test_label_relabel_clear_delete_restore_and_history(store):
    record = store.add_face(make_face(4), source="webcam", actor="tab-a")
    record = store.set_label(record.id, "Sad", actor="tab-a")
    assert (record.label, record.version) == ("sad", 2)
    record = store.set_label(record.id, "angry", actor="tab-a", expected_version=2)
    assert (record.label, record.version) == ("angry", 3)
    assert store.set_label(record.id, "angry", actor="tab-a").version == 3  # no change, no new version
    record = store.clear_label(record.id, actor="tab-a")
    assert record.label is None and store.count(label="unlabelled") == 1
    record = store.delete(record.id, actor="tab-a")
    assert record.deleted and store.count() == 0 and store.count(include_deleted=True) == 1
    assert store.list_faces() == [] and [face.id for face in store.list_faces(deleted_only=True)] == [record.id]
    with pytest.raises(DatasetError, match="is deleted; restore it"):
        store.set_label(record.id, "happy")
    record = store.restore(record.id, actor="tab-a")
    assert not record.deleted and store.count() == 1
    record = store.set_notes(record.id, "blurry", actor="tab-a")
    assert record.notes == "blurry"
    actions = [event["action"] for event in store.history(face_id=record.id)]
    assert actions == ["notes", "restore", "delete", "clear_label", "label", "label", "add"]
    with pytest.raises(DatasetError, match="no face 999"):
        store.set_label(999, "happy")


def test_a_prediction_never_overwrites_the_label(store):
    record = store.add_face(make_face(5), source="upload", label="fear", prediction=Prediction("happy", 0.93, "resnet_fer"))
    assert record.label == "fear" and record.prediction == Prediction("happy", 0.93, "resnet_fer")
    record = store.set_prediction(record.id, "surprise", 0.41, "other_model")
    assert record.label == "fear"
    assert (record.predicted_label, record.confidence, record.model_name) == ("surprise", 0.41, "other_model")
    unlabelled = store.add_face(make_face(6), source="upload", prediction=Prediction("sad", 0.5, "m"))
    assert unlabelled.label is None  # a prediction is not a label
    with pytest.raises(DatasetError, match="within 0-1"):
        store.set_prediction(record.id, "sad", 1.5, "m")


def test_unknown_labels_sources_and_bad_images_are_rejected(store):
    for bad in ("../../etc", "smirk", "", "unlabelled"):
        with pytest.raises(DatasetError, match="unknown emotion class"):
            store.add_face(make_face(7), source="upload", label=bad)
    with pytest.raises(DatasetError, match="unknown face source 'ftp'"):
        store.add_face(make_face(7), source="ftp")
    with pytest.raises(DatasetError, match="unknown emotion class"):
        store.add_face(make_face(7), source="upload", prediction=Prediction("../x", 0.5, "m"))
    with pytest.raises(ImageError, match="uint8"):
        store.add_face(make_face(7).astype(np.float32), source="upload")
    with pytest.raises(ImageError, match="shape"):
        store.add_face(np.zeros((10, 10, 4), np.uint8), source="upload")
    record = store.add_face(make_face(7), source="upload")
    with pytest.raises(DatasetError, match="unknown emotion class '../../etc'"):
        store.set_label(record.id, "../../etc")
    with pytest.raises(DatasetError, match="unknown emotion class"):
        store.bulk_set_label([record.id], "nope")
    with pytest.raises(DatasetError, match="unknown split"):
        store.list_faces(split="../train")
    with pytest.raises(DatasetError, match="unknown order"):
        store.list_faces(order="label; DROP TABLE faces")
    with pytest.raises(DatasetError, match="unknown review queue"):
        store.queue("random")
    assert store.count() == 1 and len(image_files(store)) == 1


# --- undo and concurrency -------------------------------------------------------------------------


def test_undo_reverts_the_latest_action_of_one_actor(store):
    a = store.add_face(make_face(10), source="upload", actor="tab-a")
    b = store.add_face(make_face(11), source="upload", actor="tab-b")
    c = store.add_face(make_face(12), source="upload", actor="tab-a")
    store.set_label(a.id, "happy", actor="tab-a")
    store.set_label(a.id, "sad", actor="tab-a")
    store.set_label(b.id, "fear", actor="tab-b")
    assert store.bulk_set_label([a.id, b.id, c.id], "neutral", actor="tab-a") == 3
    store.delete(c.id, actor="tab-a")

    assert store.undo("tab-a").action == "delete" and not store.get(c.id).deleted
    undone = store.undo("tab-a")  # the bulk label, as one step
    assert undone.action == "bulk_label" and sorted(undone.face_ids) == [a.id, b.id, c.id]
    assert [store.get(face).label for face in (a.id, b.id, c.id)] == ["sad", "fear", None]
    assert store.undo("tab-a").action == "label" and store.get(a.id).label == "happy"
    assert store.undo("tab-a").action == "label" and store.get(a.id).label is None
    assert store.undo("tab-a").action == "add" and store.get(c.id).deleted  # undoing an add deletes (softly)
    assert store.undo("tab-b").action == "label" and store.get(b.id).label is None  # tab-b's own history
    assert store.undo("tab-a").action == "add" and store.get(a.id).deleted
    assert store.undo("tab-a") is None
    assert store.get(b.id).label is None and not store.get(b.id).deleted


def test_undo_refuses_to_clobber_another_actors_change(store):
    face = store.add_face(make_face(13), source="upload", actor="tab-a")
    store.set_label(face.id, "happy", actor="tab-a")
    store.set_label(face.id, "sad", actor="tab-b")
    with pytest.raises(ConflictError, match=f"could not undo the label of face {face.id}: .*relabelled sad since"):
        store.undo("tab-a")
    assert store.get(face.id).label == "sad"  # nothing was reverted
    assert store.undo("tab-a").action == "add"  # the blocked step was dropped: undo goes further back
    store.restore(face.id, actor="tab-b")
    store.bulk_delete([face.id], actor="tab-b")
    store.purge()
    with pytest.raises(ConflictError, match="was purged"):
        store.undo("tab-b")


def test_two_tabs_optimistic_concurrency(store):
    face = store.add_face(make_face(14), source="upload")
    tab_a, tab_b = store.get(face.id), store.get(face.id)  # both tabs show version 1
    store.set_label(face.id, "happy", actor="tab-a", expected_version=tab_a.version)
    with pytest.raises(ConflictError) as caught:
        store.set_label(face.id, "angry", actor="tab-b", expected_version=tab_b.version)
    message = str(caught.value)
    assert "was changed meanwhile" in message and "now labelled happy" in message and "by tab-a" in message
    assert isinstance(caught.value, FerError) and caught.value.current.label == "happy"
    assert store.get(face.id).label == "happy"
    with pytest.raises(ConflictError):
        store.delete(face.id, actor="tab-b", expected_version=tab_b.version)
    fresh = store.get(face.id)
    assert store.set_label(face.id, "angry", actor="tab-b", expected_version=fresh.version).label == "angry"


def _process_worker(root: str, worker: int, count: int) -> list[int]:
    """One of four processes: add `count` faces and label each, while the others do the same."""
    store = DatasetStore(root)
    ids = []
    for index in range(count):
        record = store.add_face(make_face(1000 * worker + index), source="webcam", actor=f"process-{worker}")
        store.set_label(record.id, CLASSES[(worker + index) % len(CLASSES)], actor=f"process-{worker}")
        ids.append(record.id)
    store.bulk_set_label(ids[:3], "surprise", actor=f"process-{worker}")
    return ids


def test_four_processes_writing_at_once_lose_nothing(store):
    count = 12
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.starmap(_process_worker, [(str(store.root), worker, count) for worker in range(4)])
    all_ids = [face_id for ids in results for face_id in ids]
    assert len(set(all_ids)) == 4 * count and store.count() == 4 * count
    for worker, ids in enumerate(results):
        labels = [store.get(face_id).label for face_id in ids]
        expected = ["surprise"] * 3 + [CLASSES[(worker + index) % len(CLASSES)] for index in range(3, count)]
        assert labels == expected
    assert len(store.history(limit=10_000)) == 4 * (count + count + 3)
    assert len(image_files(store)) == 4 * count and store.check().ok


def test_threads_share_one_store_object(store):
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for index in range(6):
                record = store.add_face(make_face(5000 + 10 * worker + index), source="upload", actor=f"t{worker}")
                store.set_label(record.id, "happy", actor=f"t{worker}", expected_version=record.version)
                store.list_faces(limit=5)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and store.count(label="happy") == 36


# --- crash safety ---------------------------------------------------------------------------------


def test_a_failed_file_write_leaves_no_row_and_no_file(store, monkeypatch):
    store.add_face(make_face(20), source="upload")

    def failing_replace(source, destination):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(DatasetError, match="cannot write the face image"):
        store.add_face(make_face(21), source="upload", label="happy", actor="tab")
    monkeypatch.undo()
    assert store.count(include_deleted=True) == 1 and len(image_files(store)) == 1  # no temp file either
    assert [event["action"] for event in store.history()] == ["add"]
    assert store.add_face(make_face(21), source="upload").id == 2


def test_a_failed_insert_removes_the_written_file(store):
    store.add_face(make_face(22), source="upload")
    with sqlite3.connect(store.index_path) as connection:
        connection.execute("CREATE TRIGGER refuse BEFORE INSERT ON faces BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")
    faces = [NewFace(make_face(23), "upload"), NewFace(make_face(24), "upload")]
    with pytest.raises(DatasetError, match="disk I/O error"):
        store.add_faces(faces, actor="tab")
    assert store.count(include_deleted=True) == 1 and len(image_files(store)) == 1
    with sqlite3.connect(store.index_path) as connection:
        connection.execute("DROP TRIGGER refuse")
    assert [type(result).__name__ for result in store.add_faces(faces)] == ["FaceRecord", "FaceRecord"]
    assert len(image_files(store)) == 3


def test_check_finds_and_repairs_orphans_and_rows_without_files(store):
    kept = store.add_face(make_face(30), source="upload", label="happy")
    lost = store.add_face(make_face(31), source="upload", label="sad")
    broken = store.add_face(make_face(32), source="upload")
    altered = store.add_face(make_face(33), source="upload")
    (store.root / lost.file).unlink()
    (store.root / broken.file).write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    Image.fromarray(make_face(99)).save(store.root / altered.file)
    # A crash between the rename and the commit leaves a file without a row (and maybe a temp file).
    orphan = store.prepare(NewFace(make_face(34), "upload"))
    (store.root / orphan.file).parent.mkdir(parents=True, exist_ok=True)
    (store.root / orphan.file).write_bytes(orphan.png)
    (store.root / IMAGES_DIR / ".half-written.tmp").write_bytes(b"partial")

    report = store.check()
    assert not report.ok and report.actions == []
    assert report.orphan_files == sorted([orphan.file, f"{IMAGES_DIR}/.half-written.tmp"])
    assert report.missing == [lost.id]
    assert [face_id for face_id, _ in report.unreadable] == [broken.id, altered.id]
    assert "unreadable" in report.unreadable[0][1] and "differ from the recorded hash" in report.unreadable[1][1]
    assert (store.root / orphan.file).exists()  # nothing changed without repair

    repaired = store.check(repair=True)
    assert len(repaired.actions) == 5 and any(f"removed face {lost.id}" in action for action in repaired.actions)
    assert not (store.root / orphan.file).exists() and not (store.root / broken.file).exists()
    assert [face.id for face in store.list_faces(include_deleted=True)] == [kept.id]
    assert store.check().ok and "no problem found" in store.check().lines()
    assert store.add_face(make_face(34), source="upload").sha256 == orphan.sha256  # the orphan's face can come back


def test_purge_removes_rows_then_files(store):
    keep = store.add_face(make_face(40), source="upload")
    gone = [store.add_face(make_face(seed), source="upload") for seed in (41, 42)]
    assert store.bulk_delete([face.id for face in gone], actor="tab") == 2
    assert store.purge(ids=[keep.id]) == 0  # only soft-deleted faces are purged
    assert store.purge(actor="tab") == 2
    assert store.count(include_deleted=True) == 1 and len(image_files(store)) == 1
    assert [event["action"] for event in store.history(face_id=gone[0].id)][:1] == ["purge"]


# --- review API -----------------------------------------------------------------------------------


def test_list_filters_count_and_order(store):
    a = store.add_face(make_face(50), source="upload", label="happy", prediction=Prediction("happy", 0.9, "m"))
    b = store.add_face(make_face(51), source="camera", prediction=Prediction("sad", 0.3, "m"))
    c = store.add_face(make_face(52), source="webcam", label="angry", prediction=Prediction("fear", 0.6, "m"))
    d = store.add_face(make_face(53), source="import")  # never predicted
    assert [face.id for face in store.list_faces()] == [a.id, b.id, c.id, d.id]
    assert [face.id for face in store.list_faces(order="confidence")] == [b.id, c.id, a.id, d.id]
    assert [face.id for face in store.list_faces(order="created", descending=True, limit=2)] == [d.id, c.id]
    assert [face.id for face in store.list_faces(limit=2, offset=2)] == [c.id, d.id]
    assert store.count(source="camera") == 1 and store.count(label="unlabelled") == 2 and store.count(label="Happy") == 1
    assert store.count(split=a.split) == sum(face.split == a.split for face in (a, b, c, d))
    assert store.count(created_from=b.created) == 3 and store.count(created_to=b.created) == 1
    assert store.count(created_from=c.created, created_to=d.created) == 1
    assert store.count(ids=[a.id, d.id, 999]) == 2 and store.count(ids=[]) == 0
    assert store.count(ids=list(range(1, 40_001))) == 4  # any number of ids (one JSON parameter)

    assert [face.id for face in store.queue("unlabelled")] == [b.id, d.id]
    assert [face.id for face in store.queue("low_confidence")] == [b.id, c.id, a.id, d.id]
    assert [face.id for face in store.queue("disagreement")] == [c.id]
    store.delete(b.id)
    assert [face.id for face in store.queue("unlabelled", limit=5)] == [d.id]


def test_stats_and_too_small(store):
    faces = [store.add_face(make_face(60 + index), source="upload", label="happy") for index in range(12)]
    store.add_face(make_face(80), source="camera", label="sad")
    store.add_face(make_face(81), source="webcam")
    store.delete(faces[0].id)
    stats = store.stats()
    assert (stats.total, stats.labelled, stats.unlabelled, stats.deleted) == (13, 12, 1, 1)
    assert stats.by_label["happy"] == 11 and stats.by_label["sad"] == 1
    assert stats.by_source == {"upload": 11, "camera": 1, "webcam": 1, "import": 0}
    assert sum(stats.by_split.values()) == 12
    train_happy = stats.by_label_split["happy"]["train"]
    assert ("happy" in stats.too_small()) == (train_happy < 10)
    assert "sad" in stats.too_small() and stats.too_small(min_per_class=0) == []
    assert "labelled" in stats.table() and stats.to_dict()["by_label"]["happy"] == 11


def test_face_dataset_has_the_right_splits_and_ids(store):
    records = [
        store.add_face(make_face(100 + index, colour=index % 2 == 0), source="upload", label=CLASSES[index % 7])
        for index in range(40)
    ]
    store.add_face(make_face(200), source="upload")  # unlabelled: never in a dataset
    store.delete(records[0].id)
    live = records[1:]
    for splits in (("train",), ("val", "test"), ("train", "val", "test")):
        expected = [record for record in live if record.split in splits]
        if not expected:
            continue
        dataset = store.face_dataset(splits=splits, image_size=32)
        assert len(dataset) == len(expected) and dataset.images.shape[1:] == (32, 32)
        assert dataset.ids == [f"face {record.id}" for record in expected]
        assert [CLASSES[label] for label in dataset.labels] == [record.label for record in expected]
        assert dataset.source == str(store.root)
    train = load_dataset(store.root, image_size=48)  # load_dataset reads a store root: train by default
    assert train.ids == [f"face {record.id}" for record in live if record.split == "train"]
    assert len(load_dataset(store.root, ["Training", "PublicTest"])) == sum(r.split in ("train", "val") for r in live)
    with pytest.raises(DatasetError, match="unknown split 'holdout'"):
        load_dataset(store.root, ["holdout"])
    empty = DatasetStore(store.root.parent / "empty")
    with pytest.raises(DatasetError, match=f"{empty.root}: no labelled face in the train split"):
        load_dataset(empty.root)


# --- photos through the detector --------------------------------------------------------------------


def test_a_photo_yields_one_candidate_with_box_and_prediction(store, recognizer, astronaut_rgb, astronaut_face_box):
    (candidate,) = face_candidates(recognizer, astronaut_rgb)
    assert candidate.box.iou(astronaut_face_box) > 0.7
    margin = recognizer.classifier.margin  # the card's margin on each side: the geometry inference uses
    side = round(max(candidate.box.width, candidate.box.height) * (1 + 2 * margin))
    assert abs(candidate.image.shape[0] - side) <= 2 and candidate.image.shape[2] == 3
    assert candidate.prediction.label in CLASSES and candidate.prediction.model_name == "resnet_fer"
    assert candidate.prediction.confidence == pytest.approx(float(candidate.probabilities.max()))
    record = store.add_face(
        candidate.image, source="upload", prediction=candidate.prediction, box=candidate.box, origin="astronaut.png"
    )
    assert record.label is None and record.box == candidate.box and record.predicted_label == candidate.prediction.label
    (half,) = face_candidates(recognizer, astronaut_rgb[::2, ::2].copy(), scale=0.5)  # boxes in the original's pixels
    assert half.box.iou(astronaut_face_box) > 0.6
    assert picture_candidates(recognizer, astronaut_rgb)[0].box == candidate.box  # a photo: detected
    crop = np.repeat(recognizer.classifier.prepare_face(astronaut_rgb, candidate.box)[:, :, np.newaxis], 3, axis=2)
    (small,) = picture_candidates(recognizer, crop)  # a 48x48 crop: one face as it is, no detection
    assert small.box is None and small.image.shape == (48, 48) and small.prediction.label in CLASSES


def test_import_a_class_tree_with_photos_corrupt_files_and_odd_folders(store, recognizer, tmp_path, astronaut_path):
    tree = tmp_path / "tree"
    for folder in ("Happy", "sad", "unlabelled", "smirk"):
        (tree / folder).mkdir(parents=True)
    for index in range(3):
        (tree / "Happy" / f"{index}.png").write_bytes(png_bytes(make_face(300 + index)))
    (tree / "sad" / "0.jpg").write_bytes(png_bytes(make_face(310, colour=True), "JPEG"))
    (tree / "sad" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tree / "sad" / "readme.txt").write_text("hello")
    (tree / "sad" / "photo.png").write_bytes(astronaut_path.read_bytes())
    (tree / "unlabelled" / "0.png").write_bytes(png_bytes(make_face(320)))
    (tree / "smirk" / "0.png").write_bytes(png_bytes(make_face(330)))
    (tree / "loose.png").write_bytes(png_bytes(make_face(340)))
    (tree / ".DS_Store").write_bytes(b"\0")

    report = store.import_path(tree, recognizer, actor="cli")
    assert len(report.added) == 6 and report.duplicates == []
    reasons = dict(report.skipped)
    assert set(reasons) == {"sad/broken.png", "sad/readme.txt", "smirk/", "loose.png"}
    assert "corrupt" in reasons["sad/broken.png"] or "not an image" in reasons["sad/broken.png"]
    assert "not an image file" in reasons["sad/readme.txt"] and "not a class folder" in reasons["smirk/"]
    by_origin = {record.origin: record for record in store.list_faces()}
    assert [by_origin[f"Happy/{index}.png"].label for index in range(3)] == ["happy"] * 3
    assert by_origin["unlabelled/0.png"].label is None and by_origin["Happy/0.png"].channels == 1
    assert by_origin["sad/0.jpg"].channels == 3 and by_origin["sad/0.jpg"].source == "import"
    photo = by_origin["sad/photo.png"]  # the photo's (largest) face, with the folder's label
    assert photo.label == "sad" and photo.box is not None and photo.predicted_label in CLASSES
    assert all(record.model_name == "resnet_fer" for record in by_origin.values())  # every face pre-labelled
    assert store.undo("cli").action == "add" and store.count() == 0  # the whole import is one undo step

    without_model = DatasetStore(tmp_path / "plain").import_path(tree)
    assert len(without_model.added) == 5 and "needs a model" in dict(without_model.skipped)["sad/photo.png"]
    assert dict(DatasetStore(tmp_path / "flat").import_path(tree / "sad").skipped)["0.jpg"] == "not inside a class folder"


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_zip_slip_and_oversized_zips_are_refused(store, tmp_path, monkeypatch):
    good = png_bytes(make_face(400))
    for bad in ("../evil.png", "happy/../../evil.png", "/abs/happy.png", "C:/happy.png", "happy\\..\\..\\evil.png"):
        archive = write_zip(tmp_path / "bad.zip", {"happy/ok.png": good, bad: good})
        with pytest.raises(DatasetError, match="unsafe path .*nothing imported"):
            store.import_path(archive)
        assert store.count() == 0 and not (tmp_path / "evil.png").exists()
    archive = write_zip(tmp_path / "many.zip", {f"happy/{index}.png": good for index in range(5)})
    monkeypatch.setattr(dataset_io, "MAX_ZIP_MEMBERS", 4)
    with pytest.raises(DatasetError, match="5 members, more than the 4"):
        store.import_path(archive)
    monkeypatch.setattr(dataset_io, "MAX_ZIP_MEMBERS", 20_000)
    monkeypatch.setattr(dataset_io, "MAX_MEMBER_BYTES", len(good) - 1)
    report = store.import_path(archive)
    assert report.added == [] and all("MB a picture may have" in reason for _, reason in report.skipped)
    monkeypatch.setattr(dataset_io, "MAX_ZIP_BYTES", 1000)
    with pytest.raises(DatasetError, match="uncompressed, more than"):
        store.import_path(archive)
    (tmp_path / "junk.zip").write_bytes(b"PK not a zip")
    with pytest.raises(DatasetError, match="not a readable ZIP"):
        store.import_path(tmp_path / "junk.zip")
    with pytest.raises(DatasetError, match="no such file or folder"):
        store.import_path(tmp_path / "missing.zip")
    (tmp_path / "data.bin").write_bytes(b"\0")
    with pytest.raises(DatasetError, match="expected a folder"):
        store.import_path(tmp_path / "data.bin")


def test_zip_of_a_tree_under_a_top_folder_imports_with_reasons(store, tmp_path):
    members = {
        "faces/happy/a.png": png_bytes(make_face(410)),
        "faces/Fear/b.png": png_bytes(make_face(411)),
        "faces/fear/bad.png": b"GIF89a broken",
        "faces/notes.txt": b"hi",
        "__MACOSX/faces/._a.png": b"resource fork",
    }
    report = store.import_path(write_zip(tmp_path / "faces.zip", members))
    assert len(report.added) == 2
    assert dict(report.skipped).keys() == {"faces/fear/bad.png", "faces/notes.txt"}
    assert sorted(face.label for face in store.list_faces()) == ["fear", "happy"]


def test_export_zip_then_import_keeps_every_label(store, tmp_path):
    labels = [*CLASSES, None, "happy"]
    originals = []
    for index, label in enumerate(labels):
        originals.append(
            store.add_face(
                make_face(500 + index, size=48 if index % 2 else 160, colour=index % 3 == 0),
                source=("upload", "camera", "webcam", "import")[index % 4],
                label=label,
                prediction=Prediction(CLASSES[(index + 1) % 7], 0.25 + index / 20, "resnet_fer"),
                box=(index, 2 * index, 50, 60) if index % 2 else None,
                origin=f"photo {index}.jpg",
                notes=f"note, with \"quotes\" {index}",
            )
        )
    store.delete(originals[-1].id)  # deleted faces are not exported
    archive = store.export_zip(tmp_path / "export.zip")
    with zipfile.ZipFile(archive) as opened:
        names = set(opened.namelist())
        manifest = list(csv.DictReader(io.StringIO(opened.read("manifest.csv").decode())))
    assert f"unlabelled/{originals[7].id}.png" in names and f"angry/{originals[0].id}.png" in names
    assert len(manifest) == len(labels) - 1 and {"file", "label", "source", "created", "predicted_label",
                                                   "confidence", "split", "origin", "notes", "model_name"} <= manifest[0].keys()

    copy = DatasetStore(tmp_path / "copy")
    report = copy.import_path(archive)
    assert len(report.added) == len(labels) - 1 and report.skipped == []
    imported = {record.sha256: record for record in copy.list_faces()}
    for original in originals[:-1]:
        twin = imported[original.sha256]  # same pixels, so the same hash and split
        assert (twin.label, twin.source, twin.split, twin.origin, twin.notes, twin.box) == (
            original.label, original.source, original.split, original.origin, original.notes, original.box,
        )  # fmt: skip
        assert (twin.predicted_label, twin.model_name, twin.created) == (original.predicted_label, "resnet_fer", original.created)
        assert twin.confidence == pytest.approx(original.confidence, abs=1e-6)
        np.testing.assert_array_equal(copy.load_image(twin), store.load_image(original))
    again = store.import_path(archive)  # into the store it came from: all duplicates of the same faces
    assert again.added == [] and sorted(face_id for _, face_id in again.duplicates) == [r.id for r in originals[:-1]]


def test_export_csv_then_import_keeps_every_label(store, tmp_path, make_fer_csv):
    source_csv = make_fer_csv(tmp_path / "fer.csv", per_class=2, usages=("Training",))
    with source_csv.open("a", newline="") as handle:
        csv.writer(handle).writerows([["9", " ".join(["1"] * 2304), "Training"], ["3", "1 2 3", "Training"]])
    report = store.import_path(source_csv)
    assert len(report.added) == 14 and [origin for origin, _ in report.skipped] == ["fer.csv, line 16", "fer.csv, line 17"]
    assert "not a code 0-6" in report.skipped[0][1] and "do not form a square" in report.skipped[1][1]
    store.add_face(make_face(600, size=100, colour=True), source="camera", label="surprise")  # resized to 48 in the CSV
    store.add_face(make_face(601), source="camera")  # unlabelled: not in a FER CSV

    exported = export_csv(store, tmp_path / "out.csv")
    rows = list(csv.DictReader(exported.open()))
    assert len(rows) == 15 and all(len(row["pixels"].split()) == 2304 for row in rows)
    assert {row["Usage"] for row in rows} <= {"Training", "PublicTest", "PrivateTest"}
    assert load_dataset(exported).class_counts() == store.face_dataset(("train", "val", "test")).class_counts()
    copy = DatasetStore(tmp_path / "copy")
    assert len(copy.import_path(exported).added) == 15
    assert copy.stats().by_label == store.stats().by_label
    with pytest.raises(DatasetError, match="no labelled face to export"):
        DatasetStore(tmp_path / "empty").export_csv(tmp_path / "empty.csv")
    with pytest.raises(DatasetError, match="must end in .zip"):
        export_zip(store, tmp_path / "out.tar")
