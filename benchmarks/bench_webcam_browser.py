"""The Live webcam page end to end: the real app, headless Chromium, a real WebRTC stream.

`bench_webcam.py` times the frame processor alone; this one measures what a user gets from the
running app, as a new user would meet it: `streamlit run app.py`, Debian's Chromium in a
1400x1000 window with the page's default settings and the live panel in view, a fake camera
file (the astronaut, or three copies of her face) at 30 fps. For `--seconds` it reads:

  - presented fps (`requestVideoFrameCallback`'s `presentedFrames`): the frames of the returned
    video the browser sent to the screen, i.e. what the user sees; the goal is at least 90% of
    the pass-through's and >= 25. Beside it, the callbacks/s that ran: fewer than the presented
    frames when the page's main thread was busy (the panel's refresh), with the long gaps counted;
  - browser decoded fps (`getVideoPlaybackQuality`);
  - server fps: distinct frames the page's frame callback processed per second (FER_FRAME_STATS);
  - server ms/frame: the frame processor's time per frame (median and p95 over the window);
  - faces tracked at the end, the share of faces classified per frame (the frame budget), and
    the frame size that reached the server (the browser's encoder may scale it down).

The same scene also goes through `benchmarks/passthrough_app.py` (the same stream sent back
unchanged: no processing, no panel), the ceiling on this machine. Everything (browser, its
camera encoder and video decoder, server, codecs) shares this machine's CPUs. Runs on the host
network or inside `unshare --net sh -c 'ip link set lo up && ...'`; needs `scripts/setup.sh --dev`.

    python benchmarks/bench_webcam_browser.py [--seconds 20] [--scenes 1 3] [--model NAME]

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
from tests.browser import launch_chromium, open_app, running_app, wait_until_idle  # noqa: E402
from tests.conftest import compose_multi_face  # noqa: E402
from tests.test_browser_webcam import (  # noqa: E402
    COMPONENT_IFRAME,
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
# Two counts of presented frames: the callbacks that ran (one per painted frame, unless the page's
# main thread was busy when a frame was painted: then one callback covers several) and the
# browser's own counter, `metadata.presentedFrames`, which counts every frame sent to the
# compositor. The gaps between callbacks show main-thread stalls.
START_WINDOW_JS = """v => {
    const w = { callbacks: 0, start: performance.now(), first: v.getVideoPlaybackQuality(), firstPresented: null,
                lastPresented: null, last: null, gaps: [], open: true };
    const tick = (now, metadata) => {
        if (!w.open) return;
        w.callbacks++;
        if (w.firstPresented === null) w.firstPresented = metadata.presentedFrames;
        w.lastPresented = metadata.presentedFrames;
        if (w.last !== null) w.gaps.push(now - w.last);
        w.last = now;
        v.requestVideoFrameCallback(tick);
    };
    v.requestVideoFrameCallback(tick);
    window.__ferBenchWindow = w;
}"""
STOP_WINDOW_JS = """v => {
    const w = window.__ferBenchWindow; w.open = false;
    const seconds = (performance.now() - w.start) / 1000;
    const quality = v.getVideoPlaybackQuality();
    const gaps = w.gaps.slice().sort((a, b) => a - b);
    return { seconds, callbacks: w.callbacks, presented: w.lastPresented - w.firstPresented + 1,
             decoded: quality.totalVideoFrames - w.first.totalVideoFrames,
             dropped: quality.droppedVideoFrames - w.first.droppedVideoFrames,
             long_gaps: gaps.filter(g => g > 50).length, max_gap_ms: gaps.length ? gaps[gaps.length - 1] : null };
}"""


# Long tasks (> 50 ms) on the page's main thread, which the component's frame shares.
START_LONG_TASKS_JS = """() => {
    window.__ferLongTasks = [];
    window.__ferLongTaskObserver = new PerformanceObserver(list => {
        for (const entry of list.getEntries()) window.__ferLongTasks.push(entry.duration);
    });
    window.__ferLongTaskObserver.observe({ type: "longtask" });
}"""
STOP_LONG_TASKS_JS = """() => { window.__ferLongTaskObserver.disconnect(); return window.__ferLongTasks; }"""


def start_window(page, video) -> None:
    """Once the returned video plays and is past its start (first frames, codec ramp-up), start
    counting frames (on the video) and long tasks (on the page)."""
    while video.evaluate("v => v.videoWidth") == 0:
        time.sleep(0.25)
    time.sleep(3.0)
    page.evaluate(START_LONG_TASKS_JS)
    video.evaluate(START_WINDOW_JS)


def stop_window(page, video) -> dict:
    """The browser's counts since `start_window`, per second."""
    numbers = video.evaluate(STOP_WINDOW_JS)
    long_tasks = page.evaluate(STOP_LONG_TASKS_JS)
    seconds = numbers["seconds"]
    return {
        "browser_decoded_fps": round(numbers["decoded"] / seconds, 1),
        "browser_presented_fps": round(numbers["presented"] / seconds, 1),
        "browser_callback_fps": round(numbers["callbacks"] / seconds, 1),
        "browser_dropped_fps": round(numbers["dropped"] / seconds, 2),
        "callback_gaps_over_50ms": numbers["long_gaps"],
        "callback_max_gap_ms": round(numbers["max_gap_ms"] or 0.0, 1),
        "main_thread_long_tasks_per_s": round(len(long_tasks) / seconds, 2),
        "main_thread_long_task_ms_per_s": round(sum(long_tasks) / seconds, 1),
        "main_thread_longest_task_ms": round(max(long_tasks, default=0.0), 1),
    }


def scene_frame(faces: int) -> np.ndarray:
    astronaut = decode_image(ASTRONAUT).rgb
    return webcam_frame(astronaut) if faces == 1 else compose_multi_face(astronaut)[0]


def frame_times_since(before: dict, after: dict) -> list[float]:
    """The per-frame ms of the frames processed between two stats files (the file keeps the
    last 30; older ones are lost when more than 30 frames passed between the two reads)."""
    new = after.get("frames", 0) - before.get("frames", 0)
    recent = after.get("recent_latencies_ms", [])
    return recent[-new:] if new > 0 else []


def count_presented(page, component, seconds: float) -> dict:
    """Presented and decoded fps of the returned video over `seconds` (after a 3 s ramp-up)."""
    video = component.locator("video")
    start_window(page, video)
    time.sleep(seconds)
    return stop_window(page, video)


def measure_app(faces: int, seconds: float, workdir: Path, models_dir: Path, model: str | None) -> dict:
    stats_path = workdir / f"frames_{faces}.json"
    camera = write_fake_camera(workdir / f"camera_{faces}.y4m", frame=scene_frame(faces))
    env = webcam_server_env(models_dir, stats_path)
    with running_app(env=env) as app, sync_playwright() as playwright:
        browser = launch_chromium(playwright, extra_args=[f"--use-file-for-fake-video-capture={camera}"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(180_000)
            if model:  # the sidebar's live model, as a user would pick it
                open_app(page, app.url, timeout_ms=180_000)
                page.get_by_test_id("stSidebar").get_by_label("Live webcam model").click()
                page.get_by_role("option", name=model).first.click()
                wait_until_idle(page)
            component = start_live_stream(page, app, timeout=180)
            wait_for_stats(stats_path, lambda stats: stats["analysed"] >= 10, 180, app)
            times: list[float] = []
            # The browser counts frames on the component frame's window while this thread
            # collects the server's per-frame times.
            video = component.locator("video")
            start_window(page, video)
            first = previous = read_stats(stats_path)
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                time.sleep(0.5)
                current = read_stats(stats_path)
                times.extend(frame_times_since(previous, current))
                previous = current
            last = previous
            counts = stop_window(page, video)
        finally:
            browser.close()
    elapsed = max(1e-3, last["written"] - first["written"])
    return {
        "page": "live webcam (app.py, defaults)",
        "model": last.get("model"),
        "faces_in_scene": faces,
        "faces_tracked": len(last.get("tracks", [])),
        "frame_size": last.get("frame_size"),
        "seconds": round(elapsed, 1),
        **counts,
        "server_fps": round((last["frames"] - first["frames"]) / elapsed, 2),
        "server_ms_median": round(float(np.median(times)), 1) if times else None,
        "server_ms_p95": round(float(np.percentile(times, 95)), 1) if times else None,
        "frames_timed": len(times),
        "classified_share": last.get("classified_share"),
        "face_ms": last.get("face_ms"),
        "detect_ms": last.get("detect_ms"),
        "budget_ms": last.get("budget_ms"),
        "error": last.get("error"),
    }


def measure_passthrough(faces: int, seconds: float, workdir: Path) -> dict:
    camera = write_fake_camera(workdir / f"camera_pass_{faces}.y4m", frame=scene_frame(faces))
    with running_app(app="benchmarks/passthrough_app.py", env=webcam_server_env(workdir, workdir / "unused.json")) as app, \
            sync_playwright() as playwright:
        browser = launch_chromium(playwright, extra_args=[f"--use-file-for-fake-video-capture={camera}"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(180_000)
            open_app(page, app.url, timeout_ms=180_000)
            component = page.frame_locator(COMPONENT_IFRAME)
            component.get_by_role("button", name="Start").click()
            numbers = count_presented(page, component, seconds)
        finally:
            browser.close()
    return {"page": "pass-through (no processing, no panel)", "faces_in_scene": faces, **numbers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window per scene")
    parser.add_argument("--scenes", type=int, nargs="+", default=[1, 3], choices=(1, 3), help="faces in the camera picture")
    parser.add_argument("--model", help="pick this live model in the sidebar (default: the registry's live model)")
    args = parser.parse_args()

    registry = ModelRegistry()
    load_start = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="fer_bench_webcam_") as workdir:
        for faces in args.scenes:
            app_row = measure_app(faces, args.seconds, Path(workdir), registry.root, args.model)
            ceiling = measure_passthrough(faces, args.seconds, Path(workdir))
            app_row["share_of_passthrough"] = round(app_row["browser_presented_fps"] / max(0.1, ceiling["browser_presented_fps"]), 3)
            app_row["callback_share_of_passthrough"] = round(
                app_row["browser_callback_fps"] / max(0.1, ceiling["browser_callback_fps"]), 3
            )
            rows += [app_row, ceiling]
    load_end = os.getloadavg()

    header = (f"{'faces':>5} {'page':<34} {'presented':>9} {'callbacks':>9} {'decoded':>7} {'server fps':>10} {'ms med':>6} {'p95':>5} "
              f"{'tracked':>7} {'classified':>10} {'frame':>8}")
    print("Live webcam end to end, 640x480 fake camera at 30 fps, Chromium 1400x1000, default settings")
    print(header)
    print("-" * len(header))
    for row in rows:
        app_page = "server_fps" in row
        print(
            f"{row['faces_in_scene']:>5} {row['page'][:34]:<34} {row['browser_presented_fps']:>7.1f}fps {row['browser_callback_fps']:>9.1f} {row['browser_decoded_fps']:>7.1f} "
            + (f"{row['server_fps']:>10.1f} {row['server_ms_median'] or 0:>6.1f} {row['server_ms_p95'] or 0:>5.1f} "
               f"{row['faces_tracked']:>3} of {row['faces_in_scene']} {row['classified_share'] or 0:>9.0%} "
               f"{'x'.join(str(v) for v in row['frame_size'] or []):>8}" if app_page else "")
        )
        if app_page:
            print(f"{'':>5} {'':<34} = {row['share_of_passthrough']:.0%} of the pass-through "
                  f"({row['callback_share_of_passthrough']:.0%} by callbacks; main thread: "
                  f"{row['main_thread_long_tasks_per_s']:.1f} long tasks/s, {row['main_thread_long_task_ms_per_s']:.0f} ms/s); "
                  f"model {row['model']}")
    print(
        f"network: {'isolated (only lo)' if only_loopback_network() else 'host'}; {os.cpu_count()} CPUs shared by "
        f"Chromium, the server and the codecs; load average {load_start[0]:.1f} at start, {load_end[0]:.1f} at end"
    )
    payload = {
        "benchmark": "Live webcam page end to end (streamlit run + headless Chromium + WebRTC over loopback) vs pass-through",
        "resolution": "640x480",
        "camera_fps": 30,
        "window": "1400x1000",
        "detector": "blazeface",
        "machine": machine_info(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_1min": {"start": round(load_start[0], 2), "end": round(load_end[0], 2)},
        "rows": rows,
    }
    write_results(RESULTS, payload)


if __name__ == "__main__":
    main()
