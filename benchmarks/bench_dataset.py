"""Custom dataset and Label view speed: the store's write throughput, and key press to next face.

(a) The store (`fer_core.dataset_store.DatasetStore`) on a fresh tmp folder of `--faces` 48x48
    faces (synthetic, all distinct):
      - add_face: faces/s adding them one at a time, as the Upload page and Collect do (each face
        is a PNG written with fsync plus one SQLite transaction);
      - set_label: labels/s with `expected_version`, as the Label view writes, from 1 thread and
        from `--threads` threads at once (each on its own faces; WAL, BEGIN IMMEDIATE);
      - a key press's work in the server: `LabelWalk.label` (write, next face, queue check) plus
        what the view reads to draw it (position, two counts, the PNG inlined), in ms.
    Each is the median of `--repeats` rounds.
(b) The page: `streamlit run app.py` with FER_DATASET_DIR on a store of `--faces` unlabelled faces,
    headless Chromium on /dataset?dataset_tab=Label, then `--presses` presses of the keys 1-7. The
    time runs in the browser from the trusted keydown event to (1) the heading naming the next
    face and (2) the next face's image loaded; median and p95.

Browser, server and store share this machine's CPUs (and a training may be running at low
priority: the load average is recorded), so the browser numbers are a ceiling for a user with
their own machine. Needs `requirements-dev.txt` and Chromium (`scripts/setup.sh --dev`).

    python benchmarks/bench_dataset.py [--faces 2000] [--repeats 5] [--threads 4] [--presses 20]

Prints a table and writes benchmarks/results/dataset.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import streamlit_webrtc  # noqa: E402,F401 (before TensorFlow: see ui/__init__.py)

from benchmarks.common import machine_info, write_results  # noqa: E402
from fer_core.classes import CLASSES  # noqa: E402
from fer_core.dataset_records import NewFace, Prediction  # noqa: E402
from fer_core.dataset_store import DatasetStore  # noqa: E402
from fer_core.labeling import LabelWalk  # noqa: E402
from ui.labeling import face_html  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results" / "dataset.json"
WALK_KEYS = 50  # key presses timed per round of the engine-side measurement
LABELS_PER_ROUND = 300  # set_label calls per round and thread count (each commit waits for an fsync)

# In the page: wait for the next trusted keydown, then report when the face heading changes and
# when the new face's image has loaded (ms after the keydown).
ARM_JS = """() => {
    const heading = () => [...document.querySelectorAll('h3')].find(e => e.textContent.trim().startsWith('Face #'));
    const picture = () => document.querySelector('img.fer-label-face');
    const watch = { before: heading()?.textContent.trim(), src: picture()?.src, t0: null, text: null, result: null };
    window.__ferWatch = watch;
    const check = () => {
        if (watch.t0 === null || watch.result !== null) return;
        const now = performance.now(), h = heading(), img = picture();
        if (watch.text === null && h && h.textContent.trim() !== watch.before) watch.text = now - watch.t0;
        if (watch.text !== null && img && img.src !== watch.src && img.complete && img.naturalWidth > 0) {
            watch.result = { text_ms: watch.text, image_ms: now - watch.t0, face: h.textContent.trim() };
            observer.disconnect();
            document.removeEventListener('load', check, true);
        }
    };
    const observer = new MutationObserver(check);
    observer.observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
    document.addEventListener('load', check, true);
    window.addEventListener('keydown', () => { if (watch.t0 === null) watch.t0 = performance.now(); }, { capture: true, once: true });
}"""


def face_pixels(index: int, rng: np.random.Generator) -> np.ndarray:
    """A distinct 48x48 gray face: noise plus the index written into the first pixels."""
    pixels = rng.integers(0, 256, (48, 48), dtype=np.uint8)
    pixels[0, :4] = np.frombuffer(int(index).to_bytes(4, "little"), dtype=np.uint8)
    return pixels


def fill_store(root: Path, faces: int, seed: int, one_by_one: bool) -> tuple[DatasetStore, float]:
    """A store of `faces` unlabelled predicted faces; returns it and the seconds adding took."""
    store = DatasetStore(root)
    rng = np.random.default_rng(seed)
    predictions = [Prediction(CLASSES[index % len(CLASSES)], 0.3 + 0.6 * ((index * 37) % 100) / 100, "bench")
                   for index in range(faces)]
    started = time.perf_counter()
    if one_by_one:
        for index in range(faces):
            store.add_face(face_pixels(index, rng), source="upload", prediction=predictions[index], origin=f"f{index}.png")
    else:
        for start in range(0, faces, 256):
            store.add_faces([NewFace(face_pixels(index, rng), "import", prediction=predictions[index], origin=f"f{index}.png")
                             for index in range(start, min(faces, start + 256))])
    return store, time.perf_counter() - started


def label_rate(store: DatasetStore, ids: list[int], threads: int, shift: int) -> float:
    """Labels per second: every id labelled once (with a label it does not have yet, so every
    call writes), with the version it has, split over `threads`."""
    records = {record.id: record for record in store.list_faces(ids=ids)}
    shares = [ids[index::threads] for index in range(threads)]
    errors: list[BaseException] = []

    def work(share: list[int]) -> None:
        try:
            for face_id in share:
                label = CLASSES[(face_id + shift) % len(CLASSES)]
                store.set_label(face_id, label, actor=f"bench-{threads}", expected_version=records[face_id].version)
        except Exception as error:  # noqa: BLE001 (any failure is re-raised after the round)
            errors.append(error)

    workers = [threading.Thread(target=work, args=(share,)) for share in shares]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return len(ids) / elapsed


def key_press_ms(store: DatasetStore, presses: int) -> list[float]:
    """The server side of one key press in the Label view: label and advance, then what the view
    reads to draw the next face (position in the queue, two counts, the inlined image)."""
    walk = LabelWalk("unlabelled")
    walk.current(store)
    times = []
    for press in range(presses):
        started = time.perf_counter()
        walk.label(store, CLASSES[press % len(CLASSES)], "bench-walk")
        face = walk.current(store)
        if face is None:
            break
        walk.position(store)
        store.count()
        store.count(label="unlabelled")
        face_html(store, face)
        times.append((time.perf_counter() - started) * 1e3)
    return times


def store_benchmark(faces: int, repeats: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_dataset_") as folder:
        add_rates = []
        for round_number in range(repeats):
            count = max(50, faces // 10)  # a tenth of the store per round: fsync-bound, so slow
            _, seconds = fill_store(Path(folder) / f"add{round_number}", count, 100 + round_number, one_by_one=True)
            add_rates.append(count / seconds)
        store, _ = fill_store(Path(folder) / "store", faces, 7, one_by_one=False)
        ids = [record.id for record in store.list_faces(order="id")]
        sample = ids[: min(len(ids), LABELS_PER_ROUND)]
        rates: dict[int, list[float]] = {1: [], threads: []}
        shift = 0
        for _round in range(repeats):
            for count in rates:
                shift += 1  # a different label each time (labels repeat every 7 shifts, never twice in a row)
                rates[count].append(label_rate(store, sample, count, shift))
        walk_ms: list[float] = []
        for _round in range(repeats):
            walk_ms += key_press_ms(store, WALK_KEYS)
            store.bulk_set_label(ids, None, actor="bench-reset")  # unlabelled again for the next round
        return {
            "faces": faces,
            "add_face_per_s": round(statistics.median(add_rates), 1),
            "add_face_rounds": [round(rate, 1) for rate in add_rates],
            "set_label_per_s": {f"{count}_thread{'s' if count > 1 else ''}": round(statistics.median(values), 1)
                                for count, values in rates.items()},
            "set_label_rounds": {str(count): [round(rate, 1) for rate in values] for count, values in rates.items()},
            "labels_per_round": len(sample),
            "key_press_server_ms": {"median": round(statistics.median(walk_ms), 2),
                                    "p95": round(float(np.percentile(walk_ms, 95)), 2), "presses": len(walk_ms)},
        }


def browser_benchmark(faces: int, presses: int, warmup: int) -> dict:
    from playwright.sync_api import sync_playwright

    from fer_core.registry import ModelRegistry
    from tests.browser import SentFrames, launch_chromium, open_app, press_shortcut, running_app, wait_until_idle

    with tempfile.TemporaryDirectory(prefix="bench_dataset_page_") as folder:
        store, _ = fill_store(Path(folder) / "dataset", faces, 11, one_by_one=False)
        env = {"FER_DATASET_DIR": str(store.root), "FER_MODELS_DIR": str(ModelRegistry().root)}
        with running_app(env=env, timeout=300) as app, sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                frames = SentFrames(page)
                open_app(page, f"{app.url}/dataset?dataset_tab=Label")
                page.get_by_role("heading", name="Face #1", exact=True).wait_for(timeout=120_000)
                text_ms, image_ms = [], []
                for press in range(warmup + presses):
                    wait_until_idle(page)  # each press starts from a page at rest (the buttons exist)
                    page.evaluate(ARM_JS)
                    key = str(press % len(CLASSES) + 1)
                    if press < warmup:  # the frontend may ignore a key in its first moments (tests/browser.py)
                        press_shortcut(page, key, frames)
                    else:
                        page.keyboard.press(key)
                    page.wait_for_function("() => window.__ferWatch.result !== null", timeout=60_000)
                    result = page.evaluate("() => window.__ferWatch.result")
                    if press >= warmup:
                        text_ms.append(result["text_ms"])
                        image_ms.append(result["image_ms"])
                labelled = store.count() - store.count(label="unlabelled")
            finally:
                browser.close()
    return {
        "faces": faces,
        "presses": presses,
        "warmup_presses": warmup,
        "labelled_in_store": labelled,
        "next_face_heading_ms": {"median": round(statistics.median(text_ms), 1), "p95": round(float(np.percentile(text_ms, 95)), 1)},
        "next_face_image_ms": {"median": round(statistics.median(image_ms), 1), "p95": round(float(np.percentile(image_ms, 95)), 1)},
        "samples_image_ms": [round(value, 1) for value in image_ms],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--presses", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true", help="only the store (no app, no Chromium)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    load_before = [round(value, 2) for value in os.getloadavg()]
    store = store_benchmark(args.faces, args.repeats, args.threads)
    page = None if args.no_browser else browser_benchmark(args.faces, args.presses, args.warmup)

    print(f"custom dataset, {args.faces} faces, median of {args.repeats} rounds; load average {load_before[0]} "
          f"on {os.cpu_count()} CPUs")
    print(f"{'measurement':<52}{'value':>14}")
    print(f"{'add_face (one at a time), faces/s':<52}{store['add_face_per_s']:>14.1f}")
    for threads, rate in store["set_label_per_s"].items():
        print(f"{'set_label with expected_version, labels/s, ' + threads.replace('_', ' '):<52}{rate:>14.1f}")
    engine = store["key_press_server_ms"]
    print(f"{'key press, server side (label, next, reads), ms':<52}{engine['median']:>8.2f} p95 {engine['p95']:.2f}")
    if page:
        for name in ("next_face_heading_ms", "next_face_image_ms"):
            label = "key press to next face's heading, ms" if "heading" in name else "key press to next face's image loaded, ms"
            print(f"{label:<52}{page[name]['median']:>8.1f} p95 {page[name]['p95']:.1f}")

    report = {
        "benchmark": "dataset",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(load_average_before=load_before),
        "store": store,
        "page": page,
    }
    write_results(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
