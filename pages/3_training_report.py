"""Training report: how the active model was trained and how well it does (coming soon)."""

import streamlit as st

from ui.sidebar import current_choices

st.title("Training report", anchor=False)
st.info(
    "Coming soon: learning curves, the confusion matrix, per-class precision/recall and "
    "example mistakes for the model chosen in the sidebar.",
    icon=":material/construction:",
)
model = current_choices().model
st.caption(f"Active model: {model.label()}")
st.json(model.card.metrics, expanded=False)
