"""Time to render the Training report page for a model, as a visitor waits for it.

`streamlit run app.py`, headless Chromium at 1400x1000: open the app, click "Training report" in
the navigation and wait until everything of the Model report tab is drawn (learning curves,
confusion heatmap, per-class table, reliability diagram). The first visit after the server
starts pays for importing TensorFlow/Keras and reading the model's files; the revisits (a
browser reload) hit Streamlit's caches. Medians of `--repeats` revisits.

    python benchmarks/bench_report_page.py [--repeats 5] [--model NAME]

Prints a table and writes benchmarks/results/report_page.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import streamlit_webrtc  # noqa: E402,F401 (before TensorFlow: see ui/__init__.py)
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from benchmarks.common import machine_info, write_results  # noqa: E402
from fer_core.registry import ModelRegistry  # noqa: E402
from tests.browser import launch_chromium, open_app, running_app  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results" / "report_page.json"
TIMEOUT_MS = 300_000


def wait_for_report(page) -> None:
    """Until the Model report tab is fully drawn (its last chart is the reliability diagram)."""
    expect(page.locator(".js-plotly-plot").filter(has=page.locator("g.heatmaplayer")).first).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_text("Expected calibration error")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator(".js-plotly-plot")).to_have_count(4, timeout=TIMEOUT_MS)  # curves, heatmap, pairs, reliability


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="revisits timed after the first visit")
    parser.add_argument("--model", help="registry model (default: the default model)")
    args = parser.parse_args()

    registry = ModelRegistry()
    model = registry.get(args.model) if args.model else registry.default()
    with running_app(env={"FER_MODELS_DIR": str(registry.root)}, timeout=300) as app, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            open_app(page, app.url, timeout_ms=TIMEOUT_MS)
            if args.model:
                page.get_by_test_id("stSidebar").get_by_label("Active model").click()
                page.get_by_role("option", name=model.name).first.click()
            started = time.perf_counter()
            page.get_by_test_id("stSidebarNav").get_by_role("link", name="Training report").click()
            wait_for_report(page)
            first = time.perf_counter() - started
            revisits = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                page.reload(wait_until="domcontentloaded")
                wait_for_report(page)
                revisits.append(time.perf_counter() - started)
        finally:
            browser.close()
    print(f"Training report page, model {model.name}, Chromium 1400x1000")
    print(f"{'visit':<36} {'seconds':>8}")
    print("-" * 45)
    print(f"{'first after the server started':<36} {first:>8.2f}")
    print(f"{'revisit (reload, caches warm), median':<36} {statistics.median(revisits):>8.2f}")
    print(f"{'revisit, slowest':<36} {max(revisits):>8.2f}")
    write_results(RESULTS, {
        "benchmark": "Training report page: open the tab until curves, heatmap, pairs and reliability are drawn",
        "model": model.name,
        "machine": machine_info(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "first_visit_s": round(first, 2),
        "revisit_median_s": round(statistics.median(revisits), 2),
        "revisits_s": [round(value, 2) for value in revisits],
    })


if __name__ == "__main__":
    main()
