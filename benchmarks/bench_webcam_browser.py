"""The Live webcam page end to end: the real app, headless Chromium, a real WebRTC stream.

`bench_webcam.py` times the frame processor alone; this one measures what a user gets from the
running app. `streamlit run app.py` serves the page, Debian's Chromium plays a fake camera file
(the astronaut, or three copies of her face) at 30 fps, clicks Start, and for `--seconds` reads:

  - server fps: distinct frames the page's frame callback processed per second (the app's
    FER_FRAME_STATS file), i.e. how often the overlay really changes;
  - server ms/frame: per-frame processing time inside the server (median and p95 over every
    frame of the window), which includes waiting for the CPU and the GIL next to the codecs,
    Streamlit and the live panel;
  - browser decoded fps: frames of the returned video the browser decoded per second
    (`getVideoPlaybackQuality`); streamlit-webrtc sends at the camera's rate and repeats the
    latest processed frame between two processed ones;
  - browser presented fps (`requestVideoFrameCallback`): frames headless Chromium painted; it
    paints fewer than it decodes as soon as the CPU is busy (no GPU here).

Everything (browser with its camera encoder and video decoder, server, codecs) shares this
machine's CPUs, so the numbers are a floor for a user whose browser runs on their own machine.
Runs on the host network or inside `unshare --net sh -c 'ip link set lo up && ...'`; needs
`requirements-dev.txt` and Chromium (`scripts/setup.sh --dev`).

    python benchmarks/bench_webcam_browser.py [--seconds 20] [--scenes 1 3]

Prints a table and writes benchmarks/results/webcam_browser.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import streamlit_webrtc  # noqa: E402,F401 (before TensorFlow: see ui/__init__.py)
from playwright.sync_api import sync_playwright  # noqa: E402

from benchmarks.common import machine_info, write_results  # noqa: E402
from fer_core.image_io import decode_image  # noqa: E402
from fer_core.registry import ModelRegistry  # noqa: E402
from tests.browser import launch_chromium, running_app  # noqa: E402
from tests.conftest import compose_multi_face  # noqa: E402
from tests.test_browser_webcam import (  # noqa: E402
    only_loopback_network,
    read_stats,
    start_live_stream,
    wait_for_stats,
    webcam_server_env,
    write_fake_camera,
)
from tests.test_video_processor import webcam_frame  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results" / "webcam_browser.json"
ASTRONAUT = REPO_ROOT / "sample_images" / "astronaut.png"
START_WINDOW_JS = """v => {
    const window_ = { presented: 0, start: performance.now(), first: v.getVideoPlaybackQuality().totalVideoFrames, open: true };
    const tick = () => { if (!window_.open) return; window_.presented++; v.requestVideoFrameCallback(tick); };
    v.requestVideoFrameCallback(tick);
    window.__ferBenchWindow = window_;
}"""
STOP_WINDOW_JS = """v => {
    const window_ = window.__ferBenchWindow; window_.open = false;
    const seconds = (performance.now() - window_.start) / 1000;
    return { seconds, presented: window_.presented, decoded: v.getVideoPlaybackQuality().totalVideoFrames - window_.first };
}"""


def scene_frame(faces: int) -> np.ndarray:
    astronaut = decode_image(ASTRONAUT).rgb
    return webcam_frame(astronaut) if faces == 1 else compose_multi_face(astronaut)[0]


def frame_times_since(before: dict, after: dict) -> list[float]:
    """The per-frame ms of the frames processed between two stats files (the file keeps the
    last 30; older ones are lost when more than 30 frames passed between the two reads)."""
    new = after.get("frames", 0) - before.get("frames", 0)
    recent = after.get("recent_latencies_ms", [])
    return recent[-new:] if new > 0 else []


def measure_scene(faces: int, seconds: float, workdir: Path, models_dir: Path) -> dict:
    stats_path = workdir / f"frames_{faces}.json"
    camera = workdir / f"camera_{faces}.y4m"
    write_fake_camera(camera, frame=scene_frame(faces))
    with running_app(env=webcam_server_env(models_dir, stats_path)) as app, sync_playwright() as playwright:
        browser = launch_chromium(playwright, extra_args=[f"--use-file-for-fake-video-capture={camera}"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(180_000)
            component = start_live_stream(page, app, timeout=180)
            wait_for_stats(stats_path, lambda stats: stats["analysed"] >= 10, 180, app)
            video = component.locator("video")
            while video.evaluate("v => v.videoWidth") == 0:
                time.sleep(0.25)
            time.sleep(3.0)  # past the start (first frames, codec ramp-up)

            # The browser counts frames in the background (its counters live on the component
            # frame's window) while this thread collects the server's per-frame times.
            video.evaluate(START_WINDOW_JS)
            first = previous = read_stats(stats_path)
            times: list[float] = []
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                time.sleep(0.5)
                current = read_stats(stats_path)
                times.extend(frame_times_since(previous, current))
                previous = current
            last = previous
            browser_numbers = video.evaluate(STOP_WINDOW_JS)
        finally:
            browser.close()
    elapsed = max(1e-3, last["written"] - first["written"])
    return {
        "faces_in_scene": faces,
        "faces_tracked": len(last.get("tracks", [])),
        "seconds": round(elapsed, 1),
        "server_fps": round((last["frames"] - first["frames"]) / elapsed, 2),
        "server_ms_median": round(float(np.median(times)), 1) if times else None,
        "server_ms_p95": round(float(np.percentile(times, 95)), 1) if times else None,
        "frames_timed": len(times),
        "browser_decoded_fps": round(browser_numbers["decoded"] / browser_numbers["seconds"], 1),
        "browser_presented_fps": round(browser_numbers["presented"] / browser_numbers["seconds"], 1),
        "error": last.get("error"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window per scene")
    parser.add_argument("--scenes", type=int, nargs="+", default=[1, 3], choices=(1, 3), help="faces in the camera picture")
    args = parser.parse_args()

    registry = ModelRegistry()
    models_dir, model = registry.root, registry.default()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="fer_bench_webcam_") as workdir:
        rows = [measure_scene(faces, args.seconds, Path(workdir), models_dir) for faces in args.scenes]
    load_end = os.getloadavg()

    header = f"{'faces':>5} {'server fps':>10} {'ms median':>9} {'ms p95':>7} {'browser decoded':>15} {'presented':>9}"
    print(f"Live webcam end to end, 640x480 fake camera at 30 fps, model {model.name}, blazeface, default page settings")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['faces_in_scene']:>5} {row['server_fps']:>10.1f} {row['server_ms_median']:>9.1f} {row['server_ms_p95']:>7.1f} "
            f"{row['browser_decoded_fps']:>11.1f} fps {row['browser_presented_fps']:>5.1f} fps"
        )
    print(
        f"network: {'isolated (only lo)' if only_loopback_network() else 'host'}; {os.cpu_count()} CPUs shared by "
        f"Chromium, the server and the codecs; load average {load_start[0]:.1f} at start, {load_end[0]:.1f} at end"
    )
    payload = {
        "benchmark": "Live webcam page end to end (streamlit run + headless Chromium + WebRTC over loopback)",
        "resolution": "640x480",
        "camera_fps": 30,
        "model": model.name,
        "detector": "blazeface",
        "machine": machine_info(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_1min": {"start": round(load_start[0], 2), "end": round(load_end[0], 2)},
        "rows": rows,
    }
    write_results(RESULTS, payload)


if __name__ == "__main__":
    main()
