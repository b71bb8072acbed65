"""How photos should be cropped so a face looks like FER2013's faces: fit and check the margin.

A face found in a photo is cropped around the detector's box widened by a margin (the card's
`face_margin`). The margin that reproduces FER2013's own framing is measured, not guessed:

1. fit: BlazeFace runs on training faces (upscaled, padded with their edge pixels so the detector
   sees context) and reports where its box sits in the 48x48 crop; the margin that turns the box
   into the crop is (48 / box side - 1) / 2 (median over the faces), with the centre's offset;
2. check (validation split only): the same kind of frame around each validation face goes
   through the photo path (detect, crop with a margin, classify once) for several margins,
   beside the accuracy of the faces' own crops.

    python benchmarks/bench_crop_geometry.py --train DIR --val DIR [--model NAME] [--faces 1500]

Prints a table and writes benchmarks/results/crop_geometry.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import machine_info, write_results  # noqa: E402
from fer_core.data import list_image_folder  # noqa: E402
from fer_core.detection import DetectorSettings, create_detector  # noqa: E402
from fer_core.image_io import read_grayscale  # noqa: E402
from fer_core.inference import EmotionClassifier  # noqa: E402
from fer_core.preprocessing import Box, crop_face  # noqa: E402
from fer_core.registry import ModelRegistry  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results" / "crop_geometry.json"
SCALE = 4  # 48 px faces become 192 px, about the size BlazeFace expects a face to be in a frame
PAD = 24  # FER pixels of edge replication on every side: context for the detector
MARGINS = (0.0, 0.05, 0.07, 0.1, 0.15, 0.2, 0.25)
SETTINGS = DetectorSettings(min_confidence=0.5, min_face_size=10, max_faces=3)


def framed(face: np.ndarray) -> np.ndarray:
    """A FER face upscaled and set in a frame of its own edge pixels (grayscale)."""
    big = cv2.resize(face, (48 * SCALE, 48 * SCALE), interpolation=cv2.INTER_CUBIC)
    pad = PAD * SCALE
    return cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)


def detect(detector, frame: np.ndarray) -> Box | None:
    found = detector.detect(np.repeat(frame[..., np.newaxis], 3, axis=2), SETTINGS)
    return max(found, key=lambda detection: detection.score).box if found else None


def fit(train_dir: str, faces: int, detector) -> dict:
    paths, _ = list_image_folder(train_dir)
    chosen = np.random.default_rng(0).choice(len(paths), min(faces, len(paths)), replace=False)
    sides, centers = [], []
    for index in chosen:
        box = detect(detector, framed(read_grayscale(paths[index])))
        if box is None:
            continue
        offset = PAD * SCALE
        x, y = (box.x - offset) / SCALE, (box.y - offset) / SCALE
        width, height = box.width / SCALE, box.height / SCALE
        sides.append(max(width, height))
        centers.append((x + width / 2, y + height / 2))
    sides, centers = np.asarray(sides), np.asarray(centers)
    margins = (48 / sides - 1) / 2
    return {
        "faces": int(len(chosen)), "detected": int(len(sides)),
        "box_side_px": {"median": round(float(np.median(sides)), 1), "p25": round(float(np.percentile(sides, 25)), 1),
                        "p75": round(float(np.percentile(sides, 75)), 1)},
        "margin": {"median": round(float(np.median(margins)), 3), "p25": round(float(np.percentile(margins, 25)), 3),
                   "p75": round(float(np.percentile(margins, 75)), 3)},
        "crop_centre_offset_in_box_sides": {
            "x": round(float(np.median((24 - centers[:, 0]) / sides)), 3),
            "y": round(float(np.median((24 - centers[:, 1]) / sides)), 3),
        },
    }


def check(val_dir: str, classifier: EmotionClassifier, detector) -> dict:
    paths, labels = list_image_folder(val_dir)
    faces = [read_grayscale(path) for path in paths]
    own = classifier.predict_faces(np.stack(faces)).argmax(axis=1)
    crops = {margin: [] for margin in MARGINS}
    kept = []
    for face, label in zip(faces, labels, strict=True):
        frame = framed(face)
        box = detect(detector, frame)
        if box is None:
            continue
        for margin in MARGINS:
            crops[margin].append(crop_face(frame, box, classifier.input_size, margin))
        kept.append(label)
    kept = np.asarray(kept)
    accuracy = {}
    for margin in MARGINS:
        stack = np.stack(crops[margin])
        predicted = np.concatenate([classifier.predict_faces(stack[start : start + 256]) for start in range(0, len(stack), 256)])
        accuracy[f"{margin:.2f}"] = round(float((predicted.argmax(axis=1) == kept).mean()), 4)
    return {"faces": len(paths), "detected": int(len(kept)), "own_crops_accuracy": round(float((own == labels).mean()), 4),
            "photo_path_accuracy_by_margin": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="FER2013 training image folder (for the fit)")
    parser.add_argument("--val", required=True, help="FER2013 validation image folder (for the check)")
    parser.add_argument("--model", help="registry model (default: the default model)")
    parser.add_argument("--faces", type=int, default=1500, help="training faces for the fit")
    args = parser.parse_args()

    registry = ModelRegistry()
    model = registry.get(args.model) if args.model else registry.default()
    detector = create_detector("blazeface")
    fitted = fit(args.train, args.faces, detector)
    checked = check(args.val, EmotionClassifier(model.path), detector)
    print(f"fit on {fitted['detected']} of {fitted['faces']} training faces: BlazeFace's box is "
          f"{fitted['box_side_px']['median']} of 48 px (p25 {fitted['box_side_px']['p25']}, p75 {fitted['box_side_px']['p75']}); "
          f"margin {fitted['margin']['median']} (p25 {fitted['margin']['p25']}, p75 {fitted['margin']['p75']}); "
          f"centre offset x {fitted['crop_centre_offset_in_box_sides']['x']}, y {fitted['crop_centre_offset_in_box_sides']['y']} box sides")
    print(f"\ncheck on {checked['detected']} of {checked['faces']} validation faces, model {model.name}, one pass")
    print(f"{'margin':>8} {'photo-path accuracy':>20}")
    for margin, accuracy in checked["photo_path_accuracy_by_margin"].items():
        print(f"{margin:>8} {accuracy:>20.1%}")
    print(f"{'own crops':>8} {checked['own_crops_accuracy']:>20.1%} (all {checked['faces']} faces)")
    write_results(RESULTS, {
        "benchmark": "crop geometry: the detector's box inside FER2013's framing, and the photo path's accuracy by margin",
        "model": model.name, "card_face_margin": model.card.face_margin, "fit": fitted, "check": checked,
        "machine": machine_info(), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })


if __name__ == "__main__":
    main()
