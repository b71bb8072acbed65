"""Clip analyses in the background, so a page stays responsive while a clip takes minutes.

A `ClipJob` is one file's analysis; its state and progress are read from any thread through a
lock as immutable snapshots (the worker only ever replaces them whole). A `ClipWorker` is one
thread per browser session running its jobs in order: on a 2-core machine two clips at once
would each take twice as long. Results stay in the job after it ends; failures are kept as the
job's message, so one bad file never stops the next. No Streamlit here.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from fer_core.errors import FerError
from fer_core.inference import EmotionRecognizer
from fer_core.video_files import AnalysisCancelled, ClipAnalysis, ClipOptions, ClipProgress, ClipSource, analyse_clip

LOGGER = logging.getLogger(__name__)
OUTPUT_DIR_ENV = "FER_VIDEO_DIR"
QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"


KEEP_OUTPUTS_SECONDS = 24 * 3600  # annotated videos older than this are removed (their sessions are long gone)


def default_output_dir() -> Path:
    """Where annotated videos go: $FER_VIDEO_DIR, else a folder in the system's temp dir; files
    older than a day are removed, so sessions that ended do not fill the disk."""
    folder = Path(os.environ.get(OUTPUT_DIR_ENV) or Path(tempfile.gettempdir()) / "fer_workbench_video")
    folder.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - KEEP_OUTPUTS_SECONDS
    for path in folder.glob("*.mp4"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:  # removed meanwhile by another session
            pass
    return folder


@dataclass(frozen=True)
class JobStatus:
    state: str  # queued, running, done, failed, cancelled
    progress: ClipProgress | None = None
    message: str | None = None  # why it failed

    @property
    def active(self) -> bool:
        return self.state in (QUEUED, RUNNING)


class ClipJob:
    """One clip to analyse; `status()` and `cancel()` are safe from any thread."""

    def __init__(
        self, key: str, name: str, source: ClipSource, recognizer: EmotionRecognizer, options: ClipOptions,
        out_path: str | os.PathLike | None,
    ):
        self.key, self.name = key, name
        self._source, self._recognizer, self.options = source, recognizer, options
        self.out_path = Path(out_path) if out_path is not None else None
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._status = JobStatus(QUEUED)
        self.result: ClipAnalysis | None = None  # set once, before the status says done

    def status(self) -> JobStatus:
        with self._lock:
            return self._status

    def cancel(self) -> None:
        """Stop it before the next frame (or before it starts)."""
        self._cancel.set()
        with self._lock:
            if self._status.state == QUEUED:
                self._status = JobStatus(CANCELLED)

    def _set(self, status: JobStatus) -> None:
        with self._lock:
            self._status = status

    def _progress(self, progress: ClipProgress) -> None:
        self._set(JobStatus(RUNNING, progress))

    def run(self) -> None:
        """Analyse the clip on this thread; whatever happens ends in a final status."""
        if self._cancel.is_set():
            self._set(JobStatus(CANCELLED))
            return
        self._set(JobStatus(RUNNING))
        try:
            result = analyse_clip(
                self._source, self._recognizer, self.options, name=self.name, out_path=self.out_path,
                progress=self._progress, cancel=self._cancel,
            )
        except AnalysisCancelled:
            self._set(JobStatus(CANCELLED))
        except FerError as error:
            self._set(JobStatus(FAILED, message=str(error)))
        except Exception as error:  # noqa: BLE001 - a bad file must not kill the worker; the next one still runs
            LOGGER.exception("analysing %s failed", self.name)
            self._set(JobStatus(FAILED, message=f"{self.name}: could not be analysed ({type(error).__name__}: {error})"))
        else:
            self.result = result
            self._set(JobStatus(DONE, self.status().progress))
        finally:
            self._source = None  # the upload's bytes are not needed any more


class ClipWorker:
    """One background thread running submitted jobs in order; it ends when none is left."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: deque[ClipJob] = deque()
        self._thread: threading.Thread | None = None

    def submit(self, job: ClipJob) -> ClipJob:
        with self._lock:
            self._pending.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fer-clip-worker", daemon=True)
                self._thread.start()
        return job

    def busy(self) -> bool:
        with self._lock:
            return self._thread is not None

    def join(self, timeout: float | None = None) -> None:
        """Wait for the jobs submitted so far (tests and the CLI)."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._thread = None
                    return
                job = self._pending.popleft()
            job.run()
