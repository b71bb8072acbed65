"""The Live webcam page's wiring, run in-process with AppTest.

`webrtc_streamer` cannot run under AppTest (its session lookup needs a real server), so it is
replaced by a stand-in that records its arguments and reports a stream state; everything else
is real: the app, the sidebar, the model, the frame processor (fed real frames from the test),
the live panel and the snapshot. The stream itself is tested in test_browser_webcam.py.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import streamlit_webrtc
from streamlit.testing.v1 import AppTest
from streamlit_webrtc import WebRtcMode, WebRtcStreamerState

from fer_core.video import FrameProcessor
from tests.test_video_processor import webcam_frame

REPO_ROOT = Path(__file__).resolve().parent.parent
PAGE = "pages/2_live_webcam.py"


class FakeStreamer:
    """Stands in for `webrtc_streamer`: records each call, returns a context with `state`."""

    def __init__(self, playing: bool = False, signalling: bool = False):
        self.state = WebRtcStreamerState(playing=playing, signalling=signalling)
        self.calls: list[dict] = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        return self


@pytest.fixture
def streamer(monkeypatch: pytest.MonkeyPatch) -> FakeStreamer:
    fake = FakeStreamer()
    monkeypatch.setattr(streamlit_webrtc, "webrtc_streamer", fake)
    monkeypatch.delenv("FER_ICE_SERVERS", raising=False)
    return fake


def open_page() -> AppTest:
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120)
    app.run()
    app.switch_page(PAGE).run()
    assert not app.exception, app.exception
    return app


def processor_of(app: AppTest) -> FrameProcessor:
    return app.session_state["webcam_processor"]


def test_page_wires_an_offline_sendrecv_stream_to_the_session_processor(app_registry, streamer):
    app = open_page()
    assert app.title[0].value == "Live webcam"
    call = streamer.calls[-1]
    assert call["key"] == "live_webcam"
    assert call["mode"] == WebRtcMode.SENDRECV
    assert call["rtc_configuration"] == {"iceServers": []}, "offline by default: no STUN/TURN lookups"
    assert call["media_stream_constraints"]["audio"] is False and call["media_stream_constraints"]["video"]
    assert call["async_processing"] is True
    processor = processor_of(app)
    assert call["video_frame_callback"] == processor.process_video_frame
    assert call["on_video_ended"] == processor.reset
    assert "denied" in call["translations"]["device_access_denied"]
    assert any("Start" in info.value for info in app.info), "idle: tells the user how to start"


def test_controls_reach_the_processor_and_it_survives_reruns(app_registry, streamer):
    app = open_page()
    first = processor_of(app)
    app.slider(key="webcam_smoothing").set_value(0.8)
    app.slider(key="webcam_budget").set_value(35)
    app.toggle(key="webcam_mirror").set_value(False)
    app.toggle(key="webcam_show_bars").set_value(False)
    app.run()
    assert not app.exception, app.exception
    processor = processor_of(app)
    assert processor is first, "one processor per session, kept across reruns"
    settings = processor.settings
    assert settings.tracking.smoothing == pytest.approx(0.8)
    assert (settings.budget_ms, settings.mirror, settings.show_bars) == (35.0, False, False)
    app.toggle(key="webcam_every_frame").set_value(True).run()
    assert processor.settings.budget_ms is None, "pinned: every face on every frame"
    sidebar = app.session_state["sidebar_choices"].settings  # the shared sidebar's detection settings
    assert (settings.detection.min_face_size, settings.detection.min_confidence) == (sidebar.min_face_size, sidebar.min_confidence)
    assert streamer.calls[-1]["video_frame_callback"] == processor.process_video_frame


def test_ice_servers_come_from_the_environment(app_registry, streamer, monkeypatch):
    servers = [{"urls": ["turn:turn.example.org:3478"], "username": "u", "credential": "p"}]
    monkeypatch.setenv("FER_ICE_SERVERS", json.dumps(servers))
    open_page()
    assert streamer.calls[-1]["rtc_configuration"] == {"iceServers": servers}


def test_invalid_ice_servers_are_reported_and_the_page_stays_local(app_registry, streamer, monkeypatch):
    monkeypatch.setenv("FER_ICE_SERVERS", '[{"url": "stun:x"}]')
    app = open_page()
    assert any("ICE server configuration is invalid" in error.value for error in app.error)
    assert streamer.calls[-1]["rtc_configuration"] == {"iceServers": []}


def test_live_panel_shows_the_tracked_faces_of_real_frames(app_registry, streamer, astronaut_rgb):
    app = open_page()
    for _ in range(3):  # what the frame thread does while the stream runs
        processor_of(app).process(webcam_frame(astronaut_rgb))
    streamer.state = WebRtcStreamerState(playing=True, signalling=False)
    app.run()
    assert not app.exception, app.exception
    track = processor_of(app).live_state().tracks[0]
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Faces"] == "1"
    assert not app.get("plotly_chart"), "the live panel draws no plotly figure (too slow beside the video)"
    html = " ".join(element.proto.body for element in app.get("html"))
    assert f"#1 {track.label} {track.confidence:.0%}" in html
    assert html.count("fer-live-face") == 1 and "fer-live-timeline" in html
    assert f'title="#1 {track.label}' in html, "the timeline's segment for the face, with its tooltip"

    refresh = app.select_slider(key="webcam_panel_refresh")
    assert refresh.value == 2.0, "the panel redraws every 2 s by default (each redraw costs the browser frames)"
    refresh.set_value(5.0).run()
    assert not app.exception, app.exception
    assert "fer-live-timeline" in " ".join(element.proto.body for element in app.get("html"))


def test_snapshot_keeps_the_faces_and_adds_them_to_the_dataset(app_registry, streamer, astronaut_rgb, tmp_path, monkeypatch):
    from fer_core.dataset_store import DatasetStore

    monkeypatch.setenv("FER_DATASET_DIR", str(tmp_path / "dataset"))
    app = open_page()
    streamer.state = WebRtcStreamerState(playing=True, signalling=False)
    app.run()
    processor = processor_of(app)
    stop = threading.Event()

    def stream() -> None:
        while not stop.is_set():
            processor.process(webcam_frame(astronaut_rgb))
            time.sleep(0.02)

    worker = threading.Thread(target=stream, daemon=True)
    worker.start()
    try:
        app.button(key="webcam_snapshot_button").click().run()
    finally:
        stop.set()
        worker.join(10)
    assert not app.exception, app.exception
    snapshot = app.session_state["webcam_snapshot"]
    (face,) = snapshot.faces
    captions = [caption for image in app.get("image") for caption in image.captions]
    assert f"#{face.track_id} {face.label} {face.confidence:.0%}" in captions, "the face crop is shown with its label"
    label_box = app.selectbox(key=f"webcam_snapshot_label_{snapshot.taken_at}_{face.track_id}")
    assert label_box.value == face.label
    label_box.set_value("surprise")
    app.button(key="webcam_snapshot_send").click().run()
    assert not app.exception, app.exception
    store = DatasetStore(tmp_path / "dataset")
    (saved,) = store.list_faces()
    assert (saved.label, saved.predicted_label, saved.source) == ("surprise", face.label, "webcam")
    assert saved.origin.startswith("webcam-") and saved.origin.endswith(f"#{face.track_id}")
    assert saved.box == face.box and saved.model_name == snapshot.model_name
    assert np.array_equal(store.load_image(saved), face.face_rgb), "the colour crop, as it was"
    assert any(f"face #{saved.id} (surprise)" in message.value for message in app.toast)


def test_snapshot_before_start_explains(app_registry, streamer):
    app = open_page()
    app.button(key="webcam_snapshot_button").click().run()
    assert any("Start the camera first" in warning.value for warning in app.warning)


def test_a_connection_that_does_not_come_up_is_reported(app_registry, streamer, monkeypatch):
    import ui.webcam

    monkeypatch.setattr(ui.webcam, "CONNECT_PATIENCE_SECONDS", 0.0)
    streamer.state = WebRtcStreamerState(playing=False, signalling=True)
    app = open_page()
    time.sleep(0.05)
    app.run()
    assert any("has not come up" in warning.value for warning in app.warning)


def test_loaded_models_are_out_of_the_garbage_collectors_reach(app_registry: Path) -> None:
    """Streamlit runs a full gc.collect() twice after every script run, the live panel's
    fragment reruns included. While TensorFlow's ~400k objects were still tracked each pass held
    the GIL for ~230 ms and the webcam stream fell to about 1 fps; loading a model freezes them."""
    import gc

    from ui.resources import load_classifier, model_checksum, registry

    gc.unfreeze()
    load_classifier.clear()
    model = registry().default()
    load_classifier(str(model.path), model_checksum(model))
    assert gc.get_freeze_count() > 100_000, "TensorFlow's objects should be frozen after a model load"
