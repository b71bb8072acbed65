"""Upload: find every face in your photos and read its emotion."""

import streamlit as st

from ui import upload_view
from ui.sidebar import current_choices

st.title("Upload photos", anchor=False)
st.caption(
    "Every face is boxed, numbered and labelled with its most likely emotion; the charts show all "
    "seven probabilities. Results are cached by file content, so nothing is recomputed on a rerun."
)
choices = current_choices()
items = upload_view.collect_inputs()
if not items:
    st.info("Drop one or more photos above, or switch on the camera. Try `sample_images/astronaut.png`.")
    st.stop()

analyses = [upload_view.analyze(item, choices) for item in items]
for item, analysis in zip(items, analyses, strict=True):
    upload_view.render_analysis(item, analysis, choices)
upload_view.render_results_table(analyses)
