"""The live-video frame processor: detect, classify, track, smooth and draw, one frame at a time.

`FaceFollower` is the per-frame step (detect, track with hysteresis, classify in one model call,
smooth in the tracker, make overlays) that the live stream and recorded clips
(`fer_core.video_files`) share. One `FrameProcessor` serves one stream. Its
`process_video_frame` is the WebRTC frame callback and runs on the stream's worker thread;
everything else (settings, live panel, snapshots) is called from the Streamlit script thread.
The two sides share only:
  - settings and the recognizer, replaced whole (frozen dataclass / object swap: an attribute
    assignment is atomic, and the frame thread reads each once per frame);
  - the published `LiveState`, timeline and snapshot, guarded by one lock and handed out as
    immutable copies (the same idea as the `queue.Queue` in streamlit-webrtc's samples).
Nothing is loaded per frame, and the frame-sized buffers (mirror, grayscale, face batch) are
allocated once and reused. No Streamlit in here.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import av
import cv2
import numpy as np

from fer_core.detection import DetectorSettings
from fer_core.drawing import FaceOverlay, draw_faces, draw_status
from fer_core.inference import EmotionRecognizer
from fer_core.preprocessing import Box, face_region
from fer_core.tracking import IoUTracker, Observation, Track, TrackerSettings

LOGGER = logging.getLogger(__name__)

# Names a JSON file the processor rewrites (atomically, twice a second) with frame counts, so
# tests and operators can see from outside that the model really runs on the stream's frames.
FRAME_STATS_ENV = "FER_FRAME_STATS"
# The processor's time per frame (detect + classify + track + draw) that classification fits into.
# A 30 fps stream has 33 ms a frame; the browser's and the server's video codecs share the same
# CPU, so the processor aims at well under that.
DEFAULT_BUDGET_MS = 20.0
MAX_STALE_FRAMES = 15  # whatever the budget, a face is classified again after this many frames
MAX_DETECT_EVERY = 4  # on a CPU too slow to detect on every frame within the budget, at least every 4th
EMA_WEIGHT = 0.2  # of the newest measurement in the processor's running cost estimates


@dataclass(frozen=True)
class StreamSettings:
    """What the user tunes on the Live webcam page.

    budget_ms: tracking and drawing run on every frame, detection too unless it alone takes more
    than half the budget (then every 2nd to 4th frame, boxes held in between); classification gets
    what is left, a face at a time (new faces first, then the longest unclassified), so with many
    faces or a slow CPU each face is classified every few frames instead of the video slowing
    down. None pins "detect and classify every face on every frame".
    """

    detection: DetectorSettings = DetectorSettings(max_faces=10)
    tracking: TrackerSettings = TrackerSettings()
    budget_ms: float | None = DEFAULT_BUDGET_MS
    mirror: bool = False
    show_bars: bool = True
    show_status: bool = True
    hold_frames: int = 3  # keep drawing a lost face's box for this many frames

    def __post_init__(self) -> None:
        if self.budget_ms is not None and not 1.0 <= self.budget_ms <= 1000.0:
            raise ValueError(f"budget_ms must be between 1 and 1000 (or None), got {self.budget_ms}")
        if self.hold_frames < 0:
            raise ValueError(f"hold_frames must be >= 0, got {self.hold_frames}")


@dataclass(frozen=True)
class TrackState:
    """One tracked face as the live panel shows it."""

    track_id: int
    label: str
    confidence: float
    probabilities: tuple[float, ...]  # smoothed, in `LiveState.classes` order
    box: Box
    missed: int  # analysed frames since the face was last seen (0 = in this frame)


@dataclass(frozen=True)
class StreamStats:
    frames: int = 0  # frames that came through the callback
    analysed: int = 0  # frames on which the detector and the classifier ran
    faces_classified: int = 0  # faces the classifier saw, summed over frames
    fps: float = 0.0  # frames per second through the callback (the stream's real rate)
    latency_ms: float = 0.0  # mean processing time per frame over the last second or so
    classified_share: float = 1.0  # running share of the faces in view classified on each frame
    face_ms: float = 0.0  # running cost of classifying one face
    detect_ms: float = 0.0  # running cost of detection on one frame
    detect_every: int = 1  # detection runs on every Nth frame (more than 1 only on a slow CPU)
    error: str | None = None  # the last processing error, if frames are passed through unprocessed

    @property
    def budget_limited(self) -> bool:
        """True while the frame budget keeps some faces from being classified on every frame."""
        return self.classified_share < 0.98 or self.detect_every > 1

    def budget_note(self) -> str:
        """What the budget is doing, in a few words for the overlay and the panel."""
        parts = []
        if self.detect_every > 1:
            parts.append(f"detecting every {self.detect_every} frames")
        if self.classified_share < 0.98:
            parts.append(f"{self.classified_share:.0%} of faces classified per frame")
        return ", ".join(parts)


@dataclass(frozen=True)
class TimelinePoint:
    seconds: float  # time.monotonic() when recorded
    track_id: int
    label: str
    confidence: float


@dataclass(frozen=True)
class LiveState:
    """An immutable copy of what the stream shows now, for the live panel."""

    classes: tuple[str, ...]
    tracks: tuple[TrackState, ...]
    stats: StreamStats
    updated: float  # time.monotonic() of the last processed frame; 0 before the first


@dataclass(frozen=True)
class SnapshotFace:
    track_id: int
    label: str
    confidence: float
    probabilities: tuple[float, ...]
    box: Box
    crop: np.ndarray = field(repr=False)  # (S, S) uint8 grayscale: what the model saw
    face_rgb: np.ndarray = field(repr=False)  # colour crop of the face with margin, for saving


@dataclass(frozen=True)
class Snapshot:
    """The faces of one frame with their (smoothed) labels, ready to be saved into a dataset."""

    frame_rgb: np.ndarray = field(repr=False)  # the frame as the camera captured it (never mirrored), no overlay
    faces: tuple[SnapshotFace, ...]
    classes: tuple[str, ...]
    model_name: str
    taken_at: float  # time.time()


@dataclass(frozen=True)
class FrameFaces:
    """What one analysed frame gave: the live tracks, and which faces were seen and classified."""

    tracks: list[Track]  # every live track after this frame, oldest first
    in_view: list[Track]  # the tracks whose face was detected on this frame
    classified: list[Track]  # those classified on this frame (all in view, unless a budget chose)
    gray: np.ndarray = field(repr=False)  # the frame in grayscale (a buffer reused by the next frame)
    detect_ms: float = 0.0
    classify_ms: float = 0.0


# Picks, from the faces in view, those to classify on this frame (given detection's ms); the
# live stream's frame budget is one, a clip classifies them all.
Chooser = Callable[[list[Track], float], list[Track]]


class FaceFollower:
    """The faces of one video, frame after frame: detect, track, classify, smooth, overlay.

    Shared by the live stream and recorded clips so both behave the same. Hysteresis: detections
    down to `continue_ratio` of the minimum confidence may continue a tracked face, only those
    above it start one, so a borderline face does not flicker. All faces chosen on a frame go
    through one model call; the tracker smooths each face's probabilities (raw values kept).
    Owns the tracker and frame-sized buffers, so one thread at a time.
    """

    def __init__(self, classes: Sequence[str], tracking: TrackerSettings):
        self.tracker = IoUTracker(classes, tracking)
        self.gray: np.ndarray | None = None
        self._batch: np.ndarray | None = None

    def analyse(
        self, image: np.ndarray, recognizer: EmotionRecognizer, detection: DetectorSettings, choose: Chooser | None = None
    ) -> FrameFaces:
        """Detect and track every face of an RGB frame; classify those `choose` picks (all by default)."""
        started = time.perf_counter()
        start_score = detection.min_confidence
        lenient = replace(detection, min_confidence=start_score * self.tracker.settings.continue_ratio)
        detections = recognizer.detector.detect(image, lenient)
        detect_ms = (time.perf_counter() - started) * 1e3
        if self.gray is None or self.gray.shape != image.shape[:2]:
            self.gray = np.empty(image.shape[:2], np.uint8)
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY, dst=self.gray)  # once, not once per face
        tracks = self.tracker.update([Observation(d.box, score=d.score) for d in detections], start_score=start_score)
        in_view = [track for track in tracks if track.missed == 0]
        chosen = choose(in_view, detect_ms) if choose is not None else list(in_view)
        classify_ms = self._classify(gray, chosen, recognizer, detection.max_faces)
        return FrameFaces(tracks, in_view, chosen, gray, detect_ms, classify_ms)

    def _classify(self, gray: np.ndarray, chosen: list[Track], recognizer: EmotionRecognizer, max_faces: int) -> float:
        """Classify the chosen faces (cropped from their raw detector boxes) in one model call and
        smooth the results into their tracks; returns the model call's milliseconds."""
        if not chosen:
            return 0.0
        classifier = recognizer.classifier
        size = classifier.input_size
        if self._batch is None or self._batch.shape[1] != size or len(self._batch) < len(chosen):
            self._batch = np.empty((max(len(chosen), max_faces, 1), size, size), np.uint8)
        for index, track in enumerate(chosen):
            self._batch[index] = classifier.prepare_face(gray, track.detected_box)
        mark = time.perf_counter()
        probabilities = classifier.predict_faces(self._batch[: len(chosen)])
        classify_ms = (time.perf_counter() - mark) * 1e3
        for track, probs in zip(chosen, probabilities, strict=True):
            self.tracker.observe(track, probs)
        return classify_ms

    def overlays(self, hold_frames: int) -> list[FaceOverlay]:
        """What to draw: every classified face seen within the last `hold_frames` analysed frames."""
        return [
            FaceOverlay(track.track_id, track.box, track.probabilities, track.classes)
            for track in self.tracker.tracks
            if track.missed <= hold_frames and track.classified
        ]


def stats_path_from_env() -> Path | None:
    value = os.environ.get(FRAME_STATS_ENV)
    return Path(value) if value else None


class FrameProcessor:
    """Per-stream state and the frame callback; see the module docstring for the threading."""

    FPS_WINDOW = 30  # frames over which fps and latency are averaged
    TIMELINE_SECONDS = 30.0
    TIMELINE_INTERVAL = 0.2  # record the timeline at most 5 times a second
    STATS_INTERVAL = 0.5

    def __init__(
        self,
        recognizer: EmotionRecognizer,
        settings: StreamSettings = StreamSettings(),
        stats_path: str | os.PathLike | None = None,
    ):
        self._recognizer = recognizer
        self._settings = settings
        self._stats_path = Path(stats_path) if stats_path else None
        # --- frame-thread state (only the frame thread touches these) ---
        self._faces = FaceFollower(recognizer.classifier.classes, settings.tracking)
        self._tracker_classifier = recognizer.classifier
        self._frame_index = 0
        self._overlays: list[FaceOverlay] = []
        self._arrivals: deque[float] = deque(maxlen=self.FPS_WINDOW)
        self._latencies: deque[float] = deque(maxlen=self.FPS_WINDOW)
        self._mirror: np.ndarray | None = None
        self._counts = StreamStats()
        self._tokens = 0.0  # milliseconds of classification the budget allows now
        self._overhead_ms = 0.0  # running cost of everything but detection and classification
        self._last_timeline = 0.0
        self._last_stats_write = 0.0
        self._reset_requested = False
        # --- shared state (guarded by the lock) ---
        self._lock = threading.Lock()
        self._live = LiveState(tuple(recognizer.classifier.classes), (), StreamStats(), 0.0)
        self._timeline: deque[TimelinePoint] = deque(maxlen=int(self.TIMELINE_SECONDS / self.TIMELINE_INTERVAL) * 12)
        self._snapshot_wanted = threading.Event()
        self._snapshot_ready = threading.Event()
        self._snapshot: Snapshot | None = None

    # --- called from the script thread ----------------------------------------------------------
    @property
    def settings(self) -> StreamSettings:
        return self._settings

    def update_settings(self, settings: StreamSettings) -> None:
        self._settings = settings  # atomic swap of a frozen object

    def set_recognizer(self, recognizer: EmotionRecognizer) -> None:
        """Switch model or detector (a no-op when both parts are the ones in use); after a
        model change the frame thread starts fresh tracks on its next frame."""
        current = self._recognizer
        if recognizer.classifier is current.classifier and recognizer.detector is current.detector:
            return
        self._recognizer = recognizer

    def reset(self) -> None:
        """Forget tracks, counters and the timeline (a new stream starts from #1)."""
        self._reset_requested = True
        with self._lock:
            self._timeline.clear()
            self._live = LiveState(tuple(self._recognizer.classifier.classes), (), StreamStats(), 0.0)

    def live_state(self) -> LiveState:
        with self._lock:
            return self._live

    def timeline(self, seconds: float | None = None) -> list[TimelinePoint]:
        """The recent per-track labels, oldest first (the last `seconds` when given)."""
        with self._lock:
            points = list(self._timeline)
        if seconds is not None and points:
            since = time.monotonic() - seconds
            points = [point for point in points if point.seconds >= since]
        return points

    def take_snapshot(self, timeout: float = 1.0) -> Snapshot | None:
        """The faces of the next analysed frame; None when no frame arrives in `timeout` s."""
        self._snapshot_ready.clear()
        self._snapshot_wanted.set()
        if not self._snapshot_ready.wait(timeout):
            self._snapshot_wanted.clear()
            return None
        with self._lock:
            return self._snapshot

    # --- called from the frame thread ----------------------------------------------------------
    def process_video_frame(self, frame: av.VideoFrame) -> av.VideoFrame:
        """The streamlit-webrtc `video_frame_callback`: an annotated copy of the frame."""
        rgb = frame.to_ndarray(format="rgb24")
        return av.VideoFrame.from_ndarray(self.process(rgb), format="rgb24")

    def process(self, rgb: np.ndarray) -> np.ndarray:
        """Annotate one RGB uint8 frame. Draws in place (or into the mirror buffer) and
        returns the annotated image. A processing error is reported, and the frame passes."""
        started = time.perf_counter()
        settings, recognizer = self._settings, self._recognizer
        error = None
        analysed_ms = 0.0
        image = rgb
        try:
            self._prepare(recognizer, settings)
            # The frame is analysed as the camera captured it: mirroring is only how it is shown
            # (a detector scores a face and its mirror image differently, and the results must
            # not depend on a display preference).
            analysed_ms = self._analyse(rgb, recognizer, settings)
            overlays = self._overlays
            if settings.mirror:
                if self._mirror is None or self._mirror.shape != rgb.shape:
                    self._mirror = np.empty_like(rgb)
                image = cv2.flip(rgb, 1, dst=self._mirror)
                overlays = [replace(overlay, box=_mirrored(overlay.box, rgb.shape[1])) for overlay in overlays]
            draw_faces(image, overlays, show_bars=settings.show_bars, numbered=True)
        except Exception as exception:  # noqa: BLE001 - a bad frame must not kill the stream
            error = f"{type(exception).__name__}: {exception}"
            if error != self._counts.error:  # log each new error once, not 30 times a second
                LOGGER.exception("frame processing failed")
        self._frame_index += 1
        now = time.perf_counter()
        self._arrivals.append(now)
        self._latencies.append((now - started) * 1e3)
        fps = (len(self._arrivals) - 1) / (self._arrivals[-1] - self._arrivals[0]) if len(self._arrivals) > 1 else 0.0
        latency = float(np.mean(self._latencies))
        self._overhead_ms = _ema(self._overhead_ms, max(0.0, (now - started) * 1e3 - analysed_ms))
        if settings.show_status:
            lines = [f"{fps:4.1f} fps", f"{latency:4.1f} ms/frame"]
            if settings.budget_ms is not None and self._counts.budget_limited:
                lines.append(f"budget: {self._counts.budget_note()}")
            draw_status(image, lines)
        self._counts = replace(self._counts, frames=self._counts.frames + 1, fps=fps, latency_ms=latency, error=error)
        self._publish(recognizer, rgb.shape[1] if settings.mirror else None)
        return image

    def _prepare(self, recognizer: EmotionRecognizer, settings: StreamSettings) -> None:
        if self._reset_requested or recognizer.classifier is not self._tracker_classifier:
            self._reset_requested = False
            self._faces = FaceFollower(recognizer.classifier.classes, settings.tracking)
            self._tracker_classifier = recognizer.classifier
            self._overlays = []
            self._frame_index = 0
            self._arrivals.clear()
            self._latencies.clear()
            self._counts = StreamStats()
            self._tokens = 0.0
        self._faces.tracker.settings = settings.tracking

    def _analyse(self, image: np.ndarray, recognizer: EmotionRecognizer, settings: StreamSettings) -> float:
        """Detect and track every face; classify those the frame budget allows, in one model
        call; returns the milliseconds detection and classification took."""
        counts = self._counts
        detect_every = self._detect_every(settings)
        if self._frame_index % detect_every and self._overlays:
            # a slow CPU: this frame reuses the last detection's tracks (drawn as they are)
            self._counts = replace(counts, detect_every=detect_every)
            return 0.0
        faces = self._faces.analyse(
            image, recognizer, settings.detection,
            choose=lambda in_view, detect_ms: self._budgeted(in_view, settings, detect_ms / detect_every),
        )
        tracks, in_view, chosen = faces.tracks, faces.in_view, faces.classified
        detect_ms, classify_ms = faces.detect_ms, faces.classify_ms
        self._tokens -= classify_ms
        face_ms = _ema(counts.face_ms, classify_ms / len(chosen)) if chosen else counts.face_ms
        share = len(chosen) / len(in_view) if in_view else 1.0
        self._overlays = self._faces.overlays(settings.hold_frames)
        self._counts = replace(
            counts, analysed=counts.analysed + 1, faces_classified=counts.faces_classified + len(chosen),
            classified_share=_ema(counts.classified_share, share, first=counts.analysed == 0), face_ms=face_ms,
            detect_ms=_ema(counts.detect_ms, detect_ms, first=counts.analysed == 0), detect_every=detect_every,
        )
        if self._snapshot_wanted.is_set():
            self._fulfil_snapshot(image, faces.gray, [track for track in tracks if track.missed == 0 and track.classified], recognizer)
        return detect_ms + classify_ms

    def _detect_every(self, settings: StreamSettings) -> int:
        """1 (every frame), or every Nth frame while detection alone takes over half the budget."""
        if settings.budget_ms is None or self._counts.detect_ms <= 0.0:
            return 1
        return int(min(MAX_DETECT_EVERY, max(1, np.ceil(self._counts.detect_ms / (0.5 * settings.budget_ms)))))

    def _budgeted(self, in_view: list[Track], settings: StreamSettings, detect_ms: float) -> list[Track]:
        """The faces to classify on this frame: all of them without a budget; otherwise new faces
        at once, then the longest unclassified as far as the budget's tokens go (a token bucket
        refilled each frame with what detection and drawing leave of the budget, capped at one
        budget so no frame runs long), and at least one face overdue by MAX_STALE_FRAMES."""
        if settings.budget_ms is None or not in_view:
            return list(in_view)
        budget = settings.budget_ms
        self._tokens = min(budget, self._tokens + max(0.0, budget - detect_ms - self._overhead_ms))
        face_ms = self._counts.face_ms
        chosen: list[Track] = []
        tokens = self._tokens
        for track in sorted(in_view, key=lambda track: (track.classified > 0, -track.stale)):
            new = track.classified == 0
            overdue = not chosen and track.stale >= MAX_STALE_FRAMES
            if new or overdue or face_ms <= 0.0 or tokens >= face_ms:
                chosen.append(track)
                tokens -= face_ms
            else:
                break
        return chosen

    def _fulfil_snapshot(self, image: np.ndarray, gray: np.ndarray, tracks: list[Track], recognizer: EmotionRecognizer) -> None:
        classifier = recognizer.classifier
        faces = tuple(
            SnapshotFace(
                track.track_id,
                track.label,
                track.confidence,
                tuple(float(value) for value in track.probabilities),
                track.box,
                classifier.prepare_face(gray, track.box),
                face_region(image, track.box, classifier.margin).copy(),
            )
            for track in tracks
        )
        snapshot = Snapshot(image.copy(), faces, tuple(classifier.classes), classifier.card.name, time.time())
        with self._lock:
            self._snapshot = snapshot
        self._snapshot_wanted.clear()
        self._snapshot_ready.set()

    def _publish(self, recognizer: EmotionRecognizer, mirror_width: int | None = None) -> None:
        """Hand the panel this frame's tracks, with boxes as the user sees them (mirrored or not)."""
        now = time.monotonic()
        hold = self._settings.hold_frames
        tracks = tuple(
            TrackState(
                track.track_id,
                track.label,
                track.confidence,
                tuple(float(value) for value in track.probabilities),
                _mirrored(track.box, mirror_width) if mirror_width else track.box,
                track.missed,
            )
            for track in self._faces.tracker.tracks
            if track.missed <= hold and track.classified
        )
        record = now - self._last_timeline >= self.TIMELINE_INTERVAL
        with self._lock:
            self._live = LiveState(tuple(recognizer.classifier.classes), tracks, self._counts, now)
            if record:
                self._timeline.extend(
                    TimelinePoint(now, track.track_id, track.label, track.confidence) for track in tracks if track.missed == 0
                )
                while self._timeline and self._timeline[0].seconds < now - self.TIMELINE_SECONDS:
                    self._timeline.popleft()
        if record:
            self._last_timeline = now
        if self._stats_path is not None and now - self._last_stats_write >= self.STATS_INTERVAL:
            self._last_stats_write = now
            self._write_stats(tracks, recognizer)

    def _write_stats(self, tracks: tuple[TrackState, ...], recognizer: EmotionRecognizer) -> None:
        counts = self._counts
        payload = {
            "frames": counts.frames,
            "analysed": counts.analysed,
            "faces_classified": counts.faces_classified,
            "fps": round(counts.fps, 2),
            "latency_ms": round(counts.latency_ms, 2),
            "classified_share": round(counts.classified_share, 3),
            "face_ms": round(counts.face_ms, 2),
            "detect_ms": round(counts.detect_ms, 2),
            "detect_every": counts.detect_every,
            "budget_ms": self._settings.budget_ms,
            "frame_size": list(self._faces.gray.shape[::-1]) if self._faces.gray is not None else None,
            "recent_latencies_ms": [round(value, 2) for value in self._latencies],  # the last frames, oldest first
            "error": counts.error,
            "model": recognizer.classifier.card.name,
            "detector": getattr(recognizer.detector, "name", ""),
            "tracks": [
                {"id": track.track_id, "label": track.label, "confidence": round(track.confidence, 4), "box": track.box.as_tuple()}
                for track in tracks
            ],
            "written": time.time(),
        }
        temporary = self._stats_path.with_name(self._stats_path.name + ".tmp")
        try:
            temporary.write_text(json.dumps(payload), encoding="utf-8")
            os.replace(temporary, self._stats_path)
        except OSError:
            LOGGER.warning("cannot write frame stats to %s", self._stats_path, exc_info=True)


def _mirrored(box: Box, width: int) -> Box:
    """`box` in a frame of `width` flipped left to right."""
    return Box(width - box.x - box.width, box.y, box.width, box.height)


def _ema(previous: float, value: float, first: bool = False) -> float:
    """A running estimate; the first measurement replaces the empty one."""
    return value if first or previous == 0.0 else (1.0 - EMA_WEIGHT) * previous + EMA_WEIGHT * value
