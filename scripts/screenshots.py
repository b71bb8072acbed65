"""Take the README's screenshots of the real app in headless Chromium.

    .venv/bin/python scripts/screenshots.py [upload live_webcam training_report video_files]

Each name writes docs/<name>.png; no name takes them all.

Only redistributable pictures end up in docs/: the astronaut (and copies of her face), the shipped
model's curves and matrices; never the FER2013 faces of the report's gallery of mistakes.

Uses the same browser helpers as the tests (tests/browser.py), so it needs the dev set-up.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import streamlit_webrtc  # noqa: E402,F401 (before TensorFlow: see ui/__init__.py)
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from fer_core.registry import ModelRegistry  # noqa: E402
from tests.browser import launch_chromium, open_app, running_app  # noqa: E402
from tests.test_browser_webcam import start_live_stream, wait_for_stats, webcam_server_env, write_fake_camera  # noqa: E402


@contextlib.contextmanager
def app_page(env: dict[str, str] | None = None, camera: Path | None = None, height: int = 1000) -> Iterator[tuple]:
    """The real app served on a free port and a Chromium page 1400 px wide on it: (app, page)."""
    extra_args = [f"--use-file-for-fake-video-capture={camera}"] if camera else []
    with running_app(env=env, timeout=300) as app, sync_playwright() as playwright:
        browser = launch_chromium(playwright, extra_args=extra_args)
        try:
            yield app, browser.new_page(viewport={"width": 1400, "height": height})
        finally:
            browser.close()


def save(page, name: str) -> None:
    target = REPO_ROOT / "docs" / f"{name}.png"
    page.screenshot(path=str(target))
    print(f"wrote {target}")


def upload() -> None:
    """The Upload page with the astronaut boxed, labelled and charted (reached by a deep link first)."""
    with app_page() as (app, page):
        # A deep link first: it must come up through app.py's navigation, sidebar included.
        open_app(page, app.url + "/training_report")
        expect(page.get_by_test_id("stSidebar").get_by_text("Active model")).to_be_visible(timeout=120_000)
        open_app(page, app.url)
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
            [str(REPO_ROOT / "sample_images" / "astronaut.png")]
        )
        expect(page.locator(".fer-face-badge").first).to_be_visible(timeout=240_000)
        expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible(timeout=120_000)
        page.wait_for_timeout(1500)
        save(page, "upload")


def live_webcam() -> None:
    """The Live webcam page streaming a fake camera (the astronaut) over loopback WebRTC."""
    with tempfile.TemporaryDirectory() as scratch:
        stats = Path(scratch) / "frames.json"
        camera = write_fake_camera(Path(scratch) / "camera.y4m")
        with app_page(env=webcam_server_env(ModelRegistry().root, stats), camera=camera, height=900) as (app, page):
            start_live_stream(page, app, timeout=120)
            wait_for_stats(stats, lambda frames: frames["analysed"] >= 60, 120, app)
            expect(page.locator(".fer-live-timeline .fer-live-segment").first).to_be_visible(timeout=60_000)
            page.wait_for_timeout(6000)  # a few seconds of timeline
            save(page, "live_webcam")


def training_report() -> None:
    """The Training report's top: the default model's card and learning curves."""
    with app_page() as (app, page):
        open_app(page, app.url)
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Training report").click()
        expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible(timeout=240_000)
        page.get_by_test_id("stPlotlyChart").first.scroll_into_view_if_needed()
        page.wait_for_timeout(2000)
        save(page, "training_report")


def video_files() -> None:
    """The Video files page after analysing a short clip of the astronaut's three faces."""
    import numpy as np

    from fer_core.image_io import decode_image
    from tests.conftest import compose_multi_face
    from tests.test_video_files import write_clip

    with tempfile.TemporaryDirectory() as scratch:
        scene, _ = compose_multi_face(decode_image(REPO_ROOT / "sample_images" / "astronaut.png").rgb)
        clip = write_clip(Path(scratch) / "three_faces.mp4", [np.roll(scene, 2 * index, axis=1) for index in range(45)])
        with app_page() as (app, page):
            open_app(page, app.url)
            page.get_by_test_id("stSidebarNav").get_by_role("link", name="Video files").click()
            page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(clip))
            expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible(timeout=240_000)
            page.wait_for_timeout(2000)
            save(page, "video_files")


SHOTS = {"upload": upload, "live_webcam": live_webcam, "training_report": training_report, "video_files": video_files}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"screenshots to take: {', '.join(SHOTS)} (default: all)")
    names = parser.parse_args().names or list(SHOTS)
    unknown = sorted(set(names) - set(SHOTS))
    if unknown:
        parser.error(f"unknown screenshot {', '.join(unknown)}; choose from {', '.join(SHOTS)}")
    for name in names:
        SHOTS[name]()
