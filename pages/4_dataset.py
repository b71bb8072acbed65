"""Dataset & labeling: collect your own faces, label them fast, check the balance, export and retrain."""

import streamlit as st

from fer_core.errors import FerError
from ui import dataset_view, labeling, training_runs
from ui.resources import dataset_store, registry
from ui.sidebar import current_choices

st.title("Dataset & labeling", anchor=False)
choices = current_choices()
try:
    store = dataset_store()
except FerError as error:
    st.error(f"The custom dataset cannot be opened: {error}. Set `FER_DATASET_DIR` to a folder this app can write.",
             icon=":material/error:")
    st.stop()
st.caption(f"Your own faces in `{store.root}` (the command line's `python -m fer_core dataset ...` sees the same). "
           "Faces added on the Upload and Live webcam pages land here too.")

collect, label, browse, balance, export = st.tabs(
    ["Collect", "Label", "Browse", "Balance", "Export & retrain"], key="dataset_tab", on_change="rerun", bind="query-params"
)
if collect.open:
    with collect:
        dataset_view.render_collect(store, choices)
if label.open:
    with label:
        labeling.render_label()
if browse.open:
    with browse:
        dataset_view.render_browse(store)
if balance.open:
    with balance:
        dataset_view.render_balance(store)
if export.open:
    with export:
        st.subheader("Export", anchor=False)
        dataset_view.render_export(store)
        st.subheader("Retrain on this dataset", anchor=False)
        models = registry().list()
        dataset_view.render_retrain_summary(store, models)
        preset = training_runs.FormPreset(data_path=str(store.root), init_from=choices.model.name, name_prefix="custom", epochs=10)
        training_runs.render_training("dataset", models, preset)
