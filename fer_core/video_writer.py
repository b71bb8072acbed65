"""Writing the annotated video: H.264 in MP4, the one pairing every browser plays.

The frames come one at a time (nothing is held), each with its own timestamp, so a clip with a
variable frame rate keeps its timing. PyAV's wheel carries libx264; `+faststart` puts the index
first so a browser starts playing before the whole file has arrived. Where libx264 is missing,
OpenH264 is still H.264; MPEG-4 part 2 is the last resort (it plays in VLC, not in browsers).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

# In order of preference: (encoder, plays in browsers).
ENCODERS: tuple[tuple[str, bool], ...] = (("libx264", True), ("libopenh264", True), ("mpeg4", False))
TIME_BASE = Fraction(1, 60_000)  # fine enough for any frame rate's timestamps (MPEG-4 part 2 allows at most 1/65535)
CRF = 23  # x264's default quality
PRESET = "veryfast"  # the encoder's share of a 2-core CPU stays small next to detection


def pick_encoder() -> tuple[str, bool]:
    """The best available encoder and whether browsers play what it writes."""
    available = av.codecs_available
    for name, plays in ENCODERS:
        if name in available:
            return name, plays
    raise RuntimeError(f"none of the video encoders {', '.join(name for name, _ in ENCODERS)} is in this PyAV build")


class AnnotatedVideoWriter:
    """An MP4 file written frame by frame from RGB arrays; use as a context manager."""

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: float | None = None):
        if width % 2 or height % 2:
            raise ValueError(f"H.264 in yuv420p needs an even frame size, got {width}x{height}")
        self.path = Path(path)
        self.encoder, self.plays_in_browsers = pick_encoder()
        self.frames = 0
        self._last_pts = -1
        self._container = av.open(str(self.path), "w", format="mp4", options={"movflags": "+faststart"})
        rate = Fraction(fps).limit_denominator(1001) if fps and fps > 0 else Fraction(30)
        self._stream = self._container.add_stream(self.encoder, rate=rate)
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "yuv420p"
        # Frames keep their own timestamps: a codec clock of 1/rate would round them to the nominal rate.
        self._stream.codec_context.time_base = TIME_BASE
        if self.encoder == "libx264":
            self._stream.options = {"crf": str(CRF), "preset": PRESET}

    def write(self, rgb: np.ndarray, seconds: float) -> None:
        """Append one frame shown at `seconds` from the start (timestamps must grow; ties are nudged)."""
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        pts = max(round(seconds / TIME_BASE), self._last_pts + 1)
        frame.pts, frame.time_base = pts, TIME_BASE
        self._last_pts = pts
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file (idempotent)."""
        if self._container is None:
            return
        try:
            if self.frames:
                for packet in self._stream.encode():
                    self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None

    def __enter__(self) -> AnnotatedVideoWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.close()
