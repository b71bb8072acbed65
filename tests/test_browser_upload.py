"""The Upload page in a real browser: `streamlit run app.py` + headless Debian Chromium.

Uploads the smiling astronaut and checks what a person sees: a numbered badge naming the
emotion, the face boxed in that emotion's colour on the picture, the probability chart and the
results table; then a corrupt file, which gets its own error while the astronaut stays.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.browser import launch_chromium, open_app, running_app, skip_without_browser

skip_without_browser()

from playwright.sync_api import expect, sync_playwright  # noqa: E402 (after the skip)

from fer_core.classes import CLASS_COLORS_RGB  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
ASTRONAUT = REPO_ROOT / "sample_images" / "astronaut.png"
TIMEOUT_MS = 240_000  # generous: the first analysis loads TensorFlow, and the CPU may be shared


@pytest.fixture(scope="module")
def app_url(app_models_dir: Path) -> Iterator[str]:
    with running_app(env={"FER_MODELS_DIR": str(app_models_dir)}, timeout=300) as app:
        yield app.url


@pytest.fixture
def page(app_url: str):
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            open_app(page, app_url)
            yield page
        finally:
            browser.close()


def upload(page, *paths: Path) -> None:
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files([str(path) for path in paths])


def pixels_near(image: np.ndarray, color: tuple[int, int, int], tolerance: int = 40) -> int:
    return int((np.abs(image[..., :3].astype(int) - np.asarray(color)).max(axis=2) <= tolerance).sum())


def test_astronaut_is_boxed_labelled_charted_and_tabled(page, app_model_is_trained: bool) -> None:
    upload(page, ASTRONAUT)
    badge = page.locator(".fer-face-badge").first
    expect(badge).to_be_visible(timeout=TIMEOUT_MS)
    match = re.fullmatch(r"#1 (\w+) (\d+)%", badge.inner_text().strip())
    assert match, badge.inner_text()
    label = match.group(1)

    picture = page.get_by_test_id("stImage").first.locator("img").first
    expect(picture).to_be_visible()
    shot = np.asarray(Image.open(io.BytesIO(picture.screenshot())).convert("RGB"))
    assert pixels_near(shot, CLASS_COLORS_RGB[label]) > 300, f"no {label}-coloured box drawn on the picture"

    expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_text("All results")).to_be_visible()
    if app_model_is_trained:
        assert label == "happy", f"the smiling astronaut was read as {label}"


def test_a_corrupt_file_gets_its_own_error(page, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG " * 10)
    upload(page, ASTRONAUT, corrupt)
    error = page.get_by_test_id("stAlertContentError").filter(has_text="corrupt.jpg")
    expect(error).to_be_visible(timeout=TIMEOUT_MS)
    expect(error).to_contain_text(re.compile(r"corrupt\.jpg: (not an image file|the image is corrupt)"))
    expect(page.locator(".fer-face-badge").first).to_be_visible()  # the good file is still shown
    expect(page.get_by_test_id("stException")).to_have_count(0)
