"""The ceiling for bench_webcam_browser.py: the Live webcam page's WebRTC stream (same camera
constraints, offline ICE) sent back unchanged, with no processing and no live panel.

    streamlit run benchmarks/passthrough_app.py
"""

import streamlit_webrtc  # noqa: F401  isort: skip (before anything else: see ui/__init__.py)
import streamlit as st
from streamlit_webrtc import WebRtcMode, webrtc_streamer

from ui.rtc import MEDIA_CONSTRAINTS  # no TensorFlow on this page

st.set_page_config(page_title="Pass-through", layout="wide")
st.title("Pass-through stream", anchor=False)
video_column, _ = st.columns([3, 2], gap="medium")  # the same video width as the Live webcam page
with video_column:
    webrtc_streamer(
        key="passthrough",
        mode=WebRtcMode.SENDRECV,
        rtc_configuration={"iceServers": []},
        media_stream_constraints=MEDIA_CONSTRAINTS,
    )
