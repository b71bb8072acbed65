"""Video files: real clips written with PyAV from the sample photo, analysed end to end.

Clips are tiny (a few dozen frames, mostly 320x240) and made here: the astronaut moving, faces
appearing and disappearing, rotation metadata (PyAV 18 writes the display matrix), irregular
timestamps, and each kind of bad file. The annotated MP4 is read back with PyAV.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from fer_core.classes import CLASSES
from fer_core.clip_summary import ClipRow, PeakKeeper, dominant_runs, face_summaries, frame_durations
from fer_core.errors import VideoError
from fer_core.inference import EmotionClassifier, EmotionRecognizer
from fer_core.preprocessing import Box
from fer_core.video_files import (
    AnalysisCancelled,
    ClipOptions,
    ClipProgress,
    analyse_clip,
    analysis_size,
    probe_clip,
)
from fer_core.video_jobs import CANCELLED, DONE, FAILED, OUTPUT_DIR_ENV, ClipJob, ClipWorker, default_output_dir
from tests.conftest import ASTRONAUT_FACE_BOX, ASTRONAUT_FACE_REGION, compose_multi_face

FPS = 30
CSV_COLUMNS = ["time_s", "frame", "face", "x", "y", "width", "height", *CLASSES, "emotion", "confidence",
               *(f"raw_{name}" for name in CLASSES)]


# --- clips, written with PyAV ------------------------------------------------------------------


def write_clip(
    path: Path, frames: Sequence[np.ndarray], times: Sequence[float] | None = None, rotation: int | None = None,
    codec: str = "libx264", container: str | None = None, faststart: bool = False,
) -> Path:
    """RGB frames as a video file; `times` (seconds) gives each frame its own timestamp (a
    variable frame rate), `rotation` sets the display matrix as a phone does (degrees
    counter-clockwise that a player turns the stored picture)."""
    options = {"movflags": "+faststart"} if faststart else {}
    output = av.open(str(path), "w", format=container, options=options)
    stream = output.add_stream(codec, rate=FPS)
    stream.height, stream.width = frames[0].shape[:2] if len(frames) else (240, 320)
    stream.pix_fmt = "yuv420p"
    time_base = Fraction(1, 90_000) if codec == "libx264" else Fraction(1, FPS)
    stream.codec_context.time_base = time_base
    if rotation is not None:
        stream.set_display_rotation(rotation)
    output.start_encoding()
    for index, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        seconds = times[index] if times is not None else index / FPS
        frame.pts, frame.time_base = round(seconds / time_base), time_base
        for packet in stream.encode(frame):
            output.mux(packet)
    if len(frames):
        for packet in stream.encode():
            output.mux(packet)
    output.close()
    return path


def read_back(path: Path) -> tuple[list[float], tuple[int, int], str, list[np.ndarray]]:
    """Frame times, (width, height), codec and the frames (RGB) of a video file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        return ([frame.time for frame in frames], (stream.width, stream.height), stream.codec_context.name,
                [frame.to_ndarray(format="rgb24") for frame in frames])


def scene(astronaut: np.ndarray, x: int = 20, y: int = 20) -> np.ndarray:
    """320x240 grey with the astronaut's head (conftest's ASTRONAUT_FACE_REGION, 175x185) at (x, y)."""
    left, top, width, height = ASTRONAUT_FACE_REGION
    frame = np.full((240, 320, 3), 128, np.uint8)
    frame[y : y + height, x : x + width] = astronaut[top : top + height, left : left + width]
    return frame


def face_at(x: int = 20, y: int = 20, scale: int = 1) -> Box:
    """Where the face of `scene(astronaut, x, y)` is (times `scale` for an enlarged frame)."""
    face_x, face_y, side, _ = ASTRONAUT_FACE_BOX
    left, top, _, _ = ASTRONAUT_FACE_REGION
    return Box((x + face_x - left) * scale, (y + face_y - top) * scale, side * scale, side * scale)


def enlarged(frame: np.ndarray, factor: int = 2) -> np.ndarray:
    return cv2.resize(frame, (frame.shape[1] * factor, frame.shape[0] * factor), interpolation=cv2.INTER_LINEAR)


@pytest.fixture(scope="module")
def recognizer(app_models_dir, blazeface_detector) -> EmotionRecognizer:
    """The app's default model (models/, or the tiny stand-in) behind BlazeFace."""
    from fer_core.registry import ModelRegistry

    return EmotionRecognizer(blazeface_detector, EmotionClassifier(ModelRegistry(app_models_dir).default().path))


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="module")
def moving_clip(clips: Path, astronaut_rgb: np.ndarray) -> Path:
    """24 frames (0.8 s at 30 fps), 320x240: the astronaut's head moving 5 px right per frame."""
    return write_clip(clips / "moving.mp4", [scene(astronaut_rgb, x=20 + 5 * index) for index in range(24)])


@pytest.fixture(scope="module")
def moving(moving_clip: Path, recognizer: EmotionRecognizer, clips: Path):
    return analyse_clip(moving_clip, recognizer, out_path=clips / "moving_annotated.mp4")


# --- the engine -----------------------------------------------------------------------------------


def test_probe_reads_size_rate_frames_and_duration(moving_clip: Path):
    info = probe_clip(moving_clip)
    assert (info.name, info.width, info.height, info.rotation, info.codec) == ("moving.mp4", 320, 240, 0, "h264")
    assert info.fps == pytest.approx(FPS) and info.frames == 24 and info.duration == pytest.approx(0.8, abs=0.04)
    assert not info.has_audio and "320x240" in info.describe()


def test_a_moving_face_keeps_one_number_and_every_frame_has_a_row(moving, moving_clip: Path):
    assert moving.frames == 24 and len(moving.analysed) == 24 and moving.notes == []
    assert {row.face for row in moving.rows} == {1}, "one track through the clip"
    assert [row.frame for row in moving.rows] == list(range(24))
    assert moving.rows[0].box.iou(face_at()) > 0.6 and moving.rows[-1].box.iou(face_at(x=20 + 5 * 23)) > 0.5
    assert moving.rows[-1].box.x > moving.rows[0].box.x + 90, "the box followed the face"
    table = moving.rows_frame()
    assert list(table.columns) == CSV_COLUMNS and len(table) == 24
    assert table["time_s"].tolist() == pytest.approx([index / FPS for index in range(24)], abs=1e-3)
    smoothed, raw = table[list(CLASSES)].to_numpy(), table[[f"raw_{name}" for name in CLASSES]].to_numpy()
    assert np.allclose(smoothed.sum(axis=1), 1.0, atol=2e-3) and np.allclose(raw.sum(axis=1), 1.0, atol=2e-3)
    assert (table["emotion"] == [CLASSES[index] for index in smoothed.argmax(axis=1)]).all()
    np.testing.assert_allclose(smoothed[0], raw[0], atol=1e-4)  # the first classification has nothing to smooth
    (face,) = moving.faces()
    assert face.seconds == pytest.approx(0.8, abs=1e-3) and face.frames == 24
    assert sum(face.shares.values()) == pytest.approx(1.0)
    summary = moving.summary_frame()
    assert len(summary) == 1 and summary.loc[0, "dominant"] == face.dominant
    assert {f"share_{name}" for name in CLASSES} | {f"peak_{name}_s" for name in CLASSES} <= set(summary.columns)


def test_the_annotated_video_has_every_frame_with_the_clips_timing(moving, moving_clip: Path):
    times, size, codec, frames = read_back(moving.annotated_path)
    assert (len(times), size, codec, moving.encoder) == (24, (320, 240), "h264", "libx264")
    assert times == pytest.approx([index / FPS for index in range(24)], abs=1e-3)
    _, _, _, originals = read_back(moving_clip)
    box = moving.rows[5].box
    drawn = np.abs(frames[5][box.y : box.y + box.height, box.x - 2 : box.x + 2].astype(int) - originals[5][box.y : box.y + box.height, box.x - 2 : box.x + 2]).mean()
    assert drawn > 20, "the box is drawn where the face is"
    assert np.abs(frames[5][200:235, 5:60].astype(int) - originals[5][200:235, 5:60]).mean() < 4, "elsewhere the picture is unchanged"


def test_peaks_keep_a_thumbnail_of_the_face(moving):
    peaks = moving.peaks[1]
    assert set(peaks) == set(CLASSES)
    top = max(peaks.values(), key=lambda peak: peak.probability)
    assert top.probability == pytest.approx(max(max(row.probabilities) for row in moving.rows))
    thumbnail = cv2.imdecode(np.frombuffer(top.thumbnail, np.uint8), cv2.IMREAD_COLOR)
    assert thumbnail is not None and max(thumbnail.shape[:2]) == 128


def test_faces_that_leave_and_come_back_later_get_new_numbers(clips: Path, recognizer, astronaut_rgb):
    """One face for 8 frames, 14 empty frames (longer than a track survives), three faces for 8."""
    one, three = enlarged(scene(astronaut_rgb)), compose_multi_face(astronaut_rgb)[0]
    empty = np.full_like(one, 128)
    path = write_clip(clips / "appear.mp4", [one] * 8 + [empty] * 14 + [three] * 8)
    analysis = analyse_clip(path, recognizer)
    first = {row.face for row in analysis.rows if row.frame < 8}
    last = {row.face for row in analysis.rows if row.frame >= 22}
    assert first == {1} and last == {2, 3, 4}
    assert not [row for row in analysis.rows if 8 <= row.frame < 22], "no face while the frame is empty"
    faces = {face.face: face for face in analysis.faces()}
    assert faces[1].first_seen == 0.0 and faces[1].last_seen == pytest.approx(7 / FPS, abs=1e-3)
    assert faces[1].seconds == pytest.approx(8 / FPS, abs=1e-3)
    for number in (2, 3, 4):
        assert faces[number].first_seen == pytest.approx(22 / FPS, abs=1e-3) and faces[number].frames == 8


def test_every_nth_frame_analyses_a_third_and_still_writes_every_frame(moving_clip: Path, recognizer, moving, clips: Path):
    analysis = analyse_clip(moving_clip, recognizer, ClipOptions(every=3), out_path=clips / "every3.mp4")
    assert [frame for frame, _ in analysis.analysed] == list(range(0, 24, 3))
    assert [row.frame for row in analysis.rows] == list(range(0, 24, 3)) and {row.face for row in analysis.rows} == {1}
    (face,) = analysis.faces()
    assert face.seconds == pytest.approx(moving.faces()[0].seconds, abs=1e-3), "each analysed frame stands for 3"
    times, _, _, frames = read_back(analysis.annotated_path)
    assert len(times) == 24
    box = analysis.rows[0].box  # frames 1 and 2 carry frame 0's box
    for index in (1, 2):
        edge = frames[index][box.y + box.height // 2, box.x : box.x + 2].astype(int)
        assert np.abs(edge - read_back(moving_clip)[3][index][box.y + box.height // 2, box.x : box.x + 2]).max() > 30


@pytest.mark.parametrize("rotation", [90, 270])
def test_a_rotated_phone_clip_is_analysed_and_written_upright(clips: Path, recognizer, astronaut_rgb, rotation: int):
    upright = [scene(astronaut_rgb, x=20 + 3 * index) for index in range(10)]
    stored = [np.ascontiguousarray(np.rot90(frame, k=-rotation // 90)) for frame in upright]  # turned as the sensor saw it
    path = write_clip(clips / f"rotated{rotation}.mp4", stored, rotation=rotation)
    info = probe_clip(path)
    assert (info.rotation, info.width, info.height, info.coded_width, info.coded_height) == (rotation, 320, 240, 240, 320)
    analysis = analyse_clip(path, recognizer, out_path=clips / f"rotated{rotation}_annotated.mp4")
    assert len(analysis.rows) == 10 and analysis.rows[0].box.iou(face_at()) > 0.6, "found where the upright face is"
    _, size, _, frames = read_back(analysis.annotated_path)
    assert size == (320, 240)
    assert np.abs(frames[0][190:235, 5:60].astype(int) - upright[0][190:235, 5:60]).mean() < 6
    assert len(analysis.notes) == 1 and ("counter-clockwise" in analysis.notes[0]) == (rotation == 90)


def test_a_variable_frame_rate_keeps_each_frames_timestamp(clips: Path, recognizer, astronaut_rgb):
    times = [0.0, 0.033, 0.067, 0.2, 0.233, 0.5, 0.533, 0.567, 0.8, 1.2, 1.233, 1.267]
    path = write_clip(clips / "vfr.mp4", [scene(astronaut_rgb, x=20 + 3 * index) for index in range(len(times))], times=times)
    analysis = analyse_clip(path, recognizer, out_path=clips / "vfr_annotated.mp4")
    assert [row.time for row in analysis.rows] == pytest.approx(times, abs=1e-3)
    written, _, _, _ = read_back(analysis.annotated_path)
    assert written == pytest.approx(times, abs=1e-3)
    (face,) = analysis.faces()
    assert face.seconds == pytest.approx(times[-1] + 0.0333, abs=0.01), "each frame stands for the time to the next"
    assert len(analysis.notes) == 1 and "variable frame rate" in analysis.notes[0]


def test_start_and_end_pick_a_part_of_the_clip(moving_clip: Path, recognizer, clips: Path):
    analysis = analyse_clip(moving_clip, recognizer, ClipOptions(start=0.3, end=0.6), out_path=clips / "part.mp4")
    assert analysis.frames == 9 and [row.frame for row in analysis.rows] == list(range(9))
    assert analysis.rows[0].time == pytest.approx(0.3, abs=1e-3) and analysis.rows[-1].time == pytest.approx(0.5667, abs=1e-3)
    times, _, _, _ = read_back(analysis.annotated_path)
    assert len(times) == 9 and times[0] == 0.0
    with pytest.raises(VideoError, match="past the end of the clip"):
        analyse_clip(moving_clip, recognizer, ClipOptions(start=5.0))
    with pytest.raises(VideoError, match="must come after the start"):
        ClipOptions(start=2.0, end=1.0)


def test_a_large_clip_is_analysed_downscaled_with_boxes_in_its_own_pixels(clips: Path, recognizer, astronaut_rgb, moving):
    assert analysis_size(3840, 2160) == (1280, 720) and analysis_size(1080, 1920) == (720, 1280)
    assert analysis_size(641, 481) == (640, 480)  # even, for H.264
    path = write_clip(clips / "big.mp4", [enlarged(scene(astronaut_rgb, x=20 + 5 * index)) for index in range(6)])
    analysis = analyse_clip(path, recognizer, ClipOptions(max_side=320), out_path=clips / "big_annotated.mp4")
    assert analysis.size == (320, 240) and read_back(analysis.annotated_path)[1] == (320, 240)
    assert analysis.rows[0].box.iou(face_at(scale=2)) > 0.6, "boxes in the clip's 640x480 pixels"
    assert any("analysed at 320x240" in note for note in analysis.notes)


def test_a_clip_longer_than_the_limit_is_refused(clips: Path, recognizer, astronaut_rgb):
    frame = scene(astronaut_rgb)
    path = write_clip(clips / "long.mp4", [frame, frame, frame], times=[0.0, 1000.0, 1900.0])
    with pytest.raises(VideoError, match="at most 30 are analysed at once"):
        analyse_clip(path, recognizer)
    analysis = analyse_clip(path, recognizer, ClipOptions(start=900.0, end=1100.0))
    assert analysis.frames == 1


def test_cancel_stops_and_removes_the_partial_video(moving_clip: Path, recognizer, clips: Path):
    cancel = threading.Event()
    reports: list[ClipProgress] = []

    def report(progress: ClipProgress) -> None:
        reports.append(progress)
        cancel.set()

    out = clips / "cancelled.mp4"
    with pytest.raises(AnalysisCancelled):
        analyse_clip(moving_clip, recognizer, out_path=out, progress=report, cancel=cancel)
    assert not out.exists() and reports[0].frames == 1 and reports[0].total == 24


# --- bad files --------------------------------------------------------------------------------------


def audio_only(path: Path) -> Path:
    output = av.open(str(path), "w", format="mp4")
    stream = output.add_stream("aac", rate=16000)
    stream.layout = "mono"
    for index in range(8):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, index * 1024
        for packet in stream.encode(frame):
            output.mux(packet)
    for packet in stream.encode():
        output.mux(packet)
    output.close()
    return path


def bad_file(kind: str, folder: Path, astronaut: np.ndarray) -> Path:
    frames = [scene(astronaut)] * 12
    path = folder / f"{kind}.mp4"
    if kind == "audio_only":
        return audio_only(path)
    if kind == "random_bytes":
        path.write_bytes(np.random.default_rng(0).bytes(20_000))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":  # the index is written last, and is cut off
        whole = write_clip(folder / "whole.mp4", frames).read_bytes()
        path.write_bytes(whole[: len(whole) // 2])
    elif kind == "zero_frames":  # a video stream without a single frame (AVI keeps such a stream)
        path = write_clip(folder / "zero_frames.avi", [], codec="mpeg4", container="avi")
    elif kind == "unknown_codec":  # an AVI whose codec tag no decoder knows
        data = write_clip(folder / "known.avi", frames, codec="mpeg4", container="avi").read_bytes()
        path = folder / "unknown_codec.avi"
        path.write_bytes(data.replace(b"FMP4", b"QQQQ"))
    return path


BAD_FILES = {
    "audio_only": "no video stream, only sound",
    "random_bytes": "not a video file, or it is corrupt or truncated",
    "empty": "the file is empty (0 bytes)",
    "truncated": "not a video file, or it is corrupt or truncated",
    "zero_frames": "the clip has no video frames",
    "unknown_codec": "a codec this build does not know",
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_each_bad_file_gets_a_clear_message(kind: str, tmp_path: Path, recognizer, astronaut_rgb):
    path = bad_file(kind, tmp_path, astronaut_rgb)
    with pytest.raises(VideoError) as caught:
        analyse_clip(path, recognizer, out_path=tmp_path / "out.mp4")
    assert str(caught.value).startswith(f"{path.name}: ") and BAD_FILES[kind] in str(caught.value)
    assert not (tmp_path / "out.mp4").exists()


def test_a_clip_cut_short_is_analysed_up_to_the_cut(tmp_path: Path, recognizer, astronaut_rgb):
    """With the index first (as phones and web exports write it) the frames before the cut survive."""
    noise = np.random.default_rng(1).integers(0, 256, (30, 30, 320, 3), dtype=np.uint8)  # frames of similar size
    frames = [np.concatenate([scene(astronaut_rgb, x=20 + 3 * index)[:210], noise[index]]) for index in range(30)]
    whole = write_clip(tmp_path / "whole.mp4", frames, faststart=True).read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(whole[: int(len(whole) * 0.7)])
    analysis = analyse_clip(path, recognizer, out_path=tmp_path / "cut_annotated.mp4")
    assert 5 <= analysis.frames < 30 and {row.face for row in analysis.rows} == {1}
    assert len(analysis.notes) == 1 and "damaged or truncated" in analysis.notes[0], (analysis.frames, analysis.notes)
    assert len(read_back(analysis.annotated_path)[0]) == analysis.frames


def test_one_bad_file_does_not_stop_the_next(tmp_path: Path, recognizer, moving_clip: Path):
    worker = ClipWorker()
    bad = worker.submit(ClipJob("bad", "notes.mp4", b"not a video at all" * 50, recognizer, ClipOptions(), None))
    good = worker.submit(ClipJob("good", "moving.mp4", moving_clip.read_bytes(), recognizer, ClipOptions(every=4),
                                 tmp_path / "good.mp4"))
    skipped = worker.submit(ClipJob("skip", "moving.mp4", moving_clip.read_bytes(), recognizer, ClipOptions(), None))
    skipped.cancel()
    worker.join(60)
    assert bad.status().state == FAILED and "notes.mp4: not a video file" in bad.status().message
    assert good.status().state == DONE and good.result.frames == 24 and len(good.result.rows) == 6
    assert good.status().progress.frames == 24 and (tmp_path / "good.mp4").is_file()
    assert skipped.status().state == CANCELLED and skipped.result is None
    assert not worker.busy()


def test_without_h264_the_fallback_encoder_is_named(moving_clip: Path, recognizer, tmp_path: Path, monkeypatch):
    import fer_core.video_writer

    monkeypatch.setattr(fer_core.video_writer, "ENCODERS", (("mpeg4", False),))
    analysis = analyse_clip(moving_clip, recognizer, ClipOptions(every=6), out_path=tmp_path / "mpeg4.mp4")
    assert analysis.encoder == "mpeg4" and any("browsers do not play" in note for note in analysis.notes)
    times, _, codec, _ = read_back(analysis.annotated_path)
    assert codec == "mpeg4" and times == pytest.approx([index / FPS for index in range(24)], abs=1e-3)


def test_bytes_and_paths_give_the_same_rows(moving_clip: Path, recognizer, moving):
    from_bytes = analyse_clip(moving_clip.read_bytes(), recognizer, name="moving.mp4")
    assert [row.box for row in from_bytes.rows] == [row.box for row in moving.rows]
    assert from_bytes.annotated_path is None and from_bytes.encoder is None


# --- summary statistics (pure functions) -----------------------------------------------------------


def row(time: float, frame: int, face: int, label: str, value: float = 0.9) -> ClipRow:
    probabilities = tuple(value if name == label else (1 - value) / 6 for name in CLASSES)
    return ClipRow(time, frame, face, Box(0, 0, 10, 10), probabilities, probabilities, label)


def test_time_on_screen_and_shares_weigh_each_frame_by_what_it_stands_for():
    analysed = [(0, 0.0), (1, 0.1), (2, 0.2), (3, 0.5), (4, 0.6)]  # a pause in the timestamps after frame 2
    durations = frame_durations(analysed, end_time=0.7)
    assert durations == pytest.approx({0: 0.1, 1: 0.1, 2: 0.3, 3: 0.1, 4: 0.1})
    rows = [row(0.0, 0, 1, "happy"), row(0.1, 1, 1, "happy"), row(0.2, 2, 1, "sad"), row(0.5, 3, 2, "fear"),
            row(0.6, 4, 1, "happy")]
    first, second = face_summaries(rows, durations, CLASSES)
    assert (first.face, first.frames, first.first_seen, first.last_seen) == (1, 4, 0.0, 0.6)
    assert first.seconds == pytest.approx(0.6)
    assert first.shares["happy"] == pytest.approx(0.5) and first.shares["sad"] == pytest.approx(0.5)
    assert first.dominant in ("happy", "sad") and second.shares["fear"] == 1.0
    runs = dominant_runs([r for r in rows if r.face == 1], durations)
    assert [label for _, _, label in runs] == ["happy", "sad", "happy"]
    assert [time for start, end, _ in runs for time in (start, end)] == pytest.approx([0.0, 0.2, 0.2, 0.5, 0.6, 0.7])


def test_a_gap_splits_a_run_of_the_same_emotion():
    durations = frame_durations([(0, 0.0), (1, 0.1), (2, 0.2), (3, 0.3)], end_time=0.4)
    rows = [row(0.0, 0, 1, "happy"), row(0.1, 1, 1, "happy"), row(0.3, 3, 1, "happy")]
    runs = dominant_runs(rows, durations)
    assert [label for _, _, label in runs] == ["happy", "happy"]
    assert [time for start, end, _ in runs for time in (start, end)] == pytest.approx([0.0, 0.2, 0.3, 0.4])


def test_peak_keeper_makes_a_thumbnail_only_for_a_new_peak():
    keeper = PeakKeeper(CLASSES)
    made: list[int] = []

    def thumbnail(frame: int):
        return lambda: made.append(frame) or f"jpeg{frame}".encode()

    keeper.offer(row(0.0, 0, 1, "happy", 0.6), thumbnail(0))
    keeper.offer(row(0.1, 1, 1, "happy", 0.9), thumbnail(1))
    keeper.offer(row(0.2, 2, 1, "happy", 0.9), thumbnail(2))  # a tie: the first moment stays
    keeper.offer(row(0.3, 3, 1, "sad", 0.7), thumbnail(3))
    assert made == [0, 1, 3]
    peaks = keeper.peaks[1]
    assert (peaks["happy"].frame, peaks["happy"].probability, peaks["happy"].thumbnail) == (1, 0.9, b"jpeg1")
    assert peaks["sad"].frame == 3 and peaks["angry"].frame == 0  # 0.4/6 on frame 0 is angry's highest


# --- the command line -------------------------------------------------------------------------------


def test_cli_writes_the_video_and_both_tables_with_a_progress_line(moving_clip: Path, tmp_path: Path, app_registry, capsys):
    import pandas

    from fer_core.cli import main

    out, frames_csv, summary_csv = tmp_path / "out" / "annotated.mp4", tmp_path / "frames.csv", tmp_path / "summary.csv"
    code = main(["video", str(moving_clip), "--out", str(out), "--csv", str(frames_csv), "--summary", str(summary_csv),
                 "--every", "2", "--start", "0.1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "moving.mp4: frame 21 of ~21" in captured.err and "fps" in captured.err
    assert "#1" in captured.out and f"wrote {out}" in captured.out
    table = pandas.read_csv(frames_csv)
    assert list(table.columns) == CSV_COLUMNS and len(table) == 11 and set(table["face"]) == {1}
    assert len(pandas.read_csv(summary_csv)) == 1
    assert len(read_back(out)[0]) == 21


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["video", "missing.mp4"], "missing.mp4: no such file"),
        (["video", "{clip}", "--out", "x.avi"], "name it FILE.mp4"),
        (["video", "{clip}", "--every", "0"], "every must be 1 or more"),
        (["video", "{clip}", "--start", "3", "--end", "2"], "must come after the start"),
    ],
)
def test_cli_bad_input_is_one_error_line(args: list[str], message: str, moving_clip: Path, app_registry, capsys):
    from fer_core.cli import main

    code = main([arg.replace("{clip}", str(moving_clip)) for arg in args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err



def test_annotated_videos_older_than_a_day_are_removed(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(OUTPUT_DIR_ENV, str(tmp_path / "videos"))
    folder = default_output_dir()
    old, new = folder / "old.mp4", folder / "new.mp4"
    old.write_bytes(b"x")
    new.write_bytes(b"x")
    os.utime(old, (time.time() - 2 * 86400, time.time() - 2 * 86400))
    assert default_output_dir() == folder and not old.exists() and new.exists()
