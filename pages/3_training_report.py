"""Training report: how each model learned and how well it does; evaluate and train from here."""

import streamlit as st

from fer_core.ensemble import is_ensemble
from ui import training_report, training_runs
from ui.resources import registry
from ui.sidebar import current_choices

st.title("Training report", anchor=False)
choices = current_choices()
models = registry().list()
names = [model.name for model in models]
picked = st.selectbox("Model", names, index=names.index(choices.model.name) if choices.model.name in names else 0,
                      key="report_model", format_func=lambda name: next(model.label() for model in models if model.name == name))
model = next(model for model in models if model.name == picked)

report, compare, evaluate, train = st.tabs(
    ["Model report", "Compare models", "Evaluate", "Train"], key="report_tab", on_change="rerun", bind="query-params"
)
if report.open:
    with report:
        training_report.render_card(model)
        st.subheader("Members and how they learned" if is_ensemble(model.card) else "Learning curves", anchor=False)
        training_report.render_lineage_and_curves(model)
        st.subheader("Evaluation", anchor=False)
        chosen = training_report.choose_evaluation(model, key="report_evaluation")
        if chosen is not None:
            training_report.render_confusion(model, chosen)
            st.subheader("Mistakes", anchor=False)
            training_report.render_mistakes(chosen)
            st.subheader("Calibration", anchor=False)
            training_report.render_calibration(chosen)
if compare.open:
    with compare:
        training_report.render_compare(models, picked)
if evaluate.open:
    with evaluate:
        training_report.render_evaluate(models, picked)
if train.open:
    with train:
        training_runs.render_training("train", models)
