"""Dataset & labeling: build a custom dataset from your own faces (coming soon)."""

import streamlit as st

from ui.dataset_inbox import inbox
from ui.sidebar import ensure_app_navigation

ensure_app_navigation()
st.title("Dataset & labeling", anchor=False)
st.info(
    "Coming soon: browse and relabel the custom dataset, and fine-tune a model on it.",
    icon=":material/construction:",
)
queued = inbox()
st.write(f"{len(queued)} face(s) sent from the Upload page are waiting to be saved.")
if queued:
    captions = [f"{face.label} ({face.source} #{face.face_index})" for face in queued]
    st.image([face.thumbnail for face in queued], caption=captions, width=96)
