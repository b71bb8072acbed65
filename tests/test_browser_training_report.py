"""The Training report page in a real browser: `streamlit run app.py` + headless Debian Chromium.

Opens the page through the app's navigation as a visitor does and checks what plotly drew: the
confusion-matrix heatmap with its axis titles; for an ensemble (the shipped default) its
members' curves, one line each, before picking a single network in the page's Model box; then
the learning curves (loss and accuracy panels with their lines), and the Train tab's form.
"""

from __future__ import annotations

from pathlib import Path

from fer_core.ensemble import is_ensemble
from fer_core.registry import ModelRegistry
from tests.browser import launch_chromium, open_app, running_app, skip_without_browser

skip_without_browser()

from playwright.sync_api import expect, sync_playwright  # noqa: E402 (after the skip)

TIMEOUT_MS = 240_000


def test_curves_and_heatmap_are_drawn(app_models_dir: Path, private_runs_dir: Path, app_model_is_trained: bool) -> None:
    registry = ModelRegistry(app_models_dir)
    default = registry.default()
    env = {"FER_MODELS_DIR": str(app_models_dir), "FER_RUNS_DIR": str(private_runs_dir)}
    with running_app(env=env, timeout=300) as app, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            open_app(page, app.url)
            page.get_by_test_id("stSidebarNav").get_by_role("link", name="Training report").click()
            expect(page.get_by_role("heading", name="Training report")).to_be_visible(timeout=TIMEOUT_MS)
            if app_model_is_trained:  # the shipped model carries a stored evaluation
                heatmap = page.locator(".js-plotly-plot").filter(has=page.locator("g.heatmaplayer"))
                expect(heatmap.first).to_be_visible(timeout=TIMEOUT_MS)
                expect(heatmap.first.locator(".xtitle")).to_have_text("predicted")
                expect(heatmap.first.locator(".ytitle")).to_have_text("true")
                expect(page.get_by_text("Expected calibration error")).to_be_visible()
            if is_ensemble(default.card):
                # the members' own curves, one line each, then a single network's report
                members = page.get_by_test_id("stPlotlyChart").first
                expect(members.locator(".ytitle")).to_have_text("val accuracy", timeout=TIMEOUT_MS)
                expect(members.locator("g.scatterlayer .trace path.js-line")).to_have_count(len(default.card.members))
                network = next(model for model in registry.list() if not is_ensemble(model.card))
                page.get_by_role("combobox", name="Model", exact=True).click()
                page.get_by_role("option", name=network.label()).click()
                expect(page.get_by_role("heading", name="Learning curves")).to_be_visible(timeout=TIMEOUT_MS)
            curves = page.get_by_test_id("stPlotlyChart").first
            expect(curves).to_be_visible(timeout=TIMEOUT_MS)
            # plotly has drawn both panels' titles and at least train + validation lines in each
            expect(curves.locator(".gtitle, .annotation-text").filter(has_text="Loss")).to_have_count(1, timeout=TIMEOUT_MS)
            assert curves.locator("g.scatterlayer .trace path.js-line").count() >= 4
            page.get_by_role("tab", name="Train").click()
            expect(page.get_by_role("button", name="Start training")).to_be_visible(timeout=TIMEOUT_MS)
        finally:
            browser.close()
