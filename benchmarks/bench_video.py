"""Speed of the Video files analysis: frames of a clip per second, end to end.

What `fer_core.video_files.analyse_clip` does to a clip, all in the timing: decode (PyAV),
turn and downscale to at most 1280 px, detect (BlazeFace), track, classify (the default model,
one pass), draw, and encode the annotated H.264 MP4 (libx264, veryfast). Clips are made from
sample_images/astronaut.png (one face gently moving, or the test suite's three-face frame
moving): 640x480 and 1920x1080, `--seconds` long at 30 fps. Every frame analysed, and every 3rd
(tracking carries the boxes in between; every frame is still drawn and written).

Beside it, the `fer` package (25.10.3, installed with --no-deps) where it runs here: its
`Video` class is tried first; where it cannot be imported the JSON says why, and the row
measures its per-frame work instead (the body of `Video.analyze`: cv2.VideoCapture, Haar +
mini-Xception `FER.detect_emotions`, `draw_annotations`, a cv2 mp4v writer; with frequency N
it reads and writes only every Nth frame, as `Video.analyze` does), on the first
`--fer-seconds` of each clip.

    python benchmarks/bench_video.py [--seconds 10] [--fer-seconds 3] [--model NAME]

Prints a table and writes benchmarks/results/video.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.common import machine_info, write_results  # noqa: E402
from fer_core.detection import create_detector  # noqa: E402
from fer_core.image_io import decode_image  # noqa: E402
from fer_core.inference import EmotionClassifier, EmotionRecognizer  # noqa: E402
from fer_core.registry import ModelRegistry  # noqa: E402
from fer_core.video_files import MAX_SIDE, SMALL_FACES_SIDE, ClipOptions, analyse_clip  # noqa: E402
from tests.conftest import compose_multi_face  # noqa: E402 (the test suite's 3-face frame)
from tests.test_video_processor import webcam_frame  # noqa: E402 (the test suite's 1-face frame)

RESULTS = REPO_ROOT / "benchmarks" / "results" / "video.json"
ASTRONAUT = REPO_ROOT / "sample_images" / "astronaut.png"
FPS = 30
SIZES = {"640x480": (640, 480), "1920x1080": (1920, 1080)}


def frame_source(scene: np.ndarray, size: tuple[int, int], index: int) -> np.ndarray:
    """The 640x480 scene moved a little (a slow sway, so the encoder and tracker have work),
    scaled up into a `size` frame (letterboxed) for the larger clips."""
    shift = int(round(16 * np.sin(2 * np.pi * index / 90)))
    moved = np.roll(scene, shift, axis=1)
    width, height = size
    if (width, height) == (640, 480):
        return moved
    scale = height / 480
    inner = cv2.resize(moved, (round(640 * scale), height), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((height, width, 3), 128, np.uint8)
    left = (width - inner.shape[1]) // 2
    canvas[:, left : left + inner.shape[1]] = inner
    return canvas


def write_clip(path: Path, scene: np.ndarray, size: tuple[int, int], frames: int) -> Path:
    """An H.264 MP4 (libx264 at its default quality), as a phone or a screen recorder writes one."""
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=FPS)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(frame_source(scene, size, index), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return path


def measure_ours(path: Path, recognizer: EmotionRecognizer, every: int, out: Path, max_side: int = MAX_SIDE) -> dict:
    started_cpu = time.process_time()
    analysis = analyse_clip(path, recognizer, ClipOptions(every=every, max_side=max_side), out_path=out)
    cpu = time.process_time() - started_cpu
    faces = analysis.faces()
    seen = Counter(row.frame for row in analysis.rows)
    return {
        "frames": analysis.frames,
        "analysed_frames": len(analysis.analysed),
        "analysed_size": f"{analysis.size[0]}x{analysis.size[1]}",
        "faces_tracked": len(faces),
        "faces_per_frame_median": float(np.median([seen[frame] for frame, _ in analysis.analysed])),
        "seconds": round(analysis.elapsed, 2),
        "fps": round(analysis.fps, 1),
        "cpu_ms_per_frame": round(cpu * 1e3 / analysis.frames, 1),
        "ms_per_frame": {stage: round(total / analysis.frames, 2) for stage, total in analysis.timings_ms.items()},
        "encoder": analysis.encoder,
    }


def fer_video_class() -> str | None:
    """None when `fer.Video` imports here, else why not."""
    try:
        from fer.classes import Video  # noqa: F401  (fer/__init__.py exports nothing)
    except Exception as error:  # noqa: BLE001 - any failure to import is the answer
        return f"{type(error).__name__}: {error}"
    return None


def measure_fer_loop(path: Path, frequency: int, max_frames: int, out: Path) -> dict:
    """The body of fer's `Video.analyze` on the first `max_frames` frames of the clip."""
    from fer.fer import FER
    from fer.utils import draw_annotations

    detector = FER(mtcnn=False)  # Haar cascade + the quantized mini-Xception (fer's defaults)
    capture = cv2.VideoCapture(str(path))
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (width, height), True)
    detector.detect_emotions(np.zeros((height, width, 3), np.uint8))  # load the model outside the timing
    started, started_cpu = time.perf_counter(), time.process_time()
    position, processed, faces_seen = 0, 0, []
    while position < max_frames:
        if frequency > 1:
            capture.set(cv2.CAP_PROP_POS_FRAMES, position)
        ok, frame = capture.read()
        if not ok:
            break
        faces = detector.detect_emotions(frame)
        faces_seen.append(len(faces))
        writer.write(draw_annotations(frame, faces, boxes=True, scores=True))
        processed += 1
        position += frequency
    elapsed, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    capture.release()
    writer.release()
    covered = min(position, max_frames)
    return {
        "frames": covered,
        "analysed_frames": processed,
        "faces_per_frame_median": float(np.median(faces_seen)) if faces_seen else 0.0,
        "seconds": round(elapsed, 2),
        "fps": round(covered / elapsed, 1),
        "cpu_ms_per_frame": round(cpu * 1e3 / max(1, covered), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each generated clip")
    parser.add_argument("--fer-seconds", type=float, default=3.0, help="how much of each clip fer's loop runs on")
    parser.add_argument("--model", help="registry model name (default: the default model)")
    parser.add_argument("--detector", default="blazeface")
    args = parser.parse_args()

    registry = ModelRegistry()
    model = registry.get(args.model) if args.model else registry.default()
    recognizer = EmotionRecognizer(create_detector(args.detector), EmotionClassifier(model.path))
    astronaut = decode_image(ASTRONAUT).rgb
    scenes = {"1 face": webcam_frame(astronaut), "3 faces": compose_multi_face(astronaut)[0]}
    frames = int(round(args.seconds * FPS))
    fer_missing = fer_video_class()
    load_start = [round(value, 2) for value in os.getloadavg()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_video_") as folder:
        folder_path = Path(folder)
        for size_name, size in SIZES.items():
            for scene_name, scene in scenes.items():
                clip = write_clip(folder_path / f"{size_name}_{scene_name[0]}.mp4", scene, size, frames)
                for every in (1, 3):
                    out = folder_path / "annotated.mp4"
                    ours = measure_ours(clip, recognizer, every, out)
                    rows.append({"tool": "ours", "clip": size_name, "scene": scene_name, "every": every,
                                 "max_side": MAX_SIDE, **ours, "annotated_mb": round(out.stat().st_size / 1e6, 2)})
                    print(f"ours {size_name} {scene_name} every {every}: {ours['fps']} fps", flush=True)
                    try:
                        peer = measure_fer_loop(clip, every, int(round(args.fer_seconds * FPS)), folder_path / "fer.mp4")
                        rows.append({"tool": "fer loop", "clip": size_name, "scene": scene_name, "every": every, **peer})
                    except Exception as error:  # noqa: BLE001 - the peer is optional
                        rows.append({"tool": "fer loop", "clip": size_name, "scene": scene_name, "every": every,
                                     "error": f"{type(error).__name__}: {error}"})
                if size_name == "1920x1080" and scene_name == "3 faces":  # the page's "Find small faces"
                    out = folder_path / "annotated.mp4"
                    ours = measure_ours(clip, recognizer, 1, out, max_side=SMALL_FACES_SIDE)
                    rows.append({"tool": "ours", "clip": size_name, "scene": scene_name, "every": 1,
                                 "max_side": SMALL_FACES_SIDE, **ours, "annotated_mb": round(out.stat().st_size / 1e6, 2)})

    print(f"\nVideo files analysis, model {model.name}, detector {args.detector}, {args.seconds:g} s clips at {FPS} fps")
    header = (f"{'tool':<9} {'clip':<10} {'scene':<8} {'every':>5} {'size':>9} {'faces':>5} {'fps':>6} {'cpu ms/f':>8} "
              f"{'decode':>7} {'analyse':>7} {'draw':>6} {'encode':>7}")
    print(header)
    print("-" * len(header))
    for row in rows:
        if "error" in row:
            print(f"{row['tool']:<9} {row['clip']:<10} {row['scene']:<8} {row['every']:>5} cannot run: {row['error']}")
            continue
        stages = row.get("ms_per_frame")
        faces = row["faces_per_frame_median"]
        parts = (f"{stages['decode']:>7.1f} {stages['analyse']:>7.1f} {stages['draw']:>6.1f} {stages['encode']:>7.1f}"
                 if stages else f"{'(first ' + str(row['frames']) + ' frames)':>30}")
        print(f"{row['tool']:<9} {row['clip']:<10} {row['scene']:<8} {row['every']:>5} {row.get('analysed_size', row['clip']):>9} "
              f"{faces:>5g} {row['fps']:>6.1f} "
              f"{row['cpu_ms_per_frame']:>8.1f} {parts}")
    print("fps: clip frames per second of wall-clock time (decode to encoded file); size: analysed (and written) frame; "
          "faces: median found per analysed frame; stage columns: ms per frame")
    fer_note = (f"fer's Video class cannot run here ({fer_missing}); 'fer loop' is the body of Video.analyze"
                if fer_missing else "fer's Video class imports here; 'fer loop' is the body of Video.analyze")
    print(fer_note)
    load = os.getloadavg()[0]
    if load > (os.cpu_count() or 1):
        print(f"note: load average {load:.1f} on {os.cpu_count()} CPUs: wall-clock times include waiting for the CPU")

    payload = {
        "benchmark": "video file analysis end to end: decode, detect, track, classify, draw, encode H.264 MP4",
        "model": model.name,
        "detector": args.detector,
        "clip_seconds": args.seconds,
        "clip_fps": FPS,
        "fer": {
            "version": _fer_version(),
            "video_class": "imports" if fer_missing is None else f"cannot run here: {fer_missing}",
            "measured_instead": "the body of fer.classes.Video.analyze: cv2.VideoCapture read (with frequency N: seek to "
                                "every Nth frame), FER(mtcnn=False).detect_emotions (Haar + quantized mini-Xception "
                                "TFLite), fer.utils.draw_annotations, cv2.VideoWriter mp4v; only the frames it reads "
                                "are written",
            "frames_measured": int(round(args.fer_seconds * FPS)),
        },
        "machine": machine_info(load_average_at_start=load_start),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rows": rows,
    }
    write_results(RESULTS, payload)


def _fer_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("fer")
    except Exception:  # noqa: BLE001 - not installed
        return None


if __name__ == "__main__":
    main()
