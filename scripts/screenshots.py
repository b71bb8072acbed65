"""Take the README's screenshots of the real app in headless Chromium.

    .venv/bin/python scripts/screenshots.py   # docs/upload.png, live_webcam.png, training_report.png, video_files.png

Only redistributable pictures end up in docs/: the astronaut (and copies of her face), the shipped
model's curves and matrices; never the FER2013 faces of the report's gallery of mistakes.

Uses the same browser helpers as the tests (tests/browser.py), so it needs the dev set-up.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import streamlit_webrtc  # noqa: E402,F401 (before TensorFlow: see ui/__init__.py)
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from fer_core.registry import ModelRegistry  # noqa: E402
from tests.browser import launch_chromium, open_app, running_app  # noqa: E402
from tests.test_browser_webcam import start_live_stream, wait_for_stats, webcam_server_env, write_fake_camera  # noqa: E402


def main() -> None:
    with running_app(timeout=300) as app, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            # A deep link first: it must come up through app.py's navigation, sidebar included.
            open_app(page, app.url + "/training_report")
            expect(page.get_by_test_id("stSidebar").get_by_text("Active model")).to_be_visible(timeout=120_000)
            open_app(page, app.url)
            upload = page.locator('[data-testid="stFileUploader"] input[type="file"]')
            upload.set_input_files([str(REPO_ROOT / "sample_images" / "astronaut.png")])
            expect(page.locator(".fer-face-badge").first).to_be_visible(timeout=240_000)
            expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible(timeout=120_000)
            page.wait_for_timeout(1500)
            target = REPO_ROOT / "docs" / "upload.png"
            page.screenshot(path=str(target))
            print(f"wrote {target}")
        finally:
            browser.close()


def live_webcam() -> None:
    """The Live webcam page streaming a fake camera (the astronaut) over loopback WebRTC."""
    with tempfile.TemporaryDirectory() as scratch:
        stats = Path(scratch) / "frames.json"
        camera = write_fake_camera(Path(scratch) / "camera.y4m")
        env = webcam_server_env(ModelRegistry().root, stats)
        with running_app(env=env, timeout=300) as app, sync_playwright() as playwright:
            browser = launch_chromium(playwright, extra_args=[f"--use-file-for-fake-video-capture={camera}"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                start_live_stream(page, app, timeout=120)
                wait_for_stats(stats, lambda frames: frames["analysed"] >= 60, 120, app)
                expect(page.get_by_text("Dominant emotion over time")).to_be_visible(timeout=60_000)
                page.wait_for_timeout(4000)  # a few seconds of timeline
                target = REPO_ROOT / "docs" / "live_webcam.png"
                page.screenshot(path=str(target))
                print(f"wrote {target}")
            finally:
                browser.close()


def training_report() -> None:
    """The Training report's top: the shipped model's card, lineage and learning curves."""
    with running_app(timeout=300) as app, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            open_app(page, app.url)
            page.get_by_test_id("stSidebarNav").get_by_role("link", name="Training report").click()
            curves = page.get_by_test_id("stPlotlyChart").first
            expect(curves).to_be_visible(timeout=240_000)
            page.get_by_text("Lineage", exact=False).first.scroll_into_view_if_needed()
            page.wait_for_timeout(2000)
            target = REPO_ROOT / "docs" / "training_report.png"
            page.screenshot(path=str(target))
            print(f"wrote {target}")
        finally:
            browser.close()


def video_files() -> None:
    """The Video files page after analysing a short clip of the astronaut's three faces."""
    import numpy as np

    from fer_core.image_io import decode_image
    from tests.conftest import compose_multi_face
    from tests.test_video_files import write_clip

    with tempfile.TemporaryDirectory() as scratch:
        scene, _ = compose_multi_face(decode_image(REPO_ROOT / "sample_images" / "astronaut.png").rgb)
        clip = write_clip(Path(scratch) / "three_faces.mp4", [np.roll(scene, 2 * index, axis=1) for index in range(45)])
        with running_app(timeout=300) as app, sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                open_app(page, app.url)
                page.get_by_test_id("stSidebarNav").get_by_role("link", name="Video files").click()
                page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(clip))
                expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible(timeout=240_000)
                page.wait_for_timeout(2000)
                target = REPO_ROOT / "docs" / "video_files.png"
                page.screenshot(path=str(target))
                print(f"wrote {target}")
            finally:
                browser.close()


if __name__ == "__main__":
    main()
    live_webcam()
    training_report()
    video_files()
