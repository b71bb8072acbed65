"""Recorded video clips: every face tracked through the clip, with its emotion over time.

`probe_clip` reads what a file holds (duration, frame rate, size, rotation) and refuses what
cannot be analysed with a `VideoError` naming the file. `analyse_clip` streams the frames, never
holding more than one: each is turned upright (a phone's rotation metadata), downscaled for
analysis to at most `max_side` pixels (the detector's single-pass limit; a 4K frame costs the
same as 1280 px then) and timed by its own timestamp (a variable frame rate stays right). Every
Nth frame goes through the live webcam's per-frame step (`fer_core.video.FaceFollower`: detect,
track, classify, smooth); every frame is drawn, with the tracks carried in between, and written
to the annotated MP4. What is kept is one small row per face per analysed frame; the statistics
over them are `fer_core.clip_summary`. No Streamlit: progress is a callback, cancel an Event.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import av
import cv2
import numpy as np

from fer_core.analysis import encode_jpeg, face_thumbnail
from fer_core.clip_summary import (
    ClipRow,
    FaceSummary,
    PeakKeeper,
    PeakMoment,
    face_summaries,
    frame_durations,
    rows_frame,
    summary_frame,
)
from fer_core.detection import DetectorSettings
from fer_core.drawing import FaceOverlay, draw_faces
from fer_core.errors import FerError, VideoError
from fer_core.inference import EmotionRecognizer
from fer_core.preprocessing import Box
from fer_core.tracking import Track, TrackerSettings
from fer_core.video import FaceFollower
from fer_core.video_writer import AnnotatedVideoWriter

if TYPE_CHECKING:
    import pandas

VIDEO_TYPES: tuple[str, ...] = ("mp4", "mov", "webm", "avi", "mkv")
MAX_SIDE = 1280  # analysis size: BlazeFace scans tiles above this, at several times the cost
# "Find small faces": up to full HD, where BlazeFace also scans tiles, so a face of ~5% of the frame
# width is still found (at 1280 px it sees the frame at 192 px, and faces under ~8% get lost).
SMALL_FACES_SIDE = 1920
MAX_SECONDS = 30 * 60.0  # the longest range analysed at once (rows and the annotated file grow with it)
PROGRESS_INTERVAL = 0.25  # seconds between progress reports
ROTATIONS = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}

ClipSource = str | os.PathLike | bytes


class AnalysisCancelled(FerError):
    """The user stopped the analysis; nothing of it is kept."""


@dataclass(frozen=True)
class ClipInfo:
    """What a video file holds, read before the analysis starts."""

    name: str
    width: int  # upright, as a player shows it
    height: int
    coded_width: int  # as stored (before rotation)
    coded_height: int
    rotation: int  # degrees counter-clockwise the stored frames are turned to stand upright: 0, 90, 180, 270
    duration: float | None  # seconds, when the file says
    fps: float | None  # average frames per second
    frames: int | None  # the file's frame count, else an estimate from duration x fps
    codec: str
    has_audio: bool
    first_time: float = 0.0  # the first frame's timestamp, the clip's zero
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        """'12.0 s, 1920x1080, 30 fps, h264' for captions and the CLI."""
        parts = [f"{self.duration:.1f} s" if self.duration is not None else "duration unknown",
                 f"{self.width}x{self.height}", f"{self.fps:.3g} fps" if self.fps else "frame rate unknown", self.codec]
        if self.rotation:
            parts.append(f"stored turned, shown {turn_words(self.rotation)}")
        return ", ".join(parts)


def turn_words(rotation: int) -> str:
    """How the stored frames are turned upright, in words (rotation: degrees counter-clockwise)."""
    return {90: "turned 90 degrees counter-clockwise", 180: "turned upside down", 270: "turned 90 degrees clockwise"}[rotation]


@dataclass(frozen=True)
class ClipOptions:
    """How a clip is analysed; the page's cache key, with the file's digest and the model."""

    every: int = 1  # analyse every Nth frame (tracks carry boxes and labels in between)
    start: float = 0.0  # seconds
    end: float | None = None  # seconds; None: to the end
    detection: DetectorSettings = DetectorSettings()
    tracking: TrackerSettings = TrackerSettings()
    max_side: int = MAX_SIDE
    show_bars: bool = True
    hold_frames: int = 3  # analysed frames a lost face's box stays drawn (as on the webcam)

    def __post_init__(self) -> None:
        if self.every < 1:
            raise VideoError(f"every must be 1 or more (analyse every Nth frame), got {self.every}")
        if self.start < 0:
            raise VideoError(f"the start time cannot be negative, got {self.start} s")
        if self.end is not None and self.end <= self.start:
            raise VideoError(f"the end time ({self.end} s) must come after the start ({self.start} s)")
        if self.max_side < 64:
            raise VideoError(f"max_side must be at least 64 pixels, got {self.max_side}")


@dataclass(frozen=True)
class ClipProgress:
    """How far an analysis is, for a progress bar: frames, clip seconds, speed and time left."""

    frames: int  # frames done (decoded, drawn, written)
    total: int | None  # frames in the range (an estimate), when known
    seconds: float  # clip seconds done, from the range's start
    duration: float | None  # seconds in the range, when known
    elapsed: float  # wall-clock seconds so far

    @property
    def fraction(self) -> float | None:
        if self.duration:
            return min(1.0, self.seconds / self.duration)
        if self.total:
            return min(1.0, self.frames / self.total)
        return None

    @property
    def fps(self) -> float:
        return self.frames / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the speed so far."""
        fraction = self.fraction
        if not fraction or self.elapsed <= 0:
            return None
        return self.elapsed * (1.0 - fraction) / fraction

    def line(self) -> str:
        """'frame 120 of ~300, 41.3 fps, 4 s left' for a terminal or a progress bar."""
        total = f" of ~{self.total}" if self.total else ""
        eta = f", {self.eta:.0f} s left" if self.eta is not None else ""
        return f"frame {self.frames}{total}, {self.fps:.1f} fps{eta}"


@dataclass
class ClipAnalysis:
    """Every face of one clip over time, and where the annotated video is."""

    name: str
    info: ClipInfo
    options: ClipOptions
    model: str
    detector: str
    classes: tuple[str, ...]
    rows: list[ClipRow]  # one per face per analysed frame
    analysed: list[tuple[int, float]]  # (frame, time) of every analysed frame
    frames: int  # frames in the range: the annotated video's frame count
    start_time: float  # the first frame's time
    end_time: float  # the end of the last frame
    size: tuple[int, int]  # (width, height) analysed and written, upright
    peaks: dict[int, dict[str, PeakMoment]] = field(default_factory=dict, repr=False)
    annotated_path: Path | None = None
    encoder: str | None = None
    notes: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)  # totals: decode, analyse, draw, encode
    elapsed: float = 0.0
    _faces: list[FaceSummary] | None = field(default=None, init=False, repr=False)

    @property
    def durations(self) -> dict[int, float]:
        """Seconds each analysed frame stands for, by frame number."""
        return frame_durations(self.analysed, self.end_time)

    def faces(self) -> list[FaceSummary]:
        """Per face: time on screen and emotions (computed once; a page shows them on every rerun)."""
        if self._faces is None:
            self._faces = face_summaries(self.rows, self.durations, self.classes)
        return self._faces

    def rows_frame(self) -> pandas.DataFrame:
        return rows_frame(self.rows, self.classes)

    def summary_frame(self) -> pandas.DataFrame:
        return summary_frame(self.faces(), self.peaks, self.classes)

    @property
    def fps(self) -> float:
        """Frames processed per second of wall-clock time."""
        return self.frames / self.elapsed if self.elapsed > 0 else 0.0


# --- reading ---------------------------------------------------------------------------------------


def source_name(source: ClipSource) -> str:
    return "clip" if isinstance(source, (bytes, bytearray, memoryview)) else Path(source).name


@contextmanager
def _opened(source: ClipSource, name: str) -> Iterator[av.container.InputContainer]:
    """The file opened for reading; every way it can fail is a VideoError naming it."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise VideoError(f"{name}: the file is empty (0 bytes)")
        target: io.BytesIO | str = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise VideoError(f"{name}: no such file")
        if path.stat().st_size == 0:
            raise VideoError(f"{name}: the file is empty (0 bytes)")
        target = str(path)
    try:
        container = av.open(target, metadata_errors="ignore")
    except av.error.EOFError:
        raise VideoError(f"{name}: the file ends before any video (empty or truncated)") from None
    except av.error.InvalidDataError:
        raise VideoError(f"{name}: not a video file, or it is corrupt or truncated") from None
    except (av.FFmpegError, OSError) as error:
        raise VideoError(f"{name}: cannot be read ({error})") from None
    try:
        yield container
    finally:
        container.close()


def _rotation(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> int:
    """Degrees counter-clockwise to stand the frames upright: the display matrix (what phones
    write), else an old-style `rotate` tag (clockwise degrees)."""
    degrees = frame.rotation
    if not degrees:
        try:
            degrees = -int(float(stream.metadata.get("rotate", 0)))
        except ValueError:
            degrees = 0
    return int(round(degrees / 90.0)) * 90 % 360


def probe_clip(source: ClipSource, name: str | None = None) -> ClipInfo:
    """What the file holds; VideoError for no video stream, an empty, corrupt or undecodable file,
    or a clip without frames. Decodes the first frame (the rotation is read from it)."""
    name = name or source_name(source)
    with _opened(source, name) as container:
        videos = container.streams.video
        if not videos:
            if container.streams.audio:
                raise VideoError(f"{name}: no video stream, only sound")
            raise VideoError(f"{name}: no video stream")
        stream = videos[0]
        context = stream.codec_context
        if context is None:
            raise VideoError(f"{name}: the video is in a codec this build does not know, so it cannot be decoded")
        codec = context.name
        try:
            first = next(container.decode(stream), None)
        except av.error.DecoderNotFoundError:
            raise VideoError(f"{name}: the video is coded as {codec}, which cannot be decoded here") from None
        except (av.FFmpegError, ValueError) as error:
            raise VideoError(f"{name}: the video ({codec}) cannot be decoded: corrupt or truncated ({error})") from None
        if first is None:
            raise VideoError(f"{name}: the clip has no video frames")
        rotation = _rotation(first, stream)
        coded = (first.width, first.height)
        upright = coded[::-1] if rotation in (90, 270) else coded
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        frames = stream.frames or (round(duration * fps) if duration and fps else None)
        notes = []
        if frame_degrees := first.rotation:
            if frame_degrees % 90:
                notes.append(f"the file asks for a {frame_degrees} degree rotation; turned by {rotation} instead")
        return ClipInfo(
            name=name, width=upright[0], height=upright[1], coded_width=coded[0], coded_height=coded[1],
            rotation=rotation, duration=duration if duration and duration > 0 else None, fps=fps, frames=frames or None,
            codec=codec, has_audio=bool(container.streams.audio), first_time=first.time or 0.0, notes=tuple(notes),
        )


def analysis_size(width: int, height: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """(width, height) scaled so the longer side is at most `max_side`, both even (H.264 needs it)."""
    scale = min(1.0, max_side / max(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def _range(info: ClipInfo, options: ClipOptions) -> tuple[float, float | None]:
    """The (start, end) to analyse; VideoError when it is empty or too long."""
    start, end = options.start, options.end
    if info.duration is not None:
        if start >= info.duration:
            raise VideoError(f"{info.name}: the start ({start:g} s) is past the end of the clip ({info.duration:.1f} s)")
        end = min(end, info.duration) if end is not None else info.duration
    if end is not None and end - start > MAX_SECONDS:
        raise VideoError(
            f"{info.name}: {(end - start) / 60:.0f} minutes to analyse; at most {MAX_SECONDS / 60:.0f} are analysed at "
            "once: choose a part with the start and end times"
        )
    return start, end


def _frames(
    source: ClipSource, info: ClipInfo, size: tuple[int, int], start: float, end: float | None, notes: list[str]
) -> Iterator[tuple[float, np.ndarray]]:
    """(seconds from the clip's first frame, upright RGB at `size` before rotation) for every
    frame from `start` to `end`. A file damaged part way ends the frames with a note."""
    with _opened(source, info.name) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if start > 0 and stream.time_base is not None:
            try:
                container.seek(int((start + info.first_time) / stream.time_base), stream=stream, backward=True)
            except av.FFmpegError:  # not seekable: decode from the beginning and skip
                container.seek(0)
        interval = 1.0 / info.fps if info.fps else 1.0 / 30
        width, height = size
        downscale = width < info.coded_width
        previous: float | None = None
        decoded = container.decode(stream)
        while True:
            try:
                frame = next(decoded, None)
            except (av.FFmpegError, ValueError) as error:
                reached = f"{previous:.1f} s" if previous is not None else "its start"
                notes.append(f"the file is damaged or truncated after {reached}: analysed up to there ({error})")
                return
            if frame is None:
                return
            seconds = frame.time - info.first_time if frame.time is not None else (previous + interval if previous is not None else 0.0)
            if seconds < start - 1e-6:
                continue
            if end is not None and seconds >= end - 1e-6:
                return
            if end is None and seconds - start > MAX_SECONDS:
                notes.append(f"stopped after {MAX_SECONDS / 60:.0f} minutes (the most analysed at once)")
                return
            previous = seconds
            rgb = frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA" if downscale else None)
            if info.rotation:
                rgb = cv2.rotate(rgb, ROTATIONS[info.rotation])
            yield seconds, np.ascontiguousarray(rgb)


# --- analysing -------------------------------------------------------------------------------------


def analyse_clip(
    source: ClipSource,
    recognizer: EmotionRecognizer,
    options: ClipOptions = ClipOptions(),
    *,
    name: str | None = None,
    out_path: str | os.PathLike | None = None,
    progress: Callable[[ClipProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> ClipAnalysis:
    """Track and classify every face of a clip; write the annotated MP4 to `out_path` when given.

    Raises VideoError for a file that cannot be analysed and AnalysisCancelled when `cancel` is
    set (a partial annotated file is removed either way)."""
    started = time.perf_counter()
    name = name or source_name(source)
    info = probe_clip(source, name)
    start, end = _range(info, options)
    coded_size = analysis_size(info.coded_width, info.coded_height, options.max_side)
    size = coded_size[::-1] if info.rotation in (90, 270) else coded_size
    notes = list(info.notes)
    if info.rotation:
        notes.append(f"{turn_words(info.rotation)} as the file asks (a phone held upright or upside down)")
    if size[0] < info.width:
        notes.append(f"analysed at {size[0]}x{size[1]} (the clip is {info.width}x{info.height}); boxes are in the clip's pixels")
    duration = end - start if end is not None else None
    total = round(duration * info.fps) if duration and info.fps else info.frames
    scale = (info.width / size[0], info.height / size[1])
    classes = tuple(recognizer.classifier.classes)
    follower = FaceFollower(classes, options.tracking)
    peaks = PeakKeeper(classes)
    rows: list[ClipRow] = []
    analysed: list[tuple[int, float]] = []
    overlays: list[FaceOverlay] = []
    timings = dict.fromkeys(("decode", "analyse", "draw", "encode"), 0.0)
    writer: AnnotatedVideoWriter | None = None
    frames, first_time, last_time, last_report = 0, None, None, 0.0
    intervals: list[float] = []
    reader = _frames(source, info, coded_size, start, end, notes)
    try:
        while True:
            mark = time.perf_counter()
            item = next(reader, None)
            timings["decode"] += time.perf_counter() - mark
            if item is None:
                break
            if cancel is not None and cancel.is_set():
                raise AnalysisCancelled(f"{name}: cancelled")
            seconds, rgb = item
            if first_time is None:
                first_time = seconds
            if last_time is not None:
                intervals.append(seconds - last_time)
            last_time = seconds
            mark = time.perf_counter()
            if frames % options.every == 0:
                faces = follower.analyse(rgb, recognizer, options.detection)
                analysed.append((frames, seconds))
                for track in faces.classified:
                    row = _row(track, seconds, frames, scale)
                    rows.append(row)
                    peaks.offer(row, lambda rgb=rgb, box=track.box: encode_jpeg(face_thumbnail(rgb, box)))
                overlays = follower.overlays(options.hold_frames)
            timings["analyse"] += time.perf_counter() - mark
            if out_path is not None:
                mark = time.perf_counter()
                draw_faces(rgb, overlays, show_bars=options.show_bars, numbered=True)
                timings["draw"] += time.perf_counter() - mark
                mark = time.perf_counter()
                if writer is None:
                    writer = AnnotatedVideoWriter(out_path, rgb.shape[1], rgb.shape[0], info.fps)
                writer.write(rgb, seconds - first_time)
                timings["encode"] += time.perf_counter() - mark
            frames += 1
            now = time.perf_counter()
            if progress is not None and now - last_report >= PROGRESS_INTERVAL:
                last_report = now
                progress(ClipProgress(frames, total, seconds - start, duration, now - started))
        if writer is not None:
            mark = time.perf_counter()
            writer.close()
            timings["encode"] += time.perf_counter() - mark
    except BaseException:
        if writer is not None:
            writer.close()
        if out_path is not None:
            Path(out_path).unlink(missing_ok=True)
        raise
    finally:
        reader.close()  # closes the file now, not whenever the generator is collected
    if not frames:
        raise VideoError(f"{name}: no frames between {start:g} s and {f'{end:g} s' if end is not None else 'the end'}")
    typical = float(np.median(intervals)) if intervals else (1.0 / info.fps if info.fps else 1.0 / 30)
    if end is not None and not any("damaged" in note for note in notes) and end - (last_time or 0.0) - typical > 3 * typical:
        # a decoder running on several threads may end quietly where a truncated file stops
        notes.append(f"the file stops at {(last_time or 0.0) + typical:.1f} s although it says it is {end:.1f} s long: "
                     "damaged or truncated; analysed up to there")
    if len(intervals) > 2 and max(intervals) > 1.5 * max(min(intervals), 1e-3):
        notes.append(f"variable frame rate ({min(intervals) * 1e3:.0f}-{max(intervals) * 1e3:.0f} ms between frames): "
                     "each frame's own timestamp is used")
    if writer is not None and not writer.plays_in_browsers:
        notes.append(f"this PyAV build has no H.264 encoder: the annotated video is {writer.encoder}, which browsers do not play")
    elapsed = time.perf_counter() - started
    if progress is not None:
        progress(ClipProgress(frames, frames, (last_time or 0.0) - start + typical, (last_time or 0.0) - start + typical, elapsed))
    return ClipAnalysis(
        name=name, info=info, options=options, model=recognizer.classifier.card.name,
        detector=getattr(recognizer.detector, "name", type(recognizer.detector).__name__), classes=classes,
        rows=rows, analysed=analysed, frames=frames, start_time=first_time or 0.0, end_time=(last_time or 0.0) + typical,
        size=size, peaks=peaks.peaks, annotated_path=Path(out_path) if out_path is not None else None,
        encoder=writer.encoder if writer is not None else None, notes=notes,
        timings_ms={key: value * 1e3 for key, value in timings.items()}, elapsed=elapsed,
    )


def _row(track: Track, seconds: float, frame: int, scale: tuple[float, float]) -> ClipRow:
    """A track seen on this frame as a row, its box scaled from analysed pixels to the clip's."""
    box, (scale_x, scale_y) = track.box, scale
    return ClipRow(
        seconds, frame, track.track_id,
        Box(round(box.x * scale_x), round(box.y * scale_y), round(box.width * scale_x), round(box.height * scale_y)),
        tuple(float(value) for value in track.probabilities),
        tuple(float(value) for value in track.raw_probabilities),
        track.label,
    )
