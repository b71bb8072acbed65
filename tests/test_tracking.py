"""The IoU tracker: stable ids, tracks that survive short gaps, EMA smoothing of probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from fer_core.classes import CLASSES
from fer_core.preprocessing import Box
from fer_core.tracking import IoUTracker, Observation, TrackerSettings, match_by_iou


def one_hot(name: str, confidence: float = 0.9) -> np.ndarray:
    probabilities = np.full(len(CLASSES), (1.0 - confidence) / (len(CLASSES) - 1))
    probabilities[CLASSES.index(name)] = confidence
    return probabilities


def test_ids_follow_faces_when_the_detector_reorders_them():
    tracker = IoUTracker(CLASSES)
    left, right = Box(10, 10, 100, 100), Box(300, 20, 90, 90)
    first = tracker.update([Observation(left, one_hot("happy")), Observation(right, one_hot("sad"))])
    ids = {track.box.x: track.track_id for track in first}
    # next frame: both moved a little and arrive in the opposite order
    second = tracker.update([Observation(Box(306, 22, 90, 90), one_hot("sad")), Observation(Box(14, 12, 100, 100), one_hot("happy"))])
    assert len(second) == 2
    by_label = {track.label: track.track_id for track in second}
    assert by_label == {"happy": ids[10], "sad": ids[300]}


def test_a_face_missing_for_a_few_frames_keeps_its_track_then_is_dropped():
    tracker = IoUTracker(CLASSES, TrackerSettings(max_missed=3))
    (track,) = tracker.update([Observation(Box(50, 50, 80, 80), one_hot("happy"))])
    for missed in range(1, 4):
        (kept,) = tracker.update([])
        assert kept.track_id == track.track_id and kept.missed == missed
    (back,) = tracker.update([Observation(Box(52, 51, 80, 80), one_hot("happy"))])
    assert back.track_id == track.track_id and back.missed == 0
    for _ in range(4):
        remaining = tracker.update([])
    assert remaining == []
    (new,) = tracker.update([Observation(Box(52, 51, 80, 80), one_hot("happy"))])
    assert new.track_id != track.track_id  # ids are never reused


def test_smoothing_damps_a_one_frame_flip():
    tracker = IoUTracker(CLASSES, TrackerSettings(smoothing=0.7))
    box = Box(100, 100, 120, 120)
    for _ in range(5):
        (track,) = tracker.update([Observation(box, one_hot("happy"))])
    (track,) = tracker.update([Observation(box, one_hot("angry", 0.95))])  # one noisy frame
    assert track.label == "happy"
    assert CLASSES[int(np.argmax(track.raw_probabilities))] == "angry"
    for _ in range(6):  # a lasting change wins within a few frames
        (track,) = tracker.update([Observation(box, one_hot("angry", 0.95))])
    assert track.label == "angry"


def test_no_smoothing_follows_every_frame():
    tracker = IoUTracker(CLASSES, TrackerSettings(smoothing=0.0))
    box = Box(0, 0, 50, 50)
    tracker.update([Observation(box, one_hot("happy"))])
    (track,) = tracker.update([Observation(box, one_hot("sad"))])
    assert track.label == "sad"
    np.testing.assert_allclose(track.probabilities, one_hot("sad"))


def test_unclassified_observation_moves_the_box_but_keeps_the_probabilities():
    tracker = IoUTracker(CLASSES, TrackerSettings(box_smoothing=0.0))
    tracker.update([Observation(Box(0, 0, 100, 100), one_hot("surprise"))])
    (track,) = tracker.update([Observation(Box(10, 5, 100, 100))])
    assert track.box == Box(10, 5, 100, 100)
    assert track.label == "surprise"


def test_box_smoothing_damps_jitter():
    tracker = IoUTracker(CLASSES, TrackerSettings(box_smoothing=0.5))
    tracker.update([Observation(Box(100, 100, 100, 100), one_hot("happy"))])
    (track,) = tracker.update([Observation(Box(110, 100, 100, 100), one_hot("happy"))])
    assert track.box.x == 105


def test_matching_is_one_to_one_and_respects_the_threshold():
    tracks = [Box(0, 0, 100, 100), Box(200, 0, 100, 100)]
    boxes = [Box(5, 0, 100, 100), Box(600, 0, 50, 50)]
    assert match_by_iou(tracks, boxes, 0.3) == [(0, 0)]
    assert match_by_iou([Box(0, 0, 100, 100)], [Box(0, 0, 100, 100), Box(2, 2, 100, 100)], 0.3) == [(0, 0)]


def test_wrong_probability_length_and_bad_settings_are_rejected():
    tracker = IoUTracker(CLASSES)
    with pytest.raises(ValueError, match="expected 7 probabilities"):
        tracker.update([Observation(Box(0, 0, 10, 10), np.ones(3) / 3)])
    with pytest.raises(ValueError, match="smoothing"):
        TrackerSettings(smoothing=1.0)
    with pytest.raises(ValueError, match="iou_threshold"):
        TrackerSettings(iou_threshold=0.0)


def test_a_weak_detection_continues_a_track_but_does_not_start_one():
    tracker = IoUTracker(CLASSES)
    face, elsewhere = Box(100, 100, 80, 80), Box(400, 300, 60, 60)
    tracker.update([Observation(face, score=0.9)], start_score=0.5)
    tracks = tracker.update([Observation(Box(104, 100, 80, 80), score=0.35), Observation(elsewhere, score=0.35)], start_score=0.5)
    assert [(track.track_id, track.missed) for track in tracks] == [(1, 0)], "kept by a weak detection; no new track"
    tracks = tracker.update([Observation(elsewhere, score=0.6)], start_score=0.5)
    assert [track.track_id for track in tracks] == [1, 2]
