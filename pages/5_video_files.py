"""Video files: every face in a recorded clip, tracked, with its emotion over time."""

import streamlit as st

from ui import video_view
from ui.sidebar import current_choices

st.title("Video files", anchor=False)
st.caption(
    "Every face is tracked through the clip with a number that stays with it, and its emotion is read on "
    "every frame (or every Nth) and smoothed as on the webcam. Clips are analysed in the background, one "
    "after the other; finished analyses are kept for this session."
)
choices = current_choices()
items = video_view.collect_clips()
options = video_view.render_options(choices.settings)
st.caption(f"Model **{choices.model.name}**, detector **{choices.detector}** (change them in the sidebar).")
if not items:
    st.info("Drop one or more video files above. A phone video, a recorded call or a film scene all work.")
    st.stop()

jobs = video_view.jobs_for(items, choices, options)
video_view.render_progress(jobs)
for item, job in zip(items, jobs, strict=True):
    video_view.render_job(item, job, choices)
