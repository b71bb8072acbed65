"""What a clip's per-frame face rows add up to: time on screen, emotions over time, peak moments.

Pure functions of the rows `fer_core.video_files.analyse_clip` collects (one small row per face
per analysed frame), so the page, the CLI and the tests compute the same numbers. Time is
weighted by what each analysed frame stands for (until the next analysed frame), so every-Nth-
frame analysis and a variable frame rate give the same shares as analysing every frame would.
The one thing that needs pixels, a peak's thumbnail, is kept by `PeakKeeper` while the frames
stream past.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from fer_core.preprocessing import Box

if TYPE_CHECKING:
    import pandas


@dataclass(frozen=True, slots=True)
class ClipRow:
    """One face on one analysed frame."""

    time: float  # seconds from the clip's first frame
    frame: int  # the frame's number in the analysed range, 0-based (= its number in the annotated video)
    face: int  # the track's number, stable through the clip
    box: Box  # in the clip's upright pixels (as a player shows it)
    probabilities: tuple[float, ...]  # smoothed over the face's recent frames, as drawn
    raw: tuple[float, ...]  # this frame's own classification
    label: str  # the top smoothed emotion


@dataclass(frozen=True)
class PeakMoment:
    """When one face showed one emotion most (by the smoothed probability)."""

    face: int
    emotion: str
    time: float
    frame: int
    probability: float
    thumbnail: bytes = field(repr=False)  # JPEG of the face on that frame


@dataclass(frozen=True)
class FaceSummary:
    """One tracked face over the clip."""

    face: int
    first_seen: float  # seconds
    last_seen: float
    seconds: float  # time on screen: what its analysed frames stand for
    frames: int  # analysed frames it was seen on
    shares: dict[str, float]  # share of its time on screen per top emotion (sums to 1)
    mean: dict[str, float]  # time-weighted mean smoothed probability per emotion

    @property
    def dominant(self) -> str:
        return max(self.shares, key=self.shares.__getitem__)


def frame_durations(analysed: Sequence[tuple[int, float]], end_time: float) -> dict[int, float]:
    """Seconds each analysed frame stands for: until the next analysed frame, the last one until
    `end_time` (the end of the analysed range). `analysed` holds (frame, time) in order."""
    durations = {}
    for (frame, time), (_, next_time) in zip(analysed, analysed[1:], strict=False):
        durations[frame] = max(0.0, next_time - time)
    if analysed:
        frame, time = analysed[-1]
        durations[frame] = max(0.0, end_time - time)
    return durations


def rows_by_face(rows: Sequence[ClipRow]) -> dict[int, list[ClipRow]]:
    """The rows of each face in time order, faces by number."""
    faces: dict[int, list[ClipRow]] = {}
    for row in rows:
        faces.setdefault(row.face, []).append(row)
    return dict(sorted(faces.items()))


def face_summaries(rows: Sequence[ClipRow], durations: dict[int, float], classes: Sequence[str]) -> list[FaceSummary]:
    """Per face: when it was seen, for how long, and how its time splits between emotions."""
    summaries = []
    for face, own in rows_by_face(rows).items():
        weights = np.array([durations.get(row.frame, 0.0) for row in own])
        total = float(weights.sum())
        if total <= 0.0:  # a face seen only on a zero-length frame still counts, evenly
            weights, total = np.ones(len(own)), float(len(own))
        shares = dict.fromkeys(classes, 0.0)
        for row, weight in zip(own, weights, strict=True):
            shares[row.label] += float(weight) / total
        mean = np.average(np.array([row.probabilities for row in own]), axis=0, weights=weights)
        summaries.append(
            FaceSummary(
                face=face,
                first_seen=own[0].time,
                last_seen=own[-1].time,
                seconds=float(sum(durations.get(row.frame, 0.0) for row in own)),
                frames=len(own),
                shares=shares,
                mean={name: float(value) for name, value in zip(classes, mean, strict=True)},
            )
        )
    return summaries


def dominant_runs(rows: Sequence[ClipRow], durations: dict[int, float]) -> list[tuple[float, float, str]]:
    """One face's top emotion as (start, end, emotion) segments: consecutive rows with the same
    top emotion merge, and a gap (frames where the face was not seen) splits them."""
    runs: list[tuple[float, float, str]] = []
    for row in rows:
        end = row.time + durations.get(row.frame, 0.0)
        if runs and runs[-1][2] == row.label and abs(runs[-1][1] - row.time) < 1e-6:
            runs[-1] = (runs[-1][0], end, row.label)
        else:
            runs.append((row.time, end, row.label))
    return runs


class PeakKeeper:
    """Per face and emotion, the first moment its smoothed probability was highest, with a
    thumbnail made only when a new peak is found (so at most faces x 7 are kept)."""

    def __init__(self, classes: Sequence[str]):
        self.classes = tuple(classes)
        self.peaks: dict[int, dict[str, PeakMoment]] = {}

    def offer(self, row: ClipRow, thumbnail: Callable[[], bytes]) -> None:
        """Consider one row; `thumbnail()` makes the JPEG of its face (called at most once)."""
        own = self.peaks.setdefault(row.face, {})
        image: bytes | None = None
        for emotion, probability in zip(self.classes, row.probabilities, strict=True):
            best = own.get(emotion)
            if best is None or probability > best.probability:
                image = image if image is not None else thumbnail()
                own[emotion] = PeakMoment(row.face, emotion, row.time, row.frame, float(probability), image)


def rows_frame(rows: Sequence[ClipRow], classes: Sequence[str]) -> pandas.DataFrame:
    """The per-frame table (CSV download): time, frame, face, box, smoothed probabilities, label,
    confidence, raw probabilities."""
    import pandas

    columns = ["time_s", "frame", "face", "x", "y", "width", "height", *classes, "emotion", "confidence",
               *(f"raw_{name}" for name in classes)]
    records = [
        (round(row.time, 4), row.frame, row.face, *row.box.as_tuple(), *(round(value, 4) for value in row.probabilities),
         row.label, round(max(row.probabilities), 4), *(round(value, 4) for value in row.raw))
        for row in rows
    ]
    return pandas.DataFrame.from_records(records, columns=columns)


def summary_frame(
    summaries: Sequence[FaceSummary], peaks: dict[int, dict[str, PeakMoment]], classes: Sequence[str]
) -> pandas.DataFrame:
    """One row per face (CSV download): time on screen, share of time per emotion, and when
    each emotion peaked."""
    import pandas

    records = []
    for summary in summaries:
        record = {
            "face": summary.face,
            "first_seen_s": round(summary.first_seen, 3),
            "last_seen_s": round(summary.last_seen, 3),
            "seconds_on_screen": round(summary.seconds, 3),
            "analysed_frames": summary.frames,
            "dominant": summary.dominant,
        }
        record.update({f"share_{name}": round(summary.shares[name], 4) for name in classes})
        own = peaks.get(summary.face, {})
        for name in classes:
            peak = own.get(name)
            record[f"peak_{name}"] = round(peak.probability, 4) if peak else None
            record[f"peak_{name}_s"] = round(peak.time, 3) if peak else None
        records.append(record)
    columns = ["face", "first_seen_s", "last_seen_s", "seconds_on_screen", "analysed_frames", "dominant",
               *(f"share_{name}" for name in classes),
               *(column for name in classes for column in (f"peak_{name}", f"peak_{name}_s"))]
    return pandas.DataFrame(records, columns=columns)
