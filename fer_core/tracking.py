"""Face tracking across video frames, so live labels keep their number and do not flicker.

A detector sees every frame afresh: face order changes, boxes jitter, and a frame-to-frame
classifier flips between close emotions. `IoUTracker` matches each frame's faces to the
tracks of the previous frames by box overlap (IoU), keeps a track alive through a few missed
frames (a blink of the detector, a hand passing), and smooths each track's probabilities with
an exponential moving average whose strength the user tunes. Plain Python and NumPy: no
threads, no Streamlit; the caller owns the tracker and calls it from one thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fer_core.classes import TopLabelMixin
from fer_core.preprocessing import Box


@dataclass(frozen=True)
class TrackerSettings:
    """How tracks are matched, kept and smoothed."""

    iou_threshold: float = 0.3  # a face continues a track when its box overlaps it at least this much
    max_missed: int = 10  # analysed frames a track survives without its face (then it is dropped)
    smoothing: float = 0.6  # EMA weight of the past: 0 = raw per-frame probabilities, 0.95 = very calm
    box_smoothing: float = 0.3  # EMA weight of the past for box corners (damps detector jitter)
    continue_ratio: float = 0.6  # a tracked face continues with detections down to this share of the start score

    def __post_init__(self) -> None:
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {self.smoothing}")
        if not 0.0 <= self.box_smoothing < 1.0:
            raise ValueError(f"box_smoothing must be in [0, 1), got {self.box_smoothing}")
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {self.iou_threshold}")
        if self.max_missed < 0:
            raise ValueError(f"max_missed must be >= 0, got {self.max_missed}")
        if not 0.0 < self.continue_ratio <= 1.0:
            raise ValueError(f"continue_ratio must be in (0, 1], got {self.continue_ratio}")


@dataclass(frozen=True)
class Observation:
    """One face seen in one frame: its box and, when it was classified, its probabilities."""

    box: Box
    probabilities: np.ndarray | None = None
    score: float = 1.0  # the detector's confidence (decides whether it may start a new track)


@dataclass
class Track(TopLabelMixin):
    """A face followed over time. `track_id` never changes and is never reused."""

    track_id: int
    box: Box
    probabilities: np.ndarray  # smoothed
    raw_probabilities: np.ndarray  # the last classification, unsmoothed
    classes: tuple[str, ...]
    hits: int = 1  # analysed frames in which the face was seen
    missed: int = 0  # consecutive analysed frames without the face
    classified: int = 0  # how many times its face was classified (0: probabilities are a placeholder)
    stale: int = 0  # frames seen since its face was last classified (a frame budget skips some)
    detected_box: Box | None = None  # this frame's raw detector box (None when missed): what to crop
    _corners: np.ndarray = field(default=None, repr=False)  # smoothed float x0, y0, x1, y1


def _corners(box: Box) -> np.ndarray:
    return np.array([box.x, box.y, box.x + box.width, box.y + box.height], np.float64)


def _box(corners: np.ndarray) -> Box:
    x0, y0, x1, y1 = (int(round(value)) for value in corners)
    return Box(x0, y0, max(1, x1 - x0), max(1, y1 - y0))


def match_by_iou(track_boxes: Sequence[Box], boxes: Sequence[Box], threshold: float) -> list[tuple[int, int]]:
    """Greedy one-to-one matching, best overlap first: (track index, box index) pairs.

    Greedy is optimal enough for the handful of faces in a webcam frame and needs no solver.
    """
    pairs = [
        (track_box.iou(box), track_index, box_index)
        for track_index, track_box in enumerate(track_boxes)
        for box_index, box in enumerate(boxes)
    ]
    pairs.sort(key=lambda pair: -pair[0])
    used_tracks: set[int] = set()
    used_boxes: set[int] = set()
    matches = []
    for overlap, track_index, box_index in pairs:
        if overlap < threshold:
            break
        if track_index in used_tracks or box_index in used_boxes:
            continue
        used_tracks.add(track_index)
        used_boxes.add(box_index)
        matches.append((track_index, box_index))
    return matches


class IoUTracker:
    """Follows faces across analysed frames; see the module docstring."""

    def __init__(self, classes: Sequence[str], settings: TrackerSettings = TrackerSettings()):
        self.classes = tuple(classes)
        self.settings = settings
        self._tracks: list[Track] = []
        self._next_id = 1

    @property
    def tracks(self) -> list[Track]:
        """Live tracks, oldest first (including those missing from the last few frames)."""
        return list(self._tracks)

    def reset(self) -> None:
        self._tracks = []
        self._next_id = 1

    def update(self, observations: Sequence[Observation], start_score: float = 0.0) -> list[Track]:
        """Feed one analysed frame's faces; returns the live tracks, oldest first.

        Every observation may continue a track; only those scoring at least `start_score` start
        a new one (the caller detects with a lower threshold to keep borderline faces tracked)."""
        settings = self.settings
        matches = match_by_iou([track.box for track in self._tracks], [seen.box for seen in observations], settings.iou_threshold)
        matched_tracks = {track_index for track_index, _ in matches}
        matched_boxes = {box_index for _, box_index in matches}
        for track_index, box_index in matches:
            self._continue(self._tracks[track_index], observations[box_index], settings)
        for track_index, track in enumerate(self._tracks):
            if track_index not in matched_tracks:
                track.missed += 1
                track.detected_box = None
        self._tracks = [track for track in self._tracks if track.missed <= settings.max_missed]
        for box_index, seen in enumerate(observations):
            if box_index not in matched_boxes and seen.score >= start_score:
                self._tracks.append(self._start(seen))
        return list(self._tracks)

    def observe(self, track: Track, probabilities: np.ndarray) -> None:
        """Smooth a classification of `track`'s face (made after `update`, e.g. within a frame
        budget) into its probabilities; the first one replaces the uniform placeholder."""
        probabilities = self._checked(probabilities)
        if track.classified == 0:
            track.probabilities = probabilities.copy()
        else:
            keep = self.settings.smoothing
            track.probabilities = keep * track.probabilities + (1.0 - keep) * probabilities
        track.raw_probabilities = probabilities.copy()
        track.classified += 1
        track.stale = 0

    def _start(self, seen: Observation) -> Track:
        placeholder = np.full(len(self.classes), 1.0 / len(self.classes))  # uniform until classified
        track = Track(
            self._next_id, seen.box, placeholder, placeholder.copy(), self.classes, detected_box=seen.box,
            _corners=_corners(seen.box),
        )
        self._next_id += 1
        if seen.probabilities is not None:
            self.observe(track, seen.probabilities)
        return track

    def _continue(self, track: Track, seen: Observation, settings: TrackerSettings) -> None:
        track.hits += 1
        track.missed = 0
        track.stale += 1
        track.detected_box = seen.box
        keep = settings.box_smoothing
        track._corners = keep * track._corners + (1.0 - keep) * _corners(seen.box)
        track.box = _box(track._corners)
        if seen.probabilities is not None:
            self.observe(track, seen.probabilities)

    def _checked(self, probabilities: np.ndarray | None) -> np.ndarray | None:
        if probabilities is None:
            return None
        probabilities = np.asarray(probabilities, np.float64)
        if probabilities.shape != (len(self.classes),):
            raise ValueError(f"expected {len(self.classes)} probabilities, got shape {probabilities.shape}")
        return probabilities
