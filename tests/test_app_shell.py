"""The app shell: navigation, the shared sidebar, once-per-process resources, server config.

Runs the real app.py in-process with Streamlit's AppTest on a real model folder (models/, or a
tiny untrained one when models/ has none yet).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

REPO_ROOT = Path(__file__).resolve().parent.parent
PAGES = {
    "pages/1_upload.py": "Upload photos",
    "pages/5_video_files.py": "Video files",
    # pages/2_live_webcam.py: webrtc_streamer cannot run under AppTest; its own tests cover it
    "pages/3_training_report.py": "Training report",
    "pages/4_dataset.py": "Dataset & labeling",
}


def start_app() -> AppTest:
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120)
    app.run()
    return app


def test_app_opens_on_the_upload_page_with_the_shared_sidebar(app_registry: Path) -> None:
    app = start_app()
    assert not app.exception, app.exception
    assert app.title[0].value == "Upload photos"
    model_box = app.sidebar.selectbox(key="sidebar_model")
    assert model_box.options, "the registry's models are offered"
    accuracy = " ".join(caption.value for caption in app.sidebar.caption)
    assert "accuracy" in accuracy or "not evaluated" in accuracy
    detector = app.sidebar.selectbox(key="sidebar_detector")
    assert detector.value == "blazeface"
    assert app.sidebar.slider(key="sidebar_min_face").value == 20
    assert app.sidebar.slider(key="sidebar_confidence").value == pytest.approx(0.5)


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_runs(app_registry: Path, page: str) -> None:
    app = start_app()
    app.switch_page(page).run()
    assert not app.exception, app.exception
    assert app.title[0].value == PAGES[page]


def test_sidebar_choices_are_read_from_their_widget_keys(app_registry: Path) -> None:
    # NOTE: with a `pages/` folder, AppTest 1.67 reruns only the page script after the first
    # run (not app.py), so sidebar choices are seeded before the first run instead of changed.
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120)
    app.session_state["sidebar_detector"] = "haar"
    app.session_state["sidebar_min_face"] = 40
    app.run()
    assert not app.exception, app.exception
    assert app.sidebar.selectbox(key="sidebar_detector").value == "haar"
    choices = app.session_state["sidebar_choices"]
    assert (choices.detector, choices.settings.min_face_size) == ("haar", 40)
    app.switch_page("pages/3_training_report.py").run()
    assert not app.exception, app.exception
    assert app.session_state["sidebar_choices"].detector == "haar"


def test_without_a_model_the_app_explains_instead_of_failing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fer_core.registry

    (tmp_path / "unfinished").mkdir()  # a folder without card.json: reported, not fatal
    monkeypatch.setattr(fer_core.registry, "DEFAULT_MODELS_DIR", tmp_path)
    app = start_app()
    assert not app.exception, app.exception
    assert any("No usable model" in error.value for error in app.sidebar.error)
    assert any("Choose a model" in info.value for info in app.info)


def test_models_and_detectors_load_once_per_process(app_registry: Path) -> None:
    from fer_core.registry import ModelRegistry
    from ui.resources import load_recognizer

    model = ModelRegistry().default()
    first, second = load_recognizer(model, "blazeface"), load_recognizer(model, "blazeface")
    assert first.classifier is second.classifier
    assert first.detector is second.detector


def test_server_config_is_headless_private_and_offline() -> None:
    path = REPO_ROOT / ".streamlit" / "config.toml"
    config = tomllib.loads(path.read_text(encoding="utf-8"))
    assert config["server"]["headless"] is True
    assert 1 <= config["server"]["maxUploadSize"] <= 200
    assert config["browser"]["gatherUsageStats"] is False
    assert config["theme"]["primaryColor"].startswith("#")
    assert not re.search(r"https?://", path.read_text(encoding="utf-8")), "nothing may be fetched at start"
