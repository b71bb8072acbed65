"""The Training report page's views of one model, of two models side by side, and of an
evaluation run from the page. The numbers come from fer_core.reports; this module lays them out.

Cached readers are keyed by the files' modification times, so a model retrained or evaluated
in place shows its new numbers without a server restart.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from fer_core.card import KERAS_FILE, TFLITE_FILE, ModelCard, load_keras_model
from fer_core.classes import CLASSES
from fer_core.data import CSV_USAGES, load_dataset, load_faces
from fer_core.dataset_records import SPLITS
from fer_core.dataset_store import is_dataset_root
from fer_core.ensemble import is_ensemble, member_histories, summary_rows
from fer_core.errors import FerError
from fer_core.evaluation import TTA_MODES
from fer_core.registry import RegisteredModel
from fer_core.reports import (
    StoredEvaluation,
    calibration,
    confused_pairs,
    evaluate_and_store,
    lineage_curve,
    list_evaluations,
    load_evaluation,
    mistakes,
    model_lineage,
    per_class_rows,
)
from fer_core.zoo import count_flops
from ui import report_charts
from ui.resources import load_classifier, model_checksum

GALLERY_SIZE = 24
FER2013_HELP = (
    "FER2013 is not shipped with the app. Get it as image folders (`train/<class>/*.jpg`, `val/<class>/*.jpg`, "
    "as on Kaggle's *FER-2013* dataset) or as the original `fer2013.csv` (`emotion,pixels,Usage`), then evaluate "
    "the model on that path in the **Evaluate** tab."
)


# --- cached reading ---------------------------------------------------------------------------


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


@st.cache_data(show_spinner=False, max_entries=32)
def _lineage_rows(model_dir: str, _stamp: float) -> tuple[list[dict], list[dict]]:
    steps = model_lineage(model_dir)
    summary = [{"cycle": index, "model": step.name, "epochs": step.epochs_trained, "kept epoch": step.kept_epoch,
                "kept as": step.checkpoint, "created": step.created[:10], "weights sha256": step.sha256[:12],
                "val accuracy": step.metrics.get("val_accuracy"), "notes": step.notes}
               for index, step in enumerate(steps, start=1)]
    return lineage_curve(steps), summary


def lineage(model: RegisteredModel) -> tuple[list[dict], list[dict]]:
    """(curve rows across cycles, one summary row per cycle)."""
    stamp = max(_mtime(model.path / "lineage.json"), _mtime(model.path / "history.csv"), _mtime(model.path / "card.json"))
    return _lineage_rows(str(model.path), stamp)


@st.cache_data(show_spinner=False, max_entries=64)
def _evaluation(model_dir: str, slug: str, _stamp: float) -> StoredEvaluation:
    return load_evaluation(model_dir, slug)


def evaluations(model: RegisteredModel) -> list[StoredEvaluation]:
    return list_evaluations(model.path)


def evaluation(model: RegisteredModel, slug: str) -> StoredEvaluation:
    return _evaluation(str(model.path), slug, _mtime(model.path / "evaluations" / f"{slug}.npz"))


@st.cache_data(show_spinner="Counting the model's FLOPs...", max_entries=32)
def _flops_from_weights(keras_path: str, _checksum: str) -> int:
    return count_flops(load_keras_model(keras_path))


def flops(model: RegisteredModel) -> int | None:
    """From the card; counted from the weights for older cards that lack it."""
    if model.card.flops:
        return model.card.flops
    keras_path = model.path / KERAS_FILE
    return _flops_from_weights(str(keras_path), model_checksum(model)) if keras_path.is_file() else None


@st.cache_data(show_spinner="Reading the faces...", max_entries=16)
def _faces(source: str, ids: tuple[str, ...], size: int) -> list[np.ndarray | None]:
    return load_faces(source, ids, size)


# --- one model ----------------------------------------------------------------------------------


def _size(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB" if path.is_file() else "missing"


def _averaged_span(card: ModelCard) -> str | None:
    """"epochs A-B" when the model serves the mean weights of its last epochs."""
    if card.checkpoint == "average" and card.averaged_epochs:
        return f"epochs {card.best_epoch - card.averaged_epochs + 1}-{card.best_epoch}"
    return None


def _kept_weights(card: ModelCard) -> str:
    """Which weights the model serves: the best or last epoch, or a mean of the last epochs."""
    if span := _averaged_span(card):
        return f"the weights of {span} averaged"
    return f"epoch {card.best_epoch} kept ({card.checkpoint}" + (" validation accuracy)" if card.checkpoint == "best" else " epoch)")


def render_card(model: RegisteredModel) -> None:
    """The card at a glance: headline numbers, then every fact about how the model was made."""
    card, metrics = model.card, model.card.metrics
    by_tta, f1_by_tta = metrics.get("val_accuracy_by_tta") or {}, metrics.get("val_macro_f1_by_tta") or {}
    best = metrics.get("best_tta", "none")
    model_flops = flops(model)
    columns = st.columns(5)
    columns[0].metric("Val, one pass", f"{metrics['val_accuracy']:.1%}" if "val_accuracy" in metrics else "n/a",
                      help="The live webcam's path: one look at each face.")
    if best == "none":
        columns[1].metric("Best TTA", "one pass",
                          help="No test-time augmentation beat one pass on validation: the Upload page uses one pass.")
    else:
        columns[1].metric(f"Val, {best}", f"{by_tta[best]:.1%}" if best in by_tta else "n/a",
                          help="Test-time augmentation chosen on validation; the Upload page uses it.")
    columns[2].metric("Macro-F1", f"{metrics['val_macro_f1']:.3f}" if "val_macro_f1" in metrics else "n/a",
                      help="The mean of the seven classes' F1: rare classes count as much as common ones.")
    columns[3].metric("Parameters", f"{card.parameters / 1e6:.2f} M")
    columns[4].metric("FLOPs a face", f"{model_flops / 1e6:.0f} M" if model_flops else "n/a",
                      help="Floating-point operations for one 48x48 face (a multiply-add counts as 2).")
    facts = {
        "architecture": card.architecture,
        "input": f"{card.input_size}x{card.input_size} {card.color_mode}, face margin {card.face_margin:.0%}",
        "training data": f"{card.train_data} ({card.train_images:,} faces)",
        "validation data": f"{card.val_data} ({card.val_images:,} faces)",
        "created": card.created.replace("T", " "),
    }
    if is_ensemble(card):
        facts["members"] = f"{len(card.members)} networks, probabilities averaged: " + ", ".join(
            member["name"] for member in card.members)
    else:
        facts["epochs"] = f"{card.epochs_trained} trained; {_kept_weights(card)}"
        facts["seconds per epoch"] = (f"{card.seconds_per_epoch:.0f} s (median, on the training machine)"
                                      if card.seconds_per_epoch else "n/a")
    facts |= {
        "files": ", ".join(f"{name} {_size(model.path / name)}" for name in (KERAS_FILE, TFLITE_FILE)
                           if name in card.sha256 or (model.path / name).is_file()) or "n/a",
        "weights sha256": ", ".join(f"{name} {digest[:16]}…" for name, digest in card.sha256.items()) or "n/a",
    }
    if card.teacher:
        facts["teacher"] = f"{card.teacher.get('name', '?')} ({card.teacher.get('tta', '?')} TTA targets, sha256 {str(card.teacher.get('sha256', ''))[:12]}…)"
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.dataframe(pd.DataFrame({"": list(facts), "value": list(facts.values())}), hide_index=True,
                     width="stretch", key="report_facts")
        if card.notes:
            st.caption(card.notes)
    with right:
        if by_tta:
            table = pd.DataFrame({
                "TTA": list(by_tta),
                "accuracy": [100 * value for value in by_tta.values()],
                "macro-F1": [f1_by_tta.get(mode) for mode in by_tta],
            })
            st.markdown("**Validation by test-time augmentation**")
            st.dataframe(table, hide_index=True, width="stretch", key="report_tta",
                         column_config={"accuracy": st.column_config.NumberColumn(format="%.2f%%"),
                                        "macro-F1": st.column_config.NumberColumn(format="%.3f")})
            if not f1_by_tta:
                st.caption("Macro-F1 per TTA mode: evaluate the model again (Evaluate tab) to see it.")


@st.cache_data(show_spinner=False, max_entries=16)
def _member_curves(model_dir: str, _stamp: float) -> dict[str, list[dict]]:
    return member_histories(model_dir)


def render_members(model: RegisteredModel) -> None:
    """An ensemble's networks: what each scores alone, and how each learned."""
    st.dataframe(pd.DataFrame(summary_rows(model.card)), hide_index=True, width="stretch", key="report_members",
                 column_config={name: st.column_config.NumberColumn(format="percent")
                                for name in ("val_accuracy", "val_accuracy_best_tta")})
    curves = {name: rows for name, rows in
              _member_curves(str(model.path), _mtime(model.path / "card.json")).items() if rows}
    if not curves:
        st.info("The members' training histories are not in this folder.", icon=":material/timeline:")
        return
    metric = st.segmented_control("Curve", ["val_accuracy", "val_loss", "accuracy", "loss"], default="val_accuracy",
                                  key="members_metric", format_func=lambda value: value.replace("_", " "))
    st.plotly_chart(report_charts.overlaid_curves(curves, metric or "val_accuracy", axis="epoch"), key="members_curves",
                    config={"displaylogo": False})
    st.caption("Each member's own training; the ensemble itself is not trained, it averages their probabilities.")


def render_lineage_and_curves(model: RegisteredModel) -> None:
    """The chain of training cycles and the learning curve across all of them (an ensemble: its members')."""
    if is_ensemble(model.card):
        render_members(model)
        return
    rows, summary = lineage(model)
    if len(summary) > 1:
        st.markdown("**Lineage**: " + " → ".join(
            f"{row['model']} ({row['epochs']} epochs, kept {row['kept epoch']})" for row in summary))
        with st.expander("Every training cycle", expanded=False):
            st.dataframe(pd.DataFrame(summary), hide_index=True, width="stretch", key="report_lineage",
                         column_config={"val accuracy": st.column_config.NumberColumn(format="percent")})
    if not rows:
        st.info("This model has no training history (`history.csv`).", icon=":material/timeline:")
        return
    span = _averaged_span(model.card)
    kept = [(row["global_epoch"],
             f"kept: {span} averaged" if span and row["cycle"] == len(summary) else
             f"kept: epoch {row['epoch']}" + (f" of cycle {row['cycle']}" if len(summary) > 1 else ""))
            for row in rows if row.get("kept")]
    st.plotly_chart(report_charts.learning_curves(rows, kept=kept), key="report_curves",
                    config={"displaylogo": False})
    if len(summary) > 1:
        st.caption("Epochs run across all cycles. Dotted: an ancestor's epochs after the one the next cycle started from.")


def choose_evaluation(model: RegisteredModel, key: str) -> StoredEvaluation | None:
    """A select box over the model's stored evaluations (validation first); None when it has none."""
    found = evaluations(model)
    if not found:
        st.info("No stored evaluation with per-face predictions for this model yet: run one in the **Evaluate** tab "
                "(or `python -m fer_core evaluate --model ... --store`).", icon=":material/fact_check:")
        return None
    found.sort(key=lambda item: (not item.slug.startswith("val-"), item.report.tta != "none", item.slug))
    slug = st.selectbox("Evaluation", [item.slug for item in found], key=key,
                        format_func=lambda value: next(item.title for item in found if item.slug == value))
    return evaluation(model, slug)


def render_confusion(model: RegisteredModel, chosen: StoredEvaluation) -> None:
    report = chosen.report
    st.caption(f"Accuracy **{report.accuracy:.1%}**, macro-F1 **{report.macro_f1:.3f}** on {report.n_images:,} faces "
               f"({report.data}, TTA {report.tta}).")
    normalized = st.toggle("Row-normalised (share of each true class)", value=True, key="report_normalized")
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.plotly_chart(report_charts.confusion_heatmap(report.confusion_matrix, normalized), key="report_confusion",
                        config={"displaylogo": False})
    with right:
        st.markdown("**Per class**")
        st.dataframe(pd.DataFrame(per_class_rows(report)), hide_index=True, width="stretch", key="report_per_class",
                     column_config={name: st.column_config.NumberColumn(format="%.3f") for name in ("precision", "recall", "f1")})
        pairs = confused_pairs(report.confusion_matrix)
        if pairs:
            st.markdown("**Most-confused pairs**")
            st.plotly_chart(report_charts.confused_pairs_bars(pairs), key="report_pairs", config={"displayModeBar": False})


def render_mistakes(chosen: StoredEvaluation) -> None:
    """A gallery of misclassified faces, most confident mistakes first, filterable by pair."""
    if chosen.probabilities is None or not chosen.ids:
        st.info("This evaluation has no per-face ids, so its faces cannot be shown again.")
        return
    source = chosen.report.data
    if not Path(source).exists():
        st.warning(f"The gallery of mistakes needs the evaluation data, and `{source}` is not on this machine "
                   f"(looked for `{Path(source).resolve()}`). " + FER2013_HELP, icon=":material/folder_off:")
        return
    pairs = confused_pairs(chosen.report.confusion_matrix, top=len(CLASSES) ** 2)
    options = ["all mistakes"] + [f"{pair.true} → {pair.predicted}" for pair in pairs]
    picked = st.selectbox("Show", options, key="report_mistake_pair",
                          format_func=lambda value: value if value == "all mistakes" else
                          f"{value} ({next(p.count for p in pairs if f'{p.true} → {p.predicted}' == value)} faces)")
    true, predicted = (None, None) if picked == "all mistakes" else picked.split(" → ")
    positions = mistakes(chosen, true, predicted)
    shown = positions[:GALLERY_SIZE]
    st.caption(f"{len(positions):,} mistakes; the {len(shown)} the model was most sure of. Caption: true → predicted (confidence).")
    faces = _faces(source, tuple(chosen.ids[index] for index in shown), 96)
    columns = st.columns(8)
    for slot, (index, face) in enumerate(zip(shown, faces, strict=True)):
        with columns[slot % 8]:
            caption = f"{CLASSES[chosen.labels[index]]} → {CLASSES[chosen.predictions[index]]} ({chosen.confidences[index]:.0%})"
            if face is None:
                st.caption(f"missing: {chosen.ids[index]}")
            else:
                st.image(face, caption=caption, width=96)


def render_calibration(chosen: StoredEvaluation) -> None:
    if chosen.probabilities is None:
        st.info("This evaluation has no per-face probabilities.")
        return
    result = calibration(chosen.probabilities, chosen.labels, bins=10)
    left, right = st.columns([3, 1], gap="large")
    with left:
        st.plotly_chart(report_charts.reliability_diagram(result), key="report_reliability", config={"displaylogo": False})
    with right:
        st.metric("Expected calibration error", f"{result.ece:.1%}",
                  help="The gap between confidence and accuracy, averaged over the bins weighted by their faces. 0 is perfect.")
        st.metric("Largest bin gap", f"{result.mce:.1%}")
        mean_confidence = float(chosen.confidences.mean())
        accuracy = float((chosen.predictions == chosen.labels).mean())
        st.caption(f"Mean confidence {mean_confidence:.1%} against accuracy {accuracy:.1%}: the model is "
                   + ("over-confident." if mean_confidence > accuracy + 0.01 else
                      "under-confident." if mean_confidence < accuracy - 0.01 else "well calibrated on average."))


# --- two models ---------------------------------------------------------------------------------


def render_compare(models: list[RegisteredModel], first_name: str) -> None:
    if len(models) < 2:
        st.info("Only one model is registered. Train or register another to compare them side by side "
                "(**Train** tab, or `python -m fer_core models --register RUN`).", icon=":material/compare:")
        return
    names = [model.name for model in models]
    left, right = st.columns(2)
    first_name = left.selectbox("Model A", names, index=names.index(first_name), key="compare_a")
    second_name = right.selectbox("Model B", names, index=next(i for i, name in enumerate(names) if name != first_name),
                                  key="compare_b")
    first, second = (next(model for model in models if model.name == name) for name in (first_name, second_name))
    if first.name == second.name:
        st.warning("Pick two different models.")
        return
    rows = []
    for model in (first, second):
        metrics = model.card.metrics
        best = metrics.get("best_tta", "none")
        model_flops = flops(model)
        rows.append({"model": model.name, "architecture": model.card.architecture,
                     "val accuracy (one pass)": metrics.get("val_accuracy"),
                     "best TTA": best, "val accuracy (best TTA)": (metrics.get("val_accuracy_by_tta") or {}).get(best),
                     "macro-F1": metrics.get("val_macro_f1"), "parameters (M)": model.card.parameters / 1e6,
                     "MFLOPs per face": model_flops / 1e6 if model_flops else None, "epochs": model.card.epochs_trained,
                     "validation data": model.card.val_data})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="compare_table",
                 column_config={name: st.column_config.NumberColumn(format="percent")
                                for name in ("val accuracy (one pass)", "val accuracy (best TTA)")}
                 | {"macro-F1": st.column_config.NumberColumn(format="%.3f"),
                    "parameters (M)": st.column_config.NumberColumn(format="%.2f"),
                    "MFLOPs per face": st.column_config.NumberColumn(format="%.0f")})
    curves = {model.name: lineage(model)[0] for model in (first, second)}
    metric = st.segmented_control("Curve", ["val_accuracy", "val_loss", "accuracy", "loss"], default="val_accuracy",
                                  key="compare_metric", format_func=lambda value: value.replace("_", " "))
    st.plotly_chart(report_charts.overlaid_curves(curves, metric or "val_accuracy"), key="compare_curves",
                    config={"displaylogo": False})
    common = sorted({item.slug for item in evaluations(first)} & {item.slug for item in evaluations(second)},
                    key=lambda slug: (not slug.startswith("val-"), not slug.endswith("-none"), slug))
    if not common:
        st.info("The two models have no evaluation on the same data and TTA yet; evaluate both in the **Evaluate** tab "
                "to compare per-class F1 and confusion matrices.")
        return
    slug = st.selectbox("Compare on", common, key="compare_slug")
    reports = [evaluation(model, slug).report for model in (first, second)]
    st.plotly_chart(report_charts.per_class_f1_bars({model.name: [report.per_class[name]["f1"] for name in CLASSES]
                                                      for model, report in zip((first, second), reports, strict=True)}),
                    key="compare_f1", config={"displayModeBar": False})
    st.plotly_chart(report_charts.confusion_difference(reports[0].confusion_matrix, reports[1].confusion_matrix,
                                                       (first.name, second.name)),
                    key="compare_difference", config={"displaylogo": False})


# --- evaluate from the page ---------------------------------------------------------------------


def render_evaluate(models: list[RegisteredModel], default_name: str) -> None:
    """Evaluate a registered model on a path the user types; the report is stored beside the model."""
    names = [model.name for model in models]
    with st.form("evaluate_form", border=True):
        left, right = st.columns([2, 1])
        name = left.selectbox("Model", names, index=names.index(default_name), key="evaluate_model")
        tta = right.selectbox("Test-time augmentation", ["auto", *TTA_MODES], key="evaluate_tta",
                              help="auto: the mode the model's card found best on validation.")
        path = st.text_input("Data: an image-folder tree `<root>/<class>/*`, a FER2013 CSV, or a custom dataset folder",
                             key="evaluate_path", placeholder="/path/to/fer2013/val or /path/to/fer2013.csv")
        usage = st.multiselect("Rows (CSV Usage) or splits (custom dataset)", [*CSV_USAGES, *SPLITS], key="evaluate_usage",
                               help="Leave empty for an image folder; for a FER2013 CSV pick e.g. PrivateTest.")
        submitted = st.form_submit_button("Evaluate", icon=":material/fact_check:", type="primary")
    if not submitted:
        return
    model = next(model for model in models if model.name == name)
    try:
        if not path.strip():
            raise FerError("type the path of the data to evaluate on")
        data_path = os.path.expanduser(path.strip())
        usages = usage or None
        if usages and not (data_path.lower().endswith(".csv") or is_dataset_root(data_path)):
            raise FerError(f"{data_path}: a Usage or split filter applies to a FER2013 CSV or a custom dataset, not to an image folder")
        with st.spinner(f"Reading {data_path}..."):
            dataset = load_dataset(data_path, usages, image_size=model.card.input_size)
        classifier = load_classifier(str(model.path), model_checksum(model))
        bar = st.progress(0.0, text="Classifying...")

        def progress(done: int, total: int) -> None:
            bar.progress(done / total, text=f"Classified {done:,} of {total:,} faces")

        stored = evaluate_and_store(model.path, dataset, tta, usages, progress=progress, classifier=classifier)
    except FerError as error:
        st.error(str(error), icon=":material/error:")
        return
    bar.empty()
    st.cache_data.clear()
    st.success(f"{model.name}: accuracy **{stored.report.accuracy:.1%}**, macro-F1 {stored.report.macro_f1:.3f} on "
               f"{stored.report.n_images:,} faces (TTA {stored.report.tta}). Stored as `{stored.slug}`; "
               "pick it in the **Model report** tab.", icon=":material/check_circle:")
