"""UI pieces of the Live webcam page: controls, the per-session frame processor, the live
panel beside the video, connection messages and snapshots.

The frame work itself lives in `fer_core.video.FrameProcessor`; everything here runs on the
script thread and talks to the processor only through its thread-safe methods.
"""

from __future__ import annotations

import time

import streamlit as st

from fer_core.dataset_records import NewFace, Prediction
from fer_core.detection import DetectorSettings
from fer_core.inference import EmotionRecognizer
from fer_core.tracking import TrackerSettings
from fer_core.video import DEFAULT_BUDGET_MS, FrameProcessor, Snapshot, StreamSettings, stats_path_from_env
from ui import live_panel as panel_drawing
from ui.dataset_actions import save_faces

PROCESSOR_KEY = "webcam_processor"
SNAPSHOT_KEY = "webcam_snapshot"
SIGNALLING_SINCE_KEY = "webcam_signalling_since"
PANEL_REFRESH_KEY = "webcam_panel_refresh"
# The panel's default redraw interval. Each redraw is a Streamlit rerun that holds the page's main thread
# (up to 60-130 ms on the 2-core machine), during which the page misses video-frame callbacks: with 3 faces,
# 87% of the pass-through's callbacks at 1 s, 88-93% at 2 s (bench_webcam_browser, noisy). The video itself
# carries the live boxes, labels and bars on every frame; the user can pick 1 s.
PANEL_REFRESH_SECONDS = 2.0
PANEL_REFRESH_CHOICES = (1.0, 2.0, 3.0, 5.0)
TIMELINE_SECONDS = 20.0
CONNECT_PATIENCE_SECONDS = 12.0  # warn when the connection is still not up after this long
CHARTS_SHOWN = 3  # probability charts in the live panel (the first tracked faces)

# Shown by the component itself (inside its frame) when the browser refuses or lacks a camera.
TRANSLATIONS = {
    "media_api_not_available": (
        "This browser cannot open a camera on this page: camera access needs HTTPS or localhost "
        "(open the app at http://localhost:8501, or serve it over HTTPS)."
    ),
    "device_ask_permission": "Allow this page to use your camera (see the browser's prompt).",
    "device_not_available": "No camera was found. Connect a camera, close other apps that use it, then click Start again.",
    "device_access_denied": (
        "Camera access was denied. Allow the camera for this site (the camera icon in the address bar), "
        "then click Start again."
    ),
}


def render_controls(detection: DetectorSettings) -> StreamSettings:
    """The page's own controls (model and detector come from the shared sidebar)."""
    left, right = st.columns(2)
    with left:
        smoothing = st.slider(
            "Label smoothing",
            0.0,
            0.95,
            0.6,
            step=0.05,
            key="webcam_smoothing",
            help="How much each face's probabilities follow their recent past (exponential moving average). "
            "0 shows every frame's raw prediction; higher is calmer but reacts later.",
        )
        every_frame = st.toggle(
            "Classify every face on every frame",
            value=False,
            key="webcam_every_frame",
            help="Off: detection, tracking and drawing run on every frame, and faces are classified within the "
            "frame budget below (in turns when there are many, so the video stays fluid on a slow CPU). "
            "On: every face on every frame, whatever it costs.",
        )
        budget = st.slider(
            "Frame budget (ms)",
            5,
            60,
            int(DEFAULT_BUDGET_MS),
            step=5,
            key="webcam_budget",
            disabled=every_frame,
            help="Processing time per frame that classification fits into; a 30 fps stream has 33 ms a frame, "
            "shared with the video codecs.",
        )
    with right:
        mirror = st.toggle("Mirror view", value=True, key="webcam_mirror", help="Show the video like a mirror (as most webcam apps do).")
        show_bars = st.toggle("Probability bars on the video", value=True, key="webcam_show_bars")
        show_status = st.toggle("FPS and latency on the video", value=True, key="webcam_show_status")
        st.select_slider(
            "Live panel refresh (s)",
            options=PANEL_REFRESH_CHOICES,
            value=PANEL_REFRESH_SECONDS,
            key=PANEL_REFRESH_KEY,
            format_func=lambda seconds: f"{seconds:g}",
            help="How often the panel beside the video redraws its numbers, bars and timeline. Each redraw "
            "costs the browser some work, which on a 2-core machine costs video frames; the boxes and labels "
            "on the video itself follow every frame.",
        )
    return StreamSettings(
        detection=DetectorSettings(detection.min_confidence, detection.min_face_size, max_faces=10),
        tracking=TrackerSettings(smoothing=smoothing),
        budget_ms=None if every_frame else float(budget),
        mirror=mirror,
        show_bars=show_bars,
        show_status=show_status,
    )


def session_processor(recognizer: EmotionRecognizer, settings: StreamSettings) -> FrameProcessor:
    """This session's processor (kept across reruns), updated to the current choices.

    NOTE: the frame callback runs on streamlit-webrtc's worker thread, where `st.session_state`
    is not available; it closes over this object instead, and the script thread hands it new
    settings and models through its thread-safe setters.
    """
    processor = st.session_state.get(PROCESSOR_KEY)
    if processor is None:
        processor = FrameProcessor(recognizer, settings, stats_path=stats_path_from_env())
        st.session_state[PROCESSOR_KEY] = processor
    else:
        processor.set_recognizer(recognizer)
        processor.update_settings(settings)
    return processor


def render_live_panel(processor: FrameProcessor, playing: bool, signalling: bool) -> None:
    """The panel beside the video; redraws itself every `PANEL_REFRESH_KEY` seconds while the stream runs."""
    if signalling and not playing:
        st.session_state.setdefault(SIGNALLING_SINCE_KEY, time.monotonic())
    else:
        st.session_state.pop(SIGNALLING_SINCE_KEY, None)

    refresh = float(st.session_state.get(PANEL_REFRESH_KEY, PANEL_REFRESH_SECONDS))

    @st.fragment(run_every=refresh if (playing or signalling) else None)
    def live_panel() -> None:
        if not playing:
            since = st.session_state.get(SIGNALLING_SINCE_KEY)
            if signalling and since is not None and time.monotonic() - since > CONNECT_PATIENCE_SECONDS:
                st.warning(
                    f"The video connection has not come up after {time.monotonic() - since:.0f} s. "
                    "Locally, reload the page and click Start again. On a remote deployment the browser "
                    "and the server need a STUN/TURN server: set `ice_servers` in `.streamlit/secrets.toml` "
                    "or the `FER_ICE_SERVERS` environment variable (see the README).",
                    icon=":material/wifi_off:",
                )
            elif signalling:
                st.info("Connecting to the camera stream...", icon=":material/hourglass_top:")
            else:
                st.info("Click **Start** under the video to turn the camera on.", icon=":material/videocam:")
            return
        state = processor.live_state()
        if state.stats.error:
            st.error(f"Frames are shown unprocessed because processing failed: {state.stats.error}")
        fps, latency, faces = st.columns(3)
        fps.metric("Stream", f"{state.stats.fps:.0f} fps")  # short: wider values are cut off
        latency.metric("Processing", f"{state.stats.latency_ms:.0f} ms")
        faces.metric("Faces", len(state.tracks))
        if state.stats.frames == 0:
            st.caption("Waiting for the first frame...")
        elif not state.tracks:
            st.caption("No face in view. Face the camera in good light.")
        if state.stats.budget_limited and processor.settings.budget_ms is not None:
            st.caption(f":material/timer: To keep the video fluid within {processor.settings.budget_ms:.0f} ms a frame: "
                       f"{state.stats.budget_note()} (a face costs {state.stats.face_ms:.1f} ms here, detection "
                       f"{state.stats.detect_ms:.1f} ms). Switch on *Classify every face on every frame* to pin it.")
        bars = "".join(panel_drawing.face_bars_html(track, state.classes) for track in state.tracks[:CHARTS_SHOWN])
        if len(state.tracks) > CHARTS_SHOWN:
            bars += "<div>" + ", ".join(f"#{track.track_id} {track.label} {track.confidence:.0%}" for track in state.tracks[CHARTS_SHOWN:]) + "</div>"
        if bars:
            st.html(bars)
        st.markdown("**Dominant emotion over time**")
        st.html(panel_drawing.timeline_html(processor.timeline(TIMELINE_SECONDS), time.monotonic(), TIMELINE_SECONDS)
                + panel_drawing.legend_html(state.classes))

    live_panel()


def render_snapshot(processor: FrameProcessor, playing: bool) -> None:
    """Keep the current frame's faces with their labels, and add them to the custom dataset."""
    if st.button("Snapshot faces", icon=":material/photo_camera:", key="webcam_snapshot_button"):
        if not playing:
            st.warning("Start the camera first: a snapshot keeps the faces of the current frame.")
        else:
            snapshot = processor.take_snapshot(timeout=2.0)
            if snapshot is None:
                st.warning("No video frame arrived in 2 seconds; is the stream running?")
            elif not snapshot.faces:
                st.warning("No face in the current frame.")
            else:
                st.session_state[SNAPSHOT_KEY] = snapshot
    snapshot: Snapshot | None = st.session_state.get(SNAPSHOT_KEY)
    if snapshot is None:
        return
    taken = time.strftime("%H:%M:%S", time.localtime(snapshot.taken_at))
    st.markdown(f"**Snapshot {taken}** ({snapshot.model_name}): set the true emotion of each face, then add them to the dataset.")
    columns = st.columns(max(4, len(snapshot.faces)))
    labels = []
    for column, face in zip(columns, snapshot.faces, strict=False):  # at least 4 columns, so a few faces stay small
        with column:
            st.image(face.face_rgb, caption=f"#{face.track_id} {face.label} {face.confidence:.0%}", width=120)
            labels.append(
                st.selectbox(
                    "True emotion",
                    snapshot.classes,
                    index=snapshot.classes.index(face.label),
                    key=f"webcam_snapshot_label_{snapshot.taken_at}_{face.track_id}",
                )
            )
    if st.button("Add to the custom dataset", icon=":material/add_photo_alternate:", key="webcam_snapshot_send"):
        origin = f"webcam-{time.strftime('%Y%m%d-%H%M%S', time.localtime(snapshot.taken_at))}"
        faces = [
            NewFace(
                image=face.face_rgb,
                source="webcam",
                label=label,
                prediction=Prediction(face.label, face.confidence, snapshot.model_name),
                box=face.box,
                origin=f"{origin} #{face.track_id}",
            )
            for face, label in zip(snapshot.faces, labels, strict=True)
        ]
        keys = [f"webcam:{snapshot.taken_at}:{face.track_id}" for face in snapshot.faces]
        save_faces(faces, keys, f"{len(faces)} face(s) of the snapshot")
