"""The Label view in a real browser: `streamlit run app.py` + headless Debian Chromium.

The server's FER_DATASET_DIR is a tmp store of six unlabelled faces. A deep link opens the Label
tab; the keyboard does the rest, as a person labelling would: "1" labels the face angry and
shows the next one, "U" undoes it and shows the face again.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.browser import (
    SentFrames,
    launch_chromium,
    open_app,
    press_shortcut,
    running_app,
    skip_without_browser,
    wait_until_idle,
)

skip_without_browser()

from playwright.sync_api import expect, sync_playwright  # noqa: E402 (after the skip)

from fer_core.dataset_records import Prediction  # noqa: E402
from fer_core.dataset_store import DatasetStore  # noqa: E402
from tests.conftest import synthetic_face  # noqa: E402

TIMEOUT_MS = 60_000
FACES = 6


def make_store(root: Path) -> DatasetStore:
    """`FACES` unlabelled 48x48 faces, each predicted happy by a made-up model (ids 1..FACES)."""
    store = DatasetStore(root)
    rng = np.random.default_rng(1)
    for number in range(FACES):
        store.add_face(synthetic_face(number % 7, 48, rng), source="import",
                       prediction=Prediction("happy", 0.5 + number / 20, "test_model"), origin=f"face{number}.png")
    return store


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> DatasetStore:
    return make_store(tmp_path_factory.mktemp("browser_dataset") / "dataset")


@pytest.fixture(scope="module")
def app_url(app_models_dir: Path, dataset: DatasetStore) -> Iterator[str]:
    env = {"FER_MODELS_DIR": str(app_models_dir), "FER_DATASET_DIR": str(dataset.root)}
    with running_app(env=env, timeout=300) as app:
        yield app.url


def test_keys_label_advance_and_undo(app_url: str, dataset: DatasetStore) -> None:
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            frames = SentFrames(page)
            open_app(page, f"{app_url}/dataset?dataset_tab=Label")
            expect(page.get_by_role("heading", name="Face #1", exact=True)).to_be_visible(timeout=TIMEOUT_MS)
            expect(page.get_by_text(f"Labelled 0 of {FACES} faces")).to_be_visible()
            expect(page.get_by_text(f"1 of {FACES} unlabelled")).to_be_visible()
            wait_until_idle(page)  # the key buttons exist once the run has finished

            press_shortcut(page, "1", frames)
            expect(page.get_by_role("heading", name="Face #2", exact=True)).to_be_visible(timeout=TIMEOUT_MS)
            expect(page.get_by_text(f"Labelled 1 of {FACES} faces")).to_be_visible()
            expect(page.get_by_text("labelled #1 angry; U undoes")).to_be_visible()
            assert dataset.get(1).label == "angry" and dataset.get(1).predicted_label == "happy"

            wait_until_idle(page)
            press_shortcut(page, "u", frames)
            expect(page.get_by_role("heading", name="Face #1", exact=True)).to_be_visible(timeout=TIMEOUT_MS)
            expect(page.get_by_text(f"Labelled 0 of {FACES} faces")).to_be_visible()
            expect(page.get_by_text(re.compile("Undid the label of face 1"))).to_be_visible()
            assert dataset.get(1).label is None
            expect(page.get_by_test_id("stException")).to_have_count(0)
        finally:
            browser.close()
