"""`python -m fer_core video IN ...`: every face of a video file and its emotion over time.

The same `analyse_clip` the Video files page runs. Progress (frames, fps, time left) goes to
stderr, rewritten in place on a terminal and every few seconds otherwise; the per-face summary
goes to stdout. Bad input is a VideoError, which `fer_core.cli.main` prints as one `error:`
line (exit 2).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fer_core.video_files import ClipProgress

PIPE_INTERVAL = 5.0  # seconds between progress lines when stderr is not a terminal


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("video", help="track every face of a video file and its emotion over time")
    parser.add_argument("input", metavar="IN", help="video file (mp4, mov, webm, avi, mkv, ...)")
    parser.add_argument("--out", metavar="FILE.mp4", help="write the annotated video (H.264 MP4, every frame)")
    parser.add_argument("--csv", metavar="FILE", help="write one row per face per analysed frame")
    parser.add_argument("--summary", metavar="FILE", help="write one row per face: time on screen, emotions, peaks")
    parser.add_argument("--every", type=int, default=1, metavar="N",
                        help="analyse every Nth frame (faster; tracking carries boxes and labels in between)")
    parser.add_argument("--start", type=float, default=0.0, metavar="S", help="start at S seconds")
    parser.add_argument("--end", type=float, metavar="S", help="stop at S seconds (default: the end)")
    parser.add_argument("--model", help="model folder or registry name (default: the default model)")
    parser.add_argument("--detector", default="blazeface", help="face detector: blazeface or haar")
    parser.add_argument("--min-confidence", type=float, default=0.5)
    parser.add_argument("--min-face", type=int, default=20, help="minimum face size in pixels (of the analysed frame)")
    parser.add_argument("--max-side", type=int, default=1280, metavar="PX",
                        help="analyse frames downscaled to at most PX on the longer side (1920: small faces too, slower)")
    parser.add_argument("--smoothing", type=float, default=0.6, help="label smoothing, 0 (raw) to 0.95 (calm), as on the webcam")
    parser.add_argument("--quiet", action="store_true", help="no progress line")


class _ProgressLine:
    """Writes progress to stderr: in place on a terminal, a line every few seconds otherwise."""

    def __init__(self, name: str):
        self.name = name
        self.terminal = sys.stderr.isatty()
        self._last = 0.0
        self._width = 0

    def __call__(self, progress: ClipProgress) -> None:
        text = f"{self.name}: {progress.line()}"
        if self.terminal:
            sys.stderr.write("\r" + text.ljust(self._width))
            self._width = len(text)
        elif time.monotonic() - self._last >= PIPE_INTERVAL or progress.frames == progress.total:
            sys.stderr.write(text + "\n")
            self._last = time.monotonic()
        sys.stderr.flush()

    def end(self) -> None:
        if self.terminal and self._width:
            sys.stderr.write("\n")


def run(args: argparse.Namespace) -> int:
    from fer_core.cli import _resolve_model_dir
    from fer_core.detection import DetectorSettings, create_detector
    from fer_core.errors import VideoError
    from fer_core.inference import EmotionClassifier, EmotionRecognizer
    from fer_core.tracking import TrackerSettings
    from fer_core.video_files import ClipOptions, analyse_clip

    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() != ".mp4":
        raise VideoError(f"{out}: the annotated video is written as MP4; name it FILE.mp4")
    try:
        tracking = TrackerSettings(smoothing=args.smoothing)
    except ValueError as error:
        raise VideoError(f"--smoothing: {error}") from None
    options = ClipOptions(
        every=args.every, start=args.start, end=args.end, tracking=tracking, max_side=args.max_side,
        detection=DetectorSettings(min_confidence=args.min_confidence, min_face_size=args.min_face),
    )
    recognizer = EmotionRecognizer(create_detector(args.detector), EmotionClassifier(_resolve_model_dir(args.model)))
    for path in (out, args.csv, args.summary):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    line = None if args.quiet else _ProgressLine(Path(args.input).name)
    try:
        analysis = analyse_clip(args.input, recognizer, options, out_path=out, progress=line)
    finally:
        if line is not None:
            line.end()
    faces = analysis.faces()
    print(f"{analysis.name}: {analysis.info.describe()}; {analysis.frames} frames, {len(analysis.analysed)} analysed "
          f"in {analysis.elapsed:.1f} s ({analysis.fps:.1f} frames/s), model {analysis.model}, detector {analysis.detector}")
    for note in analysis.notes:
        print(f"note: {note}")
    if faces:
        print(f"{'face':>5}  {'on screen':>9}  {'seen':>13}  emotions (share of its time)")
    else:
        print("no face found (try --min-face 10, --min-confidence 0.3 or --detector haar)")
    for summary in faces:
        shares = ", ".join(f"{name} {share:.0%}" for name, share in sorted(summary.shares.items(), key=lambda item: -item[1])
                           if share >= 0.005)
        seen = f"{summary.first_seen:.1f}-{summary.last_seen:.1f} s"
        print(f"{'#' + str(summary.face):>5}  {summary.seconds:>7.1f} s  {seen:>13}  {shares}")
    if out is not None:
        print(f"wrote {out} ({analysis.frames} frames, {analysis.size[0]}x{analysis.size[1]}, {analysis.encoder})")
    if args.csv:
        analysis.rows_frame().to_csv(args.csv, index=False)
        print(f"wrote {args.csv} ({len(analysis.rows)} rows)")
    if args.summary:
        analysis.summary_frame().to_csv(args.summary, index=False)
        print(f"wrote {args.summary} ({len(faces)} face{'' if len(faces) == 1 else 's'})")
    return 0
