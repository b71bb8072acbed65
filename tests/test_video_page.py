"""The Video files page, run for real with Streamlit's AppTest: real clips, detector and model.

The analysis runs on the session's background thread as in the browser; the test reruns the
page while it waits, as the progress fragment does every half second. Clips are tiny (24 frames
of 320x240) and written by tests/test_video_files.py's helpers.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from fer_core.classes import CLASSES, class_color_hex
from fer_core.video_jobs import CANCELLED, DONE, ClipJob
from tests.test_video_files import scene, write_clip

REPO_ROOT = Path(__file__).resolve().parent.parent
PAGE = "pages/5_video_files.py"


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory, astronaut_rgb: np.ndarray) -> bytes:
    folder = tmp_path_factory.mktemp("page_clips")
    return write_clip(folder / "clip.mp4", [scene(astronaut_rgb, x=20 + 5 * index) for index in range(24)]).read_bytes()


@pytest.fixture
def video_page(app_registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("FER_VIDEO_DIR", str(tmp_path / "annotated"))
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120)
    app.run()
    app.switch_page(PAGE).run()
    assert not app.exception, app.exception
    assert app.title[0].value == "Video files"
    return app


def upload(app: AppTest, *files: tuple[str, bytes]) -> AppTest:
    app.file_uploader(key="video_files").set_value([(name, data, "video/mp4") for name, data in files])
    app.run()
    assert not app.exception, app.exception
    return app


def jobs(app: AppTest) -> list[ClipJob]:
    return list(app.session_state["video_jobs"].values())


def wait_for(app: AppTest, done, timeout: float = 60.0) -> AppTest:
    """Rerun the page (as the fragment does) until `done(jobs)`; then once more for the results."""
    deadline = time.monotonic() + timeout
    while not done(jobs(app)):
        assert time.monotonic() < deadline, [job.status() for job in jobs(app)]
        time.sleep(0.2)
        app.run()
        assert not app.exception, app.exception
    app.run()
    assert not app.exception, app.exception
    return app


def finished(found: list[ClipJob]) -> bool:
    return bool(found) and not any(job.status().active for job in found)


def test_a_clip_gets_a_player_a_timeline_per_face_a_summary_and_downloads(
    video_page: AppTest, clip_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fer_core.video_jobs

    calls: list[str] = []
    real = fer_core.video_jobs.analyse_clip

    def counting(source, *args, **kwargs):
        calls.append(kwargs["name"])
        return real(source, *args, **kwargs)

    monkeypatch.setattr(fer_core.video_jobs, "analyse_clip", counting)
    app = wait_for(upload(video_page, ("walk.mp4", clip_bytes)), finished)
    (job,) = jobs(app)
    assert job.status().state == DONE and job.result.frames == 24
    assert not app.error and not [bar for bar in app.get("progress")], "no progress bar once it is done"
    assert len(app.get("video")) == 1, "the annotated video's player"
    downloads = {button.key.rsplit("_", 2)[0] for button in app.get("download_button")}
    assert downloads == {"video_mp4", "video_csv", "video_summary_csv"}
    summary = app.dataframe[0].value
    assert summary["face"].tolist() == [1] and summary.loc[0, "seconds_on_screen"] == pytest.approx(0.8, abs=1e-3)
    (chart,) = app.get("plotly_chart")
    traces = json.loads(chart.proto.spec)["data"]
    lines = [trace for trace in traces if trace["type"] == "scatter"]
    assert [trace["name"] for trace in lines] == list(CLASSES)
    assert [trace["line"]["color"] for trace in lines] == [class_color_hex(name) for name in CLASSES]
    assert [trace for trace in traces if trace["type"] == "bar"], "the band of the top emotion"
    badges = [markdown.value for markdown in app.markdown if "fer-face-badge" in markdown.value]
    assert len(badges) == 1 and "#1 " in badges[0]
    (face,) = job.result.faces()
    captions = [image.proto.imgs[0].caption for image in app.get("image")]
    assert len(captions) >= 1 and captions[0].startswith(face.dominant), "the thumbnail of the main emotion's peak first"
    app.run()
    app.run()
    assert calls == ["walk.mp4"], "reruns keep the finished analysis"


def test_a_bad_file_gets_its_message_and_the_good_one_is_analysed(video_page: AppTest, clip_bytes: bytes) -> None:
    app = wait_for(upload(video_page, ("broken.mp4", b"these are not video frames\n" * 40), ("walk.mp4", clip_bytes)),
                   finished)
    errors = " | ".join(error.value for error in app.error)
    assert "broken.mp4: not a video file, or it is corrupt or truncated" in errors
    assert len(app.get("video")) == 1 and app.dataframe[0].value["face"].tolist() == [1]


def test_cancel_stops_the_analysis_and_it_can_run_again(
    video_page: AppTest, clip_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fer_core.video_files

    slow = {"on": True}
    real = fer_core.video_files.draw_faces

    def slow_drawing(*args, **kwargs):  # a clip that takes a few seconds, so there is time to cancel
        if slow["on"]:
            time.sleep(0.25)
        return real(*args, **kwargs)

    monkeypatch.setattr(fer_core.video_files, "draw_faces", slow_drawing)
    app = wait_for(upload(video_page, ("walk.mp4", clip_bytes)), lambda found: found[0].status().progress is not None)
    (job,) = jobs(app)
    assert [bar for bar in app.get("progress")], "a progress bar while it runs"
    assert "walk.mp4" in app.get("progress")[0].proto.text and "fps" in app.get("progress")[0].proto.text
    app.button(key=f"video_cancel_{job.key}").click().run()
    app = wait_for(app, lambda found: found[0].status().state == CANCELLED, timeout=20)
    assert job.result is None
    assert any("cancelled" in warning.value for warning in app.warning)
    slow["on"] = False
    app.button(key=next(button.key for button in app.button if button.key.startswith("video_restart_"))).click().run()
    app = wait_for(app, finished)
    (again,) = jobs(app)
    assert again is not job and again.status().state == DONE and len(app.get("video")) == 1
