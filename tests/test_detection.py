"""fer_core.detection: both detectors on the committed sample and on a composed multi-face image.

Boxes, scores, the minimum face size, the face limit, large-photo tiling and thread safety are
all checked on real pixels with the real BlazeFace and Haar models.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from fer_core.detection import (
    DETECTOR_LABELS,
    Detection,
    DetectorSettings,
    create_detector,
    list_detectors,
    weighted_nms,
)
from fer_core.errors import FerError
from fer_core.preprocessing import Box

DETECTORS = ["blazeface", "haar"]


@pytest.fixture(params=DETECTORS)
def detector(request, blazeface_detector, haar_detector):
    return {"blazeface": blazeface_detector, "haar": haar_detector}[request.param]


def test_detector_names_and_labels():
    assert list_detectors() == DETECTORS
    assert set(DETECTOR_LABELS) == set(DETECTORS)
    with pytest.raises(FerError, match=r"unknown face detector 'yolo'; available: blazeface, haar"):
        create_detector("yolo")


def test_astronaut_has_one_face_with_a_box_and_a_score(detector, astronaut_rgb, astronaut_face_box):
    found = detector.detect(astronaut_rgb, DetectorSettings())
    assert len(found) == 1
    face = found[0]
    assert isinstance(face, Detection) and isinstance(face.box, Box)
    assert 0.5 <= face.score <= 1.0
    assert face.box.iou(astronaut_face_box) > 0.6
    assert detector.name in DETECTORS


def test_three_faces_in_reading_order(detector, multi_face):
    image, expected = multi_face
    found = detector.detect(image, DetectorSettings())
    assert len(found) == 3
    for detection, (center_x, center_y, side) in zip(found, expected, strict=True):
        box = detection.box
        assert abs(box.x + box.width / 2 - center_x) < 0.25 * side
        assert abs(box.y + box.height / 2 - center_y) < 0.25 * side
        assert 0.6 * side < box.width < 1.4 * side
        assert 0.0 < detection.score <= 1.0


def test_minimum_face_size_and_face_limit(detector, multi_face_rgb):
    large_only = detector.detect(multi_face_rgb, DetectorSettings(min_face_size=80))
    assert len(large_only) == 2
    assert all(min(face.box.width, face.box.height) >= 80 for face in large_only)
    assert len(detector.detect(multi_face_rgb, DetectorSettings(max_faces=1))) == 1
    assert detector.detect(multi_face_rgb, DetectorSettings(min_face_size=400)) == []


def test_minimum_confidence_filters_by_score(blazeface_detector, multi_face_rgb):
    everything = blazeface_detector.detect(multi_face_rgb, DetectorSettings(min_confidence=0.3))
    threshold = float(np.median([face.score for face in everything]))
    confident = blazeface_detector.detect(multi_face_rgb, DetectorSettings(min_confidence=threshold))
    assert 0 < len(confident) < len(everything)
    assert all(face.score >= threshold for face in confident)


def test_no_face_in_a_plain_image(detector):
    plain = np.full((480, 640, 3), 127, np.uint8)
    assert detector.detect(plain, DetectorSettings()) == []


def test_small_faces_in_a_large_photo_are_found_by_tiling(blazeface_detector, astronaut_face_crop):
    """At 2600x1800 a 110-pixel face is ~8 pixels at BlazeFace's 192x192 input: only the
    overlapping tiles find it."""
    face = Image.fromarray(astronaut_face_crop).resize((160, 170), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (2600, 1800), (110, 110, 110))
    spots = [(200, 300), (1300, 800), (2300, 1500)]
    for spot in spots:
        canvas.paste(face, spot)
    found = blazeface_detector.detect(np.asarray(canvas), DetectorSettings())
    assert len(found) == 3
    for (left, top), detection in zip(spots, found, strict=True):
        box = detection.box
        assert left < box.x + box.width / 2 < left + 160 and top < box.y + box.height / 2 < top + 170


def test_weighted_nms_merges_overlaps_by_score_hand_checked():
    corners = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [2, 2, 12, 12], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.6, 0.3, 0.8], np.float32)
    boxes, kept = weighted_nms(corners, scores)
    np.testing.assert_allclose(kept, [0.9, 0.8])
    # 0.6 >= half of 0.9 is averaged in: (0.9*0 + 0.6*1) / 1.5; 0.3 is suppressed without moving the box
    np.testing.assert_allclose(boxes[0], [0.4, 0.4, 10.4, 10.4], atol=1e-5)
    np.testing.assert_allclose(boxes[1], [50, 50, 60, 60])
    strict_boxes, _ = weighted_nms(corners[scores >= 0.5], scores[scores >= 0.5])
    np.testing.assert_allclose(strict_boxes, boxes, atol=1e-5)  # a lower threshold does not move confident boxes
    empty_boxes, empty_scores = weighted_nms(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))
    assert empty_boxes.shape == (0, 4) and empty_scores.shape == (0,)


def test_a_shared_detector_serves_several_threads(detector, multi_face_rgb):
    expected = detector.detect(multi_face_rgb)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: detector.detect(multi_face_rgb), range(8)))
    assert all(result == expected for result in results)
