"""FER Workbench: the multipage Streamlit app (`streamlit run app.py`)."""

import streamlit as st

from ui.sidebar import render_sidebar

st.set_page_config(page_title="FER Workbench", page_icon=":performing_arts:", layout="wide")

pages = [
    st.Page("pages/1_upload.py", title="Upload", icon=":material/photo_library:", default=True),
    st.Page("pages/5_video_files.py", title="Video files", icon=":material/movie:"),
    st.Page("pages/2_live_webcam.py", title="Live webcam", icon=":material/videocam:"),
    st.Page("pages/3_training_report.py", title="Training report", icon=":material/monitoring:"),
    st.Page("pages/4_dataset.py", title="Dataset & labeling", icon=":material/label:"),
]
navigation = st.navigation(pages)
render_sidebar()
navigation.run()
