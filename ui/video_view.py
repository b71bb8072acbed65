"""The Video files page's building blocks: collecting clips, the session's background analyses,
the progress fragment, and the results (player, timelines, summary table, downloads).

The work is `fer_core.video_files.analyse_clip`, run by `fer_core.video_jobs` on one background
thread per session. This module only submits jobs, polls their thread-safe status from a
fragment, and lays out finished results; nothing here runs on the worker thread. Jobs are kept
by file content + model + detector settings + options, so a rerun, another upload or a trip to
another page finds a finished analysis again.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, replace
from html import escape
from pathlib import Path

import streamlit as st

from fer_core.analysis import content_digest
from fer_core.classes import CLASS_COLORS_RGB, class_color_hex
from fer_core.clip_summary import FaceSummary, PeakMoment, rows_by_face
from fer_core.detection import DetectorSettings
from fer_core.drawing import readable_on
from fer_core.errors import VideoError
from fer_core.tracking import TrackerSettings
from fer_core.video_files import MAX_SIDE, SMALL_FACES_SIDE, VIDEO_TYPES, ClipAnalysis, ClipOptions
from fer_core.video_jobs import CANCELLED, FAILED, QUEUED, ClipJob, ClipWorker, JobStatus, default_output_dir
from ui.charts import emotion_timeline_chart
from ui.resources import load_recognizer, model_cache_key
from ui.sidebar import SidebarChoices

WORKER_KEY = "video_worker"  # the session's ClipWorker (one background thread at a time)
JOBS_KEY = "video_jobs"  # job key -> ClipJob; finished ones stay for the session
DIGESTS_KEY = "video_digests"  # uploader file id -> sha256, so a 200 MB upload is hashed once, not every rerun
POLL_SECONDS = 0.5
KEEP_FINISHED = 8  # finished analyses no longer on the page kept per session (their videos are on disk)
FACES_OPEN = 4  # faces shown with their timeline at once; the rest in an expander
PEAK_SHOWN = 0.25  # an emotion's peak gets a thumbnail when it led at some moment or reached this


@dataclass(frozen=True)
class ClipItem:
    """One uploaded clip. `key` is unique on the page even if a file is uploaded twice."""

    name: str
    data: bytes
    digest: str
    key: str


def collect_clips() -> list[ClipItem]:
    files = st.file_uploader(
        "Drop video files here (mp4, mov, webm, avi, mkv; several at once)",
        type=list(VIDEO_TYPES), accept_multiple_files=True, key="video_files",
    )
    digests: dict[str, str] = st.session_state.setdefault(DIGESTS_KEY, {})
    seen: Counter[str] = Counter()
    items = []
    for file in files or []:
        file_id = getattr(file, "file_id", None)
        digest = digests.get(file_id) if file_id else None
        if digest is None:
            digest = content_digest(file.getvalue())
            if file_id:
                digests[file_id] = digest
        seen[digest] += 1
        items.append(ClipItem(file.name, file.getvalue(), digest, f"{digest[:16]}_{seen[digest]}"))
    return items


def render_options(detection: DetectorSettings) -> ClipOptions:
    """The page's own options (model and detector come from the sidebar); stops the page on a bad range."""
    with st.expander("Analysis options", icon=":material/tune:"):
        every_column, smoothing_column, start_column, end_column, small_column = st.columns([3, 3, 2, 2, 3])
        every = every_column.number_input(
            "Analyse every Nth frame", min_value=1, max_value=30, value=1, step=1, key="video_every",
            help="Higher is faster: faces are detected and classified on every Nth frame, and tracking carries "
            "their boxes and labels in between. The annotated video still has every frame.",
        )
        smoothing = smoothing_column.slider(
            "Label smoothing", 0.0, 0.95, TrackerSettings().smoothing, step=0.05, key="video_smoothing",
            help="As on the webcam: how much each face's probabilities follow their recent past. "
            "The per-frame CSV keeps the raw values too.",
        )
        start = start_column.number_input("Start at (s)", min_value=0.0, value=0.0, step=1.0, key="video_start")
        end = end_column.number_input(
            "Stop at (s)", min_value=0.0, value=0.0, step=1.0, key="video_end", help="0 analyses to the end of the clip."
        )
        small_faces = small_column.toggle(
            "Find small faces", key="video_small_faces",
            help=f"Analyse at up to {SMALL_FACES_SIDE} px instead of {MAX_SIDE} (the detector then also scans tiles): "
            "finds faces of a few percent of the frame's width in group shots, about 2-3 times slower.",
        )
    try:
        return ClipOptions(
            every=int(every), start=float(start), end=float(end) if end else None, detection=detection,
            tracking=replace(TrackerSettings(), smoothing=float(smoothing)),
            max_side=SMALL_FACES_SIDE if small_faces else MAX_SIDE,
        )
    except VideoError as error:
        st.error(str(error), icon=":material/schedule:")
        st.stop()


def job_key(item: ClipItem, choices: SidebarChoices, options: ClipOptions) -> str:
    """What an analysis depends on: the file's content, the model, the detector and the options."""
    text = f"{item.digest}|{model_cache_key(choices.model)}|{choices.detector}|{options!r}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _worker() -> ClipWorker:
    if WORKER_KEY not in st.session_state:
        st.session_state[WORKER_KEY] = ClipWorker()
    return st.session_state[WORKER_KEY]


def jobs_for(items: list[ClipItem], choices: SidebarChoices, options: ClipOptions) -> list[ClipJob]:
    """The job of each clip under the current choices: a kept one, or a new one started in the
    background. Unfinished jobs nobody asks for any more (other options, file removed) stop."""
    jobs: dict[str, ClipJob] = st.session_state.setdefault(JOBS_KEY, {})
    wanted: list[ClipJob] = []
    for item in items:
        key = job_key(item, choices, options)
        job = jobs.get(key)
        if job is None:
            recognizer = load_recognizer(choices.model, choices.detector)
            job = ClipJob(key, item.name, item.data, recognizer, options, default_output_dir() / f"{key}.mp4")
            jobs[key] = job
            _worker().submit(job)
        wanted.append(job)
    keys = {job.key for job in wanted}
    finished = []
    for key, job in list(jobs.items()):
        if key in keys:
            continue
        if job.status().active:
            job.cancel()
            del jobs[key]
        else:
            finished.append(key)
    for key in finished[: max(0, len(finished) - KEEP_FINISHED)]:  # the oldest go first
        forget(key)
    return wanted


def forget(key: str) -> None:
    """Drop a kept job and its annotated video."""
    job = st.session_state.get(JOBS_KEY, {}).pop(key, None)
    if job is not None and job.out_path is not None:
        job.out_path.unlink(missing_ok=True)


# --- progress --------------------------------------------------------------------------------------


def render_progress(jobs: list[ClipJob]) -> None:
    """A bar per running or queued clip with a Cancel button, refreshed twice a second by a
    fragment while any runs; when the last one ends, the whole page reruns to show the results."""
    if not any(job.status().active for job in jobs):
        return

    @st.fragment(run_every=POLL_SECONDS)
    def monitor() -> None:
        statuses = [(job, job.status()) for job in dict.fromkeys(jobs)]
        if not any(status.active for _, status in statuses):
            st.rerun(scope="app")
        for job, status in statuses:
            if status.active:
                _progress_row(job, status)

    monitor()


def _progress_row(job: ClipJob, status: JobStatus) -> None:
    with st.container(border=True):
        text_column, cancel_column = st.columns([6, 1], vertical_alignment="center")
        progress = status.progress
        if status.state == QUEUED:
            text = f"**{job.name}**: waiting for the clip before it"
        elif progress is None:
            text = f"**{job.name}**: opening the clip"
        else:
            text = f"**{job.name}**: {progress.line()}"
        with text_column:
            fraction = progress.fraction if progress is not None else None
            st.progress(fraction or 0.0, text=text)
        if cancel_column.button("Cancel", key=f"video_cancel_{job.key}", icon=":material/stop_circle:"):
            job.cancel()
            st.toast(f"Cancelling {job.name}")


# --- results ---------------------------------------------------------------------------------------


def render_job(item: ClipItem, job: ClipJob, choices: SidebarChoices) -> None:
    """One clip: its error, its cancelled state, a waiting note, or its results."""
    status = job.status()
    with st.container(border=True):
        st.subheader(item.name, anchor=False)
        if status.state == FAILED:
            st.error(status.message or f"{item.name}: could not be analysed", icon=":material/broken_image:")
        elif status.state == CANCELLED:
            st.warning("The analysis was cancelled.", icon=":material/cancel:")
            if st.button("Analyse again", key=f"video_restart_{item.key}", icon=":material/replay:"):
                forget(job.key)
                st.rerun()
        elif status.active or job.result is None:
            st.caption("Analysing in the background (progress above); the page stays usable.")
        else:
            render_result(item, job.result, choices)


def face_badge(summary: FaceSummary) -> str:
    """'#1 happy 87% of 12.3 s' in the face's main emotion's colour (as the Upload page's badges)."""
    label = summary.dominant
    color = CLASS_COLORS_RGB.get(label, (200, 200, 200))
    text_color = "#000" if readable_on(color) == (0, 0, 0) else "#fff"
    background = class_color_hex(label) if label in CLASS_COLORS_RGB else "#c8c8c8"
    return (
        f'<span class="fer-face-badge" style="background:{background};color:{text_color};padding:2px 10px;'
        f'border-radius:6px;font-weight:600;white-space:nowrap">#{summary.face} {escape(label)} '
        f"{summary.shares[label]:.0%}</span> &nbsp; <small>{summary.seconds:.1f} s on screen, "
        f"{summary.first_seen:.1f}-{summary.last_seen:.1f} s</small>"
    )


def render_result(item: ClipItem, analysis: ClipAnalysis, choices: SidebarChoices) -> None:
    info = analysis.info
    faces = analysis.faces()
    st.caption(
        f"{info.describe()}; {analysis.frames} frames from {analysis.start_time:.1f} to {analysis.end_time:.1f} s, "
        f"{len(analysis.analysed)} analysed; {len(faces)} face(s) tracked by **{analysis.model}** with "
        f"**{analysis.detector}** in {analysis.elapsed:.1f} s ({analysis.fps:.1f} frames/s)."
    )
    for note in analysis.notes:
        st.caption(f":material/info: {note}")
    stem = item.name.rsplit(".", 1)[0]
    player_column, table_column = st.columns([3, 2], gap="medium")
    with player_column:
        path = analysis.annotated_path
        if path is not None and path.is_file():
            st.video(path.read_bytes(), format="video/mp4")
            st.download_button(
                "Annotated video (MP4)", data=lambda path=path: Path(path).read_bytes(), file_name=f"{stem}_annotated.mp4",
                mime="video/mp4", key=f"video_mp4_{item.key}", on_click="ignore", icon=":material/download:",
                help=f"{analysis.size[0]}x{analysis.size[1]}, every frame, no sound",
            )
        else:
            st.caption("The annotated video is no longer on disk; analyse the clip again to see it.")
    with table_column:
        if not faces:
            settings = choices.settings
            st.warning(
                f"**No face found** in this clip. Try a lower *Minimum face size* (now {settings.min_face_size} px) or "
                f"*Minimum detection confidence* (now {settings.min_confidence:.2f}) in the sidebar, or the other detector.",
                icon=":material/face_retouching_off:",
            )
        else:
            render_summary_table(item, analysis)
    if faces:
        render_faces(item, analysis, faces)


def render_summary_table(item: ClipItem, analysis: ClipAnalysis) -> None:
    """Per face: time on screen and the share of it per emotion; CSV downloads of both tables."""
    table = analysis.summary_frame()
    shares = [f"share_{name}" for name in analysis.classes]
    columns = {column: st.column_config.NumberColumn(name, format="percent")
               for column, name in zip(shares, analysis.classes, strict=True)}
    columns["seconds_on_screen"] = st.column_config.NumberColumn("on screen (s)", format="%.1f")
    st.dataframe(
        table, hide_index=True, key=f"video_table_{item.key}", column_config=columns,
        column_order=["face", "seconds_on_screen", "dominant", *shares],
    )
    stem = item.name.rsplit(".", 1)[0]
    csv_column, summary_column = st.columns(2)
    csv_column.download_button(
        "Per-frame CSV", data=lambda: analysis.rows_frame().to_csv(index=False), file_name=f"{stem}_frames.csv",
        mime="text/csv", key=f"video_csv_{item.key}", on_click="ignore", icon=":material/download:",
        help="Time, frame, face, box, the smoothed and the raw probabilities of every face on every analysed frame",
    )
    summary_column.download_button(
        "Summary CSV", data=table.to_csv(index=False), file_name=f"{stem}_summary.csv", mime="text/csv",
        key=f"video_summary_csv_{item.key}", on_click="ignore", icon=":material/download:",
    )


def render_faces(item: ClipItem, analysis: ClipAnalysis, faces: list[FaceSummary]) -> None:
    """Each face's timeline and the moment each emotion peaked; the longest on screen first."""
    by_face = rows_by_face(analysis.rows)
    durations = analysis.durations
    ordered = sorted(faces, key=lambda summary: -summary.seconds)
    for summary in ordered[:FACES_OPEN]:
        _render_face(item, analysis, summary, by_face, durations)
    if len(ordered) > FACES_OPEN:
        with st.expander(f"{len(ordered) - FACES_OPEN} more face(s), shorter on screen"):
            for summary in ordered[FACES_OPEN:]:
                _render_face(item, analysis, summary, by_face, durations)


def _render_face(item: ClipItem, analysis: ClipAnalysis, summary: FaceSummary, by_face: dict, durations: dict) -> None:
    st.markdown(face_badge(summary), unsafe_allow_html=True)
    st.plotly_chart(
        emotion_timeline_chart(by_face[summary.face], durations, analysis.classes, (analysis.start_time, analysis.end_time)),
        key=f"video_chart_{item.key}_{summary.face}", config={"displayModeBar": False},
    )
    shown = peak_moments(analysis, summary)
    if shown:
        for column, peak in zip(st.columns(len(analysis.classes)), shown, strict=False):
            column.image(peak.thumbnail, caption=f"{peak.emotion} {peak.probability:.0%} at {peak.time:.1f} s", width=96)


def peak_moments(analysis: ClipAnalysis, summary: FaceSummary) -> list[PeakMoment]:
    """The peaks worth a picture: emotions that led at some moment or reached PEAK_SHOWN, highest first."""
    peaks = analysis.peaks.get(summary.face, {}).values()
    return sorted((peak for peak in peaks if summary.shares[peak.emotion] > 0 or peak.probability >= PEAK_SHOWN),
                  key=lambda peak: -peak.probability)
