"""The Upload page, run for real with Streamlit's AppTest: real images, real detector and model.

Bad inputs (corrupt, empty, CMYK, 16-bit, animated, decompression bomb, 50 megapixels) are
generated here with PIL, not committed. The model is the registry's default (models/ or
$FER_MODELS_DIR), or a tiny untrained stand-in when none exists; only the `happy` check needs
a trained one.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from fer_core.preprocessing import Box

REPO_ROOT = Path(__file__).resolve().parent.parent
ASTRONAUT = REPO_ROOT / "sample_images" / "astronaut.png"
ASTRONAUT_FACE = Box(174, 70, 105, 105)  # where BlazeFace finds it (see conftest.py)
CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


# --- test images, made with PIL ---------------------------------------------------------------


def astronaut() -> Image.Image:
    return Image.open(ASTRONAUT).convert("RGB")


def encode(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def unique_astronaut_png(seed: int) -> bytes:
    """The astronaut with one corner pixel changed: new content, so no cached result exists."""
    image = astronaut()
    image.putpixel((0, 0), (seed % 256, (seed // 256) % 256, 7))
    return encode(image, "PNG")


def cmyk_jpeg() -> bytes:
    return encode(astronaut().convert("CMYK"), "JPEG", quality=90)


def gray16_png() -> bytes:
    gray = np.asarray(astronaut().convert("L"), dtype=np.uint16) * 257
    image = Image.fromarray(gray)
    assert image.mode == "I;16", image.mode
    return encode(image, "PNG")


def animated_gif() -> bytes:
    first = astronaut()
    second = Image.open(REPO_ROOT / "sample_images" / "camera.png").convert("RGB").resize(first.size)
    return encode(first, "GIF", save_all=True, append_images=[second], duration=200, loop=0)


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression-bomb header)."""
    data = bytearray(encode(Image.new("RGB", (8, 8)), "PNG"))
    ihdr = 8 + 8  # signature, then length + b"IHDR"
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13])))
    return bytes(data)


def truncated_jpeg() -> bytes:
    whole = encode(astronaut(), "JPEG", quality=90)
    return whole[: len(whole) // 3]


def gradient_png(width: int = 400, height: int = 300) -> bytes:
    ramp = np.tile(np.linspace(0, 255, width, dtype=np.uint8), (height, 1))
    return encode(Image.fromarray(np.stack([ramp, ramp[::-1], np.full_like(ramp, 90)], axis=2)), "PNG")


# --- driving the page ---------------------------------------------------------------------------


@pytest.fixture
def upload_page(app_registry: Path) -> AppTest:
    # NOTE: with a `pages/` folder AppTest 1.67 reruns only the page script after the first run;
    # the sidebar's choices of the first run stay in session state, which is what the page reads.
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=180)
    app.run()
    assert not app.exception, app.exception
    assert app.title[0].value == "Upload photos"
    return app


def upload(app: AppTest, *files: tuple[str, bytes]) -> AppTest:
    mime = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif"}
    app.file_uploader(key="upload_files").set_value(
        [(name, data, mime.get(name.rsplit(".", 1)[-1], "application/octet-stream")) for name, data in files]
    )
    app.run()
    assert not app.exception, app.exception
    return app


def table(app: AppTest):
    return app.dataframe[0].value


def row_box(row) -> Box:
    return Box(int(row["x"]), int(row["y"]), int(row["width"]), int(row["height"]))


# --- tests --------------------------------------------------------------------------------------


def test_a_face_is_boxed_labelled_charted_and_tabled(upload_page: AppTest) -> None:
    app = upload(upload_page, ("astronaut.png", ASTRONAUT.read_bytes()))
    assert len(app.get("image")) >= 2, "the annotated picture and the face thumbnail"
    assert len(app.get("plotly_chart")) == 1
    badges = [markdown.value for markdown in app.markdown if "fer-face-badge" in markdown.value]
    assert len(badges) == 1 and "#1 " in badges[0]
    results = table(app)
    assert list(results.columns) == ["file", "face", "x", "y", "width", "height", "emotion", "confidence", *CLASSES]
    assert len(results) == 1
    row = results.iloc[0]
    assert row["file"] == "astronaut.png" and row["face"] == 1
    assert row_box(row).iou(ASTRONAUT_FACE) > 0.6
    probabilities = row[CLASSES].to_numpy(dtype=float)
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-3)
    assert row["emotion"] == CLASSES[int(np.argmax(probabilities))]
    assert row["emotion"] in badges[0]
    assert {button.key for button in app.get("download_button")} >= {"upload_csv"}
    assert any(button.key.startswith("upload_png_") for button in app.get("download_button"))


def test_the_sidebar_states_the_one_pass_and_the_test_time_augmented_accuracy(
    upload_page: AppTest, app_registry: Path
) -> None:
    from fer_core.registry import ModelRegistry

    metrics = ModelRegistry(app_registry).default().card.metrics
    captions = " | ".join(caption.value for caption in upload_page.sidebar.caption)
    assert f"validation accuracy **{metrics['val_accuracy']:.1%}** (one pass, as on the webcam)" in captions
    best_tta = metrics.get("best_tta", "none")
    if best_tta != "none":  # the shipped model: multicrop
        tta_accuracy = metrics["val_accuracy_by_tta"][best_tta]
        assert f"**{tta_accuracy:.1%}** with {best_tta} test-time augmentation (as on photos)" in captions


def test_the_smiling_astronaut_reads_happy(upload_page: AppTest, app_model_is_trained: bool) -> None:
    if not app_model_is_trained:
        pytest.skip("no trained model in models/ (the tests run on an untrained stand-in)")
    app = upload(upload_page, ("astronaut.png", ASTRONAUT.read_bytes()))
    assert table(app).iloc[0]["emotion"] == "happy"


def test_each_bad_file_gets_its_own_message_and_the_others_are_processed(upload_page: AppTest) -> None:
    files = [
        ("astronaut.png", ASTRONAUT.read_bytes()),
        ("notes.png", b"these are my notes, not a picture\n" * 20),
        ("truncated.jpg", truncated_jpeg()),
        ("empty.jpg", b""),
        ("bomb.png", bomb_png()),
        ("cmyk.jpg", cmyk_jpeg()),
        ("gray16.png", gray16_png()),
        ("animated.gif", animated_gif()),
    ]
    app = upload(upload_page, *files)
    errors = " | ".join(error.value for error in app.error)
    assert "notes.png: not an image file" in errors
    assert "truncated.jpg: the image is corrupt or truncated" in errors
    assert "empty.jpg: the file is empty (0 bytes)" in errors
    assert "bomb.png" in errors and "decompression bomb" in errors
    assert len(app.error) == 4
    notes = " | ".join(caption.value for caption in app.caption)
    assert "CMYK image converted to RGB" in notes
    assert "rescaled to 8 bits" in notes
    assert "animated image with 2 frames: only the first frame is analysed" in notes
    results = table(app)
    assert set(results["file"]) == {"astronaut.png", "cmyk.jpg", "gray16.png", "animated.gif"}
    for name in ("cmyk.jpg", "gray16.png", "animated.gif"):
        assert row_box(results[results["file"] == name].iloc[0]).iou(ASTRONAUT_FACE) > 0.5, name


def test_a_50_megapixel_photo_is_downscaled_and_boxes_stay_in_file_pixels(upload_page: AppTest) -> None:
    canvas = Image.new("RGB", (8200, 6100), (128, 128, 128))  # 50.0 megapixels
    canvas.paste(astronaut().resize((2048, 2048)), (3000, 2000))
    app = upload(upload_page, ("huge.jpg", encode(canvas, "JPEG", quality=85)))
    notes = " | ".join(caption.value for caption in app.caption)
    assert "downscaled from 8200x6100" in notes
    results = table(app)
    face = ASTRONAUT_FACE
    expected = Box(3000 + face.x * 4, 2000 + face.y * 4, face.width * 4, face.height * 4)
    assert any(row_box(row).iou(expected) > 0.5 for _, row in results.iterrows()), results


def test_no_face_says_what_to_try_and_offers_the_whole_image(upload_page: AppTest) -> None:
    app = upload(upload_page, ("gradient.png", gradient_png()))
    warning = " ".join(item.value for item in app.warning)
    assert "No face found" in warning and "Minimum face size" in warning and "closer crop" in warning
    assert "dataframe" not in [element.type for element in app.main]  # nothing to tabulate
    whole = next(toggle for toggle in app.toggle if toggle.key.startswith("upload_whole_"))
    whole.set_value(True)
    app.run()
    assert not app.exception, app.exception
    row = table(app).iloc[0]
    assert (row["x"], row["y"], row["width"], row["height"]) == (0, 0, 400, 300)
    assert len(app.get("plotly_chart")) == 1


def test_a_rerun_that_changes_nothing_does_not_redo_the_work(
    upload_page: AppTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ui.upload_view

    calls: list[str] = []
    real = ui.upload_view.analyze_bytes

    def counting(data, name, *args, **kwargs):
        calls.append(name)
        return real(data, name, *args, **kwargs)

    monkeypatch.setattr(ui.upload_view, "analyze_bytes", counting)
    data = unique_astronaut_png(np.random.default_rng().integers(1 << 16))
    app = upload(upload_page, ("fresh.png", data))
    assert calls == ["fresh.png"]
    app.run()
    app.run()
    assert calls == ["fresh.png"], "reruns reuse the cached result"
    upload(app, ("fresh.png", data), ("again.png", gradient_png()))
    assert calls == ["fresh.png", "again.png"], "only the new file is analysed"


def test_a_camera_photo_is_analysed(upload_page: AppTest) -> None:
    app = upload_page
    app.toggle(key="upload_use_camera").set_value(True)
    app.run()
    photo = encode(astronaut(), "JPEG", quality=90)
    app.camera_input(key="upload_camera").set_value(("photo.jpg", photo, "image/jpeg"))
    app.run()
    assert not app.exception, app.exception
    results = table(app)
    assert len(results) == 1 and results.iloc[0]["file"].startswith("camera-")
    assert row_box(results.iloc[0]).iou(ASTRONAUT_FACE) > 0.5


def test_add_to_dataset_puts_the_colour_crop_in_the_store(
    upload_page: AppTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fer_core.dataset_store import DatasetStore

    monkeypatch.setenv("FER_DATASET_DIR", str(tmp_path / "dataset"))
    app = upload(upload_page, ("astronaut.png", ASTRONAUT.read_bytes()))
    predicted = table(app).iloc[0]["emotion"]
    label_key = next(box.key for box in app.selectbox if box.key and box.key.startswith("upload_label_"))
    app.selectbox(key=label_key).set_value("sad")
    app.button(key=f"{label_key}_send").click()
    app.run()
    assert not app.exception, app.exception
    (face,) = DatasetStore(tmp_path / "dataset").list_faces()
    assert any(f"as face #{face.id} (sad)" in message.value for message in app.toast)
    assert (face.label, face.source, face.origin, face.predicted_label) == ("sad", "upload", "astronaut.png", predicted)
    assert face.model_name == app.session_state["sidebar_choices"].model.name and 0 < face.confidence <= 1
    assert face.channels == 3, "the colour crop is stored"
    assert face.box.iou(ASTRONAUT_FACE) > 0.6, "the box in the file's pixels"
    app.button(key=f"{label_key}_send").click()
    app.run()
    assert any(f"exactly this face already: face {face.id}" in warning.value for warning in app.warning)
    assert DatasetStore(tmp_path / "dataset").count() == 1


def test_add_to_dataset_names_a_dataset_folder_that_cannot_be_used(
    upload_page: AppTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "dataset"
    blocker.write_text("a file where the dataset folder should be")
    monkeypatch.setenv("FER_DATASET_DIR", str(blocker))
    app = upload(upload_page, ("astronaut.png", ASTRONAUT.read_bytes()))
    label_key = next(box.key for box in app.selectbox if box.key and box.key.startswith("upload_label_"))
    app.button(key=f"{label_key}_send").click()
    app.run()
    assert not app.exception, app.exception
    errors = " | ".join(error.value for error in app.error)
    assert "Could not add face #1 of astronaut.png to the custom dataset" in errors and "not a folder" in errors


# --- the engine side of the page (fer_core.analysis) ----------------------------------------------


def test_analysis_reports_bad_bytes_instead_of_raising(app_registry: Path) -> None:
    from fer_core.analysis import analyze_bytes, results_frame
    from fer_core.registry import ModelRegistry
    from ui.resources import load_recognizer

    recognizer = load_recognizer(ModelRegistry().default(), "blazeface")
    bad = analyze_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "broken.png", recognizer)
    assert not bad.ok and bad.error.startswith("broken.png:")
    assert results_frame([bad]).empty


def test_the_annotated_png_has_the_files_full_size(app_registry: Path) -> None:
    from fer_core.analysis import analyze_bytes, annotated_png
    from fer_core.registry import ModelRegistry
    from ui.resources import load_recognizer

    recognizer = load_recognizer(ModelRegistry().default(), "blazeface")
    data = ASTRONAUT.read_bytes()
    analysis = analyze_bytes(data, "astronaut.png", recognizer)
    png = Image.open(io.BytesIO(annotated_png(data, "astronaut.png", analysis.faces)))
    assert png.format == "PNG" and png.size == astronaut().size
    box = ASTRONAUT_FACE
    edge = (box.y + box.height // 2, slice(box.x - 3, box.x + 4))  # across the box's left side
    drawn, original = np.asarray(png)[edge].astype(int), np.asarray(astronaut())[edge].astype(int)
    assert np.abs(drawn - original).sum() > 0, "the box is drawn on the full-size PNG"
