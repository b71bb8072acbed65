"""Live webcam: every face boxed, tracked and labelled with its emotion in real time."""

import streamlit as st
from streamlit_webrtc import WebRtcMode, webrtc_streamer

from ui import webcam
from ui.resources import load_recognizer
from ui.rtc import MEDIA_CONSTRAINTS, rtc_configuration
from ui.sidebar import current_choices

st.title("Live webcam", anchor=False)
st.caption(
    "Each face gets a number that follows it, its most likely emotion and a bar per emotion. "
    "Labels are smoothed over time so they do not flicker. Nothing leaves this machine."
)
choices = current_choices()
recognizer = load_recognizer(choices.webcam_model, choices.detector)

video_column, panel_column = st.columns([3, 2], gap="medium")
with panel_column:
    with st.expander("Video settings", expanded=False, icon=":material/tune:"):
        settings = webcam.render_controls(choices.settings)
processor = webcam.session_processor(recognizer, settings)

with video_column:
    context = webrtc_streamer(
        key="live_webcam",
        mode=WebRtcMode.SENDRECV,
        rtc_configuration=rtc_configuration(),
        media_stream_constraints=MEDIA_CONSTRAINTS,
        video_frame_callback=processor.process_video_frame,
        on_video_ended=processor.reset,
        async_processing=True,
        translations=webcam.TRANSLATIONS,
    )
    st.caption(f"Model **{choices.webcam_model.name}**, detector **{choices.detector}** (change them in the sidebar).")
    webcam.render_snapshot(processor, playing=context.state.playing)

with panel_column:
    webcam.render_live_panel(processor, playing=context.state.playing, signalling=context.state.signalling)
