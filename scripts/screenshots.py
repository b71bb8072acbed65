"""Take the README's screenshots of the real app in headless Chromium.

    .venv/bin/python scripts/screenshots.py   # writes docs/upload.png and docs/live_webcam.png

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


if __name__ == "__main__":
    main()
    live_webcam()
