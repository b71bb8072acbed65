"""The Dataset & labeling page, run for real with Streamlit's AppTest on a real store.

FER_DATASET_DIR points at a tmp folder holding a SQLite index and PNGs made with
`DatasetStore.add_face` (synthetic faces from conftest); the app, the sidebar and the store are
the real ones (the store object is cached per folder, so every test gets its own).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from fer_core.classes import CLASSES
from fer_core.dataset_records import FaceRecord, Prediction
from fer_core.dataset_store import DatasetStore
from fer_core.ensemble import is_ensemble
from fer_core.registry import ModelRegistry
from tests.conftest import synthetic_face

REPO_ROOT = Path(__file__).resolve().parent.parent
PAGE = "pages/4_dataset.py"
TABS = ("Collect", "Label", "Browse", "Balance", "Export & retrain")
PREDICTIONS = [("happy", 0.9), ("sad", 0.4), ("angry", 0.7), ("fear", 0.55), ("neutral", 0.8), ("surprise", 0.6)]


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DatasetStore:
    """A store of six unlabelled faces, each with a model prediction (ids 1-6, oldest first)."""
    root = tmp_path / "dataset"
    monkeypatch.setenv("FER_DATASET_DIR", str(root))
    store = DatasetStore(root)
    rng = np.random.default_rng(3)
    for number, (label, confidence) in enumerate(PREDICTIONS):
        store.add_face(synthetic_face(number % len(CLASSES), 48, rng), source="import",
                       prediction=Prediction(label, confidence, "test_model"), origin=f"face{number}.png")
    return store


def open_page(tab: str) -> AppTest:
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120)
    app.run()
    app.session_state["dataset_tab"] = tab
    app.switch_page(PAGE).run()
    assert not app.exception, app.exception
    return app


def texts(app: AppTest, kind: str) -> str:
    return " | ".join(str(element.value) for element in getattr(app, kind))


def shown_face(app: AppTest) -> int | None:
    headings = [markdown.value for markdown in app.markdown if markdown.value.startswith("### Face #")]
    return int(headings[0].removeprefix("### Face #")) if headings else None


def test_every_tab_renders(app_registry: Path, store: DatasetStore) -> None:
    app = open_page("Collect")
    assert app.title[0].value == "Dataset & labeling"
    assert {"collect_files", "collect_zip"} <= {uploader.key for uploader in app.get("file_uploader")}
    for tab in TABS[1:]:
        app.session_state["dataset_tab"] = tab
        app.run()
        assert not app.exception, (tab, app.exception)


def test_a_key_press_labels_the_face_keeps_the_prediction_and_advances_and_undo_reverts(
    app_registry: Path, store: DatasetStore
) -> None:
    app = open_page("Label")
    assert shown_face(app) == 1
    assert "**1 of 6** unlabelled" in texts(app, "markdown")
    assert app.button(key="label_class_angry").proto.shortcut == "1"
    app.button(key="label_class_angry").click().run()
    assert not app.exception, app.exception
    face = store.get(1)
    assert (face.label, face.predicted_label, face.confidence) == ("angry", "happy", pytest.approx(0.9))
    assert shown_face(app) == 2, "auto-advance to the next unlabelled face"
    assert "labelled #1 angry; U undoes" in texts(app, "success")
    assert "Labelled **1** of 6 faces" in texts(app, "markdown")
    app.button(key="label_undo").click().run()
    assert store.get(1).label is None
    assert shown_face(app) == 1, "undo shows the face it reverted"
    assert "Undid the label of face 1" in texts(app, "success")


def test_a_face_changed_by_another_tab_is_not_overwritten(app_registry: Path, store: DatasetStore) -> None:
    app = open_page("Label")
    assert shown_face(app) == 1
    store.set_label(1, "sad", actor="another-tab")  # between this tab's render and its click
    app.button(key="label_class_angry").click().run()
    assert not app.exception, app.exception
    assert store.get(1).label == "sad", "nothing was overwritten"
    warning = texts(app, "warning")
    assert "face 1 was changed meanwhile" in warning and "nothing was overwritten" in warning
    assert shown_face(app) == 1 and "Label: **sad**" in texts(app, "markdown"), "shown as it is now"
    app.button(key="label_class_angry").click().run()  # deciding again, on what is shown now
    assert store.get(1).label == "angry"


def test_left_right_delete_and_the_low_confidence_queue(app_registry: Path, store: DatasetStore) -> None:
    app = open_page("Label")
    app.button(key="label_skip").click().run()
    assert shown_face(app) == 2 and store.get(1).label is None
    app.button(key="label_back").click().run()
    assert shown_face(app) == 1
    app.button(key="label_delete").click().run()
    assert store.get(1).deleted and shown_face(app) == 2
    app.segmented_control(key="label_queue").set_value("low_confidence").run()
    assert not app.exception, app.exception
    assert shown_face(app) == 2, "the least confident face first (sad 40%)"
    assert "**1 of 5** least confident first" in texts(app, "markdown")


def test_bulk_relabel_and_delete_in_browse(app_registry: Path, store: DatasetStore) -> None:
    app = open_page("Browse")
    assert "**6** face(s) match" in texts(app, "markdown")
    app.checkbox(key="browse_pick_2").check()
    app.checkbox(key="browse_pick_5").check()
    app.run()
    app.selectbox(key="browse_new_label").set_value("fear")
    app.button(key="browse_relabel").click().run()
    assert not app.exception, app.exception
    assert [store.get(face_id).label for face_id in (2, 5)] == ["fear", "fear"]
    assert store.get(3).label is None
    assert "Relabelled 2 of 2 face(s) fear" in texts(app, "success")
    app.selectbox(key="browse_label").set_value("fear").run()
    assert "**2** face(s) match" in texts(app, "markdown")
    app.button(key="browse_undo").click().run()
    assert store.get(2).label is None and store.get(5).label is None


def test_balance_warns_about_classes_too_small_to_train(app_registry: Path, store: DatasetStore) -> None:
    store.bulk_set_label([1, 2, 3], "happy")
    app = open_page("Balance")
    warning = texts(app, "warning")
    assert "Too small to train:" in warning
    for name in CLASSES:
        assert name in warning
    metrics = {metric.label: metric.value for metric in app.metric}
    assert (metrics["Labelled"], metrics["Unlabelled"]) == ("3", "3")
    assert len(app.get("plotly_chart")) == 1


def test_export_offers_both_downloads_and_says_when_not_ready_to_train(app_registry: Path, store: DatasetStore) -> None:
    store.bulk_set_label([1, 2], "happy")
    app = open_page("Export & retrain")
    buttons = {button.key: button for button in app.get("download_button")}
    assert {"export_zip", "export_csv"} <= set(buttons)
    assert not buttons["export_zip"].proto.disabled and not buttons["export_csv"].proto.disabled
    assert "not ready to train on yet" in texts(app, "warning")
    assert app.text_input(key="dataset_train").value == str(store.root)
    # Retraining fine-tunes the active model; an ensemble is not one network, so the form starts
    # from the most accurate registered network instead and never offers the ensemble.
    models = ModelRegistry(app_registry).list()
    networks = [model for model in models if not is_ensemble(model.card)]
    start = app.selectbox(key="dataset_start")
    assert start.options == ["from scratch", *(f"fine-tune {model.name}" for model in networks)]
    active = models[0]  # the default, which the sidebar picks
    expected = max(networks, key=lambda model: model.val_accuracy or 0.0) if is_ensemble(active.card) else active
    assert start.value == expected.name


def test_the_exports_are_made_from_the_store(store: DatasetStore) -> None:
    from fer_core.dataset_io import export_bytes

    store.set_label(1, "happy")
    with zipfile.ZipFile(io.BytesIO(export_bytes(store, ".zip"))) as archive:
        names = archive.namelist()
    assert "manifest.csv" in names and "happy/1.png" in names and len(names) == 7
    rows = export_bytes(store, ".csv").decode().splitlines()
    assert rows[0] == "emotion,pixels,Usage" and len(rows) == 2


def test_a_walk_reads_the_queue_page_by_page(store: DatasetStore) -> None:
    from fer_core.labeling import LabelWalk

    walk = LabelWalk("unlabelled", page_size=2)
    seen = []
    face: FaceRecord | None = walk.current(store)
    while face is not None:
        seen.append(face.id)
        walk.label(store, "happy", actor="walker")
        face = walk.current(store)
    assert seen == [1, 2, 3, 4, 5, 6]
    assert store.count(label="unlabelled") == 0
    assert walk.undo(store, "walker").text.startswith("Undid the label of face 6")
    assert walk.current(store).id == 6


def png_bytes(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_collect_turns_photos_and_crops_into_labelled_faces_and_reports_bad_files(
    app_registry: Path, store: DatasetStore
) -> None:
    from fer_core.preprocessing import Box

    crop = synthetic_face(2, 48, np.random.default_rng(11))
    app = open_page("Collect")
    app.file_uploader(key="collect_files").set_value([
        ("astronaut.png", (REPO_ROOT / "sample_images" / "astronaut.png").read_bytes(), "image/png"),
        ("notes.png", b"not a picture at all\n" * 20, "image/png"),
        ("crop.png", png_bytes(crop), "image/png"),
    ])
    app.run()
    assert not app.exception, app.exception
    assert "notes.png: not an image file" in texts(app, "error")
    boxes = [box for box in app.selectbox if box.key and box.key.startswith("collect_label_")]
    assert len(boxes) == 2, "one candidate per detected face, and the small crop as it is"
    astronaut_box, crop_box = boxes
    astronaut_prediction = astronaut_box.value
    assert astronaut_prediction in CLASSES, "pre-labelled with the model's prediction"
    crop_box.set_value("unlabelled")
    app.button(key="collect_add").click().run()
    assert not app.exception, app.exception
    added = store.list_faces(source="upload", order="id")
    assert len(added) == 2
    photo, small = added
    assert (photo.label, photo.predicted_label, photo.origin) == (astronaut_prediction, astronaut_prediction, "astronaut.png")
    assert photo.box.iou(Box(174, 70, 105, 105)) > 0.6 and photo.channels == 3
    assert (small.label, small.box, small.origin, small.channels) == (None, None, "crop.png", 1)
    assert np.array_equal(store.load_image(small), crop), "a crop up to 128 px is stored as it is"
    assert any(f"#{photo.id}" in toast.value for toast in app.toast)
    app.button(key="collect_add").click().run()  # the same faces again
    assert "exactly this face already" in texts(app, "warning") and store.count() == 8


def test_import_a_zip_and_a_server_path_show_what_happened(app_registry: Path, store: DatasetStore) -> None:
    rng = np.random.default_rng(21)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("faces/happy/a.png", png_bytes(synthetic_face(3, 48, rng)))
        bundle.writestr("faces/sad/b.png", png_bytes(synthetic_face(5, 48, rng)))
        bundle.writestr("faces/sad/again.png", store.path_of(store.get(1)).read_bytes())
        bundle.writestr("faces/happy/broken.png", b"\x89PNG broken")
        bundle.writestr("faces/pets/cat.png", png_bytes(synthetic_face(0, 48, rng)))
    app = open_page("Collect")
    app.file_uploader(key="collect_zip").set_value(("faces.zip", archive.getvalue(), "application/zip"))
    app.run()
    app.button(key="collect_import_zip").click().run()
    assert not app.exception, app.exception
    assert "faces.zip: 2 added, 1 duplicates, 2 skipped" in texts(app, "success")
    report = app.dataframe[0].value
    results = dict(zip(report["file"], report["result"], strict=True))
    assert results["faces/sad/again.png"] == "duplicate of face #1"
    assert "not a class folder" in results["faces/pets/"] and results["faces/happy/broken.png"].startswith("skipped:")
    assert sorted(face.label for face in store.list_faces(label="happy") + store.list_faces(label="sad")) == ["happy", "sad"]
    app.button(key="collect_import_path").click().run()
    assert "Type the path of a folder" in texts(app, "error")
    app.text_input(key="collect_server_path").set_value("/nowhere/faces").run()
    app.button(key="collect_import_path").click().run()
    assert "Nothing was imported: /nowhere/faces: no such file or folder" in texts(app, "error")


def test_retrained_models_are_compared_on_the_custom_test_split(app_registry: Path) -> None:
    import dataclasses

    from fer_core.registry import ModelRegistry, RegisteredModel
    from ui.dataset_view import custom_test_table

    base = ModelRegistry().default()
    metrics = {**base.card.metrics, "custom_test": {
        "data": "/data/custom", "faces": 40, "accuracy": 0.75, "macro_f1": 0.7, "slug": "custom-test",
        "previous": {"model": base.name, "accuracy": 0.5, "macro_f1": 0.45, "slug": "custom-test-old"}}}
    retrained = RegisteredModel("custom_1", base.path, dataclasses.replace(base.card, metrics=metrics))
    table = custom_test_table([base, retrained])
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["model"], row["started from"], row["test faces"]) == ("custom_1", base.name, 40)
    assert (row["accuracy"], row["its accuracy"]) == (0.75, 0.5) and row["change"] == pytest.approx(0.25)


def test_a_dataset_folder_that_cannot_be_used_is_named(app_registry: Path, tmp_path: Path, monkeypatch) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the dataset folder should be")
    monkeypatch.setenv("FER_DATASET_DIR", str(blocker))
    app = open_page("Label")
    assert "The custom dataset cannot be opened" in texts(app, "error") and "not a folder" in texts(app, "error")
