"""The Live webcam page in a real browser: `streamlit run app.py`, headless Debian Chromium whose
fake camera plays a file made from the astronaut photo, a real WebRTC stream over loopback.

Clicks Start, checks that the server's frame processor really ran the model on the frames (the
FER_FRAME_STATS file), that the video coming back carries the overlay (pixels of a screenshot:
the face box in the label's colour, the dark FPS/latency readout), that the live panel
shows the face, and that Stop ends the stream. It prints the frame rates it saw; they are
measured properly by benchmarks/bench_webcam_browser.py, not asserted here.

Network: aioice never offers 127.0.0.1, so the server gets tests/support/sitecustomize.py with
FER_TEST_LOOPBACK_ICE=1 and Chromium `--allow-loopback-in-peer-connection`. That works on the
host network and in an isolated one, which is the recommended way to run this file:
    unshare --net sh -c 'ip link set lo up && python -m pytest tests/test_browser_webcam.py'
(or `unshare -rn ...` without root).
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.browser import launch_chromium, open_app, running_app, skip_without_browser

skip_without_browser()

from playwright.sync_api import expect, sync_playwright  # noqa: E402 (after the skip)

from fer_core.classes import CLASS_COLORS_RGB, CLASSES  # noqa: E402
from fer_core.image_io import decode_image  # noqa: E402
from tests.test_video_processor import webcam_frame  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
SUPPORT_DIR = Path(__file__).resolve().parent / "support"
ASTRONAUT = REPO_ROOT / "sample_images" / "astronaut.png"
COMPONENT_IFRAME = 'iframe[title="streamlit_webrtc.component.webrtc_streamer"]'
TIMEOUT_S = 180  # the first frame loads TensorFlow and the model in the server, on a busy CPU


def only_loopback_network() -> bool:
    """True inside a network namespace whose only interface is lo (e.g. `unshare --net`).
    Asks the kernel (netlink), not /sys, which still shows the host's interfaces there."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def write_fake_camera(path: Path, frames: int = 30, frame: np.ndarray | None = None) -> Path:
    """A YUV4MPEG2 file Chromium plays (in a loop) as its camera: `frame` (640x480 RGB), by
    default the astronaut on a 640x480 frame."""
    if frame is None:
        frame = webcam_frame(decode_image(ASTRONAUT).rgb)
    planes = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), cv2.COLOR_BGR2YUV_I420).tobytes()
    with path.open("wb") as handle:
        handle.write(b"YUV4MPEG2 W640 H480 F30:1 Ip A1:1 C420jpeg\n")
        for _ in range(frames):
            handle.write(b"FRAME\n")
            handle.write(planes)
    return path


def read_stats(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def wait_for_stats(path: Path, condition, timeout: float, app) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = read_stats(path)
        if stats and condition(stats):
            return stats
        time.sleep(0.25)
    raise AssertionError(f"frame stats never met the condition; last: {read_stats(path)}\nserver log:\n{app.log()}")


def pixels_near(image: np.ndarray, color: tuple[int, int, int], tolerance: int = 45) -> np.ndarray:
    return np.abs(image[..., :3].astype(int) - np.asarray(color)).max(axis=2) <= tolerance


def webcam_server_env(models_dir: Path, stats_path: Path) -> dict[str, str]:
    """The app server's environment for a loopback WebRTC stream whose frame counts are
    written to `stats_path`, serving the models in `models_dir`."""
    return {
        "FER_MODELS_DIR": str(models_dir),
        "FER_FRAME_STATS": str(stats_path),
        "FER_TEST_LOOPBACK_ICE": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SUPPORT_DIR), os.environ.get("PYTHONPATH")])),
        "FER_ICE_SERVERS": "",
    }


def start_live_stream(page, app, timeout: float = TIMEOUT_S):
    """Open the Live webcam page through the app's navigation, as a visitor does (the app's
    sidebar runs first), and click Start; returns the streamer component's frame locator."""
    open_app(page, app.url, timeout_ms=timeout * 1000)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Live webcam").click()
    expect(page.get_by_role("heading", name="Live webcam")).to_be_visible(timeout=timeout * 1000)
    component = page.frame_locator(COMPONENT_IFRAME)
    component.get_by_role("button", name="Start").click(timeout=timeout * 1000)
    return component


@pytest.fixture
def webcam_server(app_models_dir: Path, tmp_path: Path) -> Iterator[tuple[object, Path]]:
    stats_path = tmp_path / "frames.json"
    with running_app(env=webcam_server_env(app_models_dir, stats_path)) as app:
        yield app, stats_path


def test_live_stream_is_processed_and_overlaid(webcam_server, tmp_path: Path) -> None:
    app, stats_path = webcam_server
    camera = write_fake_camera(tmp_path / "astronaut.y4m")
    print(f"\nnetwork: {'isolated (only lo)' if only_loopback_network() else 'host network'}")
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, extra_args=[f"--use-file-for-fake-video-capture={camera}"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_S * 1000)  # every locator waits as long as the test does
        try:
            component = start_live_stream(page, app)

            # the model really runs on the stream's frames
            stats = wait_for_stats(stats_path, lambda s: s["analysed"] >= 10 and s["tracks"], TIMEOUT_S, app)
            assert stats["error"] is None, stats["error"]
            video = component.locator("video")
            deadline = time.monotonic() + TIMEOUT_S
            while video.evaluate("v => v.videoWidth") == 0:
                assert time.monotonic() < deadline, f"no video came back\n{app.log()}"
                time.sleep(0.25)
            assert video.evaluate("v => [v.videoWidth, v.videoHeight]") == [640, 480]

            # end-to-end rates (benchmarks/bench_webcam_browser.py measures them properly): frames of
            # the returned video the browser decoded, and distinct frames the server processed
            first = read_stats(stats_path)
            decoded_fps = video.evaluate(
                """v => new Promise(resolve => {
                    const first = v.getVideoPlaybackQuality().totalVideoFrames, start = performance.now();
                    setTimeout(() => resolve((v.getVideoPlaybackQuality().totalVideoFrames - first) * 1000
                                             / (performance.now() - start)), 3000);
                })"""
            )
            last = read_stats(stats_path)
            server_fps = (last["frames"] - first["frames"]) / max(1e-3, last["written"] - first["written"])
            print(
                f"browser decodes {decoded_fps:.1f} fps; server processed {server_fps:.1f} distinct frames/s, "
                f"{last['latency_ms']:.1f} ms per frame (model {last['model']})"
            )
            # Liveness only: fps is a measurement (printed above, see the closing note), not a
            # pass/fail threshold on a shared 2-core machine.
            assert decoded_fps > 0.0 and last["frames"] > first["frames"], "the stream stalled"

            # the overlay is in the returned video: the face box in the label's colour, where the
            # tracker says the face is, and the dark FPS/latency readout in the top-left corner
            track = last["tracks"][0]
            label, (x, y, width, height) = track["label"], track["box"]
            shot = np.asarray(Image.open(io.BytesIO(video.screenshot())).convert("RGB"))
            scale = shot.shape[1] / 640.0
            colour = pixels_near(shot, CLASS_COLORS_RGB[label])
            top, left = int(y * scale), int(x * scale)
            near_box = colour[max(0, top - int(30 * scale)) : top + int(height * scale) + 4, max(0, left - 4) : left + int(width * scale) + 4]
            assert near_box.sum() > 150 * scale, f"no {label}-coloured box and label drawn around the face at {track['box']}"
            far_away = colour[int(400 * scale) :, :]
            assert near_box.mean() > 5 * far_away.mean(), "the colour is concentrated on the face box"
            readout = shot[: int(40 * scale), : int(100 * scale)]
            assert (readout.max(axis=2) < 60).mean() > 0.3, "the FPS/latency readout is drawn on the video"

            # the live panel beside the video (an st.fragment refreshing itself) shows the tracked face
            expect(page.get_by_test_id("stMetricValue").filter(has_text="fps").first).to_be_visible()
            # it names the tracked face (its label may have moved on since the stats were read)
            panel_entry = re.compile(rf"#{track['id']} ({'|'.join(CLASSES)})")
            expect(page.get_by_text(panel_entry).first).to_be_visible()
            # and its timeline: a coloured segment in the face's row, drawn (not sanitised away);
            # visible means a non-empty box (read in one step: the panel's refresh replaces it)
            expect(page.locator(".fer-live-timeline .fer-live-segment").first).to_be_visible()

            component.get_by_role("button", name="Stop").click()
            expect(component.get_by_role("button", name="Start")).to_be_visible(timeout=TIMEOUT_S * 1000)
            time.sleep(2.0)
            stopped = read_stats(stats_path)["frames"]
            time.sleep(1.5)
            assert read_stats(stats_path)["frames"] == stopped, "frames keep coming after Stop"
        except BaseException:
            page.screenshot(path=str(tmp_path / "failure.png"))
            print(f"screenshot of the failure: {tmp_path / 'failure.png'}")
            raise
        finally:
            browser.close()
