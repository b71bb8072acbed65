"""Training from the browser: the new-run form, the live monitor of the running training, and
the list of past runs (resume, make default). Shared by the Training report page and the
Dataset & labeling page's retrain section.

The work runs in a background process (fer_core.runs): this module only starts it, reads its
files and sends a cancel. The monitor is a fragment that refreshes itself once a second while a
training runs, so the rest of the page, and every other user, is never blocked by it.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime

import pandas as pd
import streamlit as st

from fer_core.data import CSV_USAGES
from fer_core.dataset_store import is_dataset_root
from fer_core.ensemble import is_ensemble
from fer_core.errors import FerError
from fer_core.registry import RegisteredModel
from fer_core.runs import (
    RunInfo,
    active_run,
    cancel_run,
    check_training_request,
    config_for_resume,
    default_runs_dir,
    list_runs,
    start_training,
)
from fer_core.training import TrainConfig
from fer_core.zoo import get_spec, list_models
from ui import report_charts
from ui.resources import registry

MONITOR_REFRESH_SECONDS = 1.0
STATE_ICONS = {
    "starting": ":material/hourglass_top:", "running": ":material/sync:", "finished": ":material/check_circle:",
    "cancelled": ":material/cancel:", "failed": ":material/error:", "stopped": ":material/power_off:",
    "unknown": ":material/help:",
}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s"


# --- the running training ------------------------------------------------------------------------


def render_monitor(key: str) -> None:
    """The running training's progress, refreshed every second while it runs (nothing otherwise)."""
    running = active_run(default_runs_dir())
    if running is None:
        return

    @st.fragment(run_every=MONITOR_REFRESH_SECONDS)
    def monitor() -> None:
        run = active_run(default_runs_dir())
        if run is None:  # it just ended: redraw the whole page (run list, registry, sidebar)
            st.rerun(scope="app")
        render_progress(run, key)

    monitor()


def render_progress(run: RunInfo, key: str) -> None:
    """Phase, epoch and batch bars, current metrics, time, growing curves, log tail, cancel."""
    progress = run.progress
    with st.container(border=True):
        title, cancel = st.columns([5, 1], vertical_alignment="center")
        title.markdown(f"{STATE_ICONS.get(run.state, '')} **Training `{run.name}`** "
                       f"({run.config.get('architecture', '?')}): {progress.get('phase', run.state)}"
                       + (f", {progress['detail']}" if progress.get("detail") else ""))
        if cancel.button("Cancel", key=f"{key}_cancel_{run.name}", icon=":material/stop_circle:",
                         help="Stops between two batches; the last finished epoch is kept and can be resumed."):
            try:
                cancel_run(run.path)
                st.toast(f"Cancelling {run.name}: it stops after the current batch.")
            except FerError as error:
                st.error(str(error))
        epochs, epoch = progress.get("epochs") or run.config.get("epochs") or 1, progress.get("epoch") or 0
        steps, batch = progress.get("steps") or 0, progress.get("batch") or 0
        if progress.get("phase") == "teacher predictions" and progress.get("fraction") is not None:
            st.progress(float(progress["fraction"]), text=f"Teacher predictions: {progress.get('detail', '')}")
        st.progress(min(1.0, max(0, (epoch - (0 if batch >= steps and steps else 1))) / epochs),
                    text=f"Epoch {epoch} of {epochs}")
        if steps:
            st.progress(min(1.0, batch / steps), text=f"Batch {batch} of {steps}")
        last = progress.get("last_epoch") or {}
        cells = st.columns(5)
        cells[0].metric("Loss (this epoch)", f"{progress['loss']:.3f}" if progress.get("loss") is not None else "n/a")
        cells[1].metric("Accuracy (this epoch)", f"{progress['accuracy']:.1%}" if progress.get("accuracy") is not None else "n/a")
        cells[2].metric("Last val accuracy", f"{last['val_accuracy']:.1%}" if last.get("val_accuracy") is not None else "n/a")
        cells[3].metric("Elapsed", _duration(progress.get("elapsed_seconds")))
        cells[4].metric("Time left", _duration(progress.get("eta_seconds")) if progress.get("eta_seconds") is not None else "n/a")
        history = run.history()
        if history:
            st.plotly_chart(report_charts.learning_curves(history), key=f"{key}_live_curves_{run.name}",
                            config={"displayModeBar": False})
        with st.expander("Log", expanded=False):
            st.code(run.log_tail(30) or "(nothing yet)", language=None)


# --- past runs ------------------------------------------------------------------------------------


def render_runs(key: str, models: list[RegisteredModel]) -> None:
    """Every run folder with its state; resume a stopped one, make a finished one the default."""
    runs = list_runs(default_runs_dir())
    if not runs:
        st.caption(f"No training runs yet in `{default_runs_dir()}`.")
        return
    table = pd.DataFrame([{
        "run": run.name, "state": run.state, "architecture": run.config.get("architecture", ""),
        "epochs": f"{run.epochs_done} / {run.config.get('epochs', '?')}",
        "best val accuracy": max((row["val_accuracy"] for row in run.history()), default=None),
        "model": run.registered or "", "started": run.started.replace("T", " ")[:19],
    } for run in runs])
    st.dataframe(table, hide_index=True, width="stretch", key=f"{key}_runs_table",
                 column_config={"best val accuracy": st.column_config.NumberColumn(format="percent")})
    name = st.selectbox("Run", [run.name for run in runs], key=f"{key}_run_pick")
    run = next(run for run in runs if run.name == name)
    st.markdown(f"{STATE_ICONS.get(run.state, '')} **{run.name}**: {run.state}" + (f", {run.message}" if run.message else ""))
    if run.state == "failed":
        st.code(run.log_tail(20) or "(no log)", language=None)
    if run.resumable and run.state in ("cancelled", "stopped", "failed"):
        left, right = st.columns([1, 2], vertical_alignment="bottom")
        epochs = left.number_input("Epochs in all", min_value=max(1, run.epochs_done), max_value=10_000,
                                   value=max(int(run.config.get("epochs", 1)), run.epochs_done), key=f"{key}_resume_epochs")
        if right.button("Resume", key=f"{key}_resume", icon=":material/play_arrow:", type="primary",
                        help="Continues from the last finished epoch, then finalizes and registers the model."):
            try:
                start_training(config_for_resume(run, int(epochs)), default_runs_dir(), resume=True, register=run.name)
            except FerError as error:
                st.error(str(error))
            else:
                st.rerun()
    if run.registered:
        registered = next((model for model in models if model.name == run.registered), None)
        if registered is not None and not registered.is_default:
            if st.button(f"Make {run.registered} the default model", key=f"{key}_default", icon=":material/star:"):
                registry().set_default(run.registered)
                st.toast(f"{run.registered} is now the default model.")
                st.rerun()
        elif registered is not None:
            st.caption(f"{run.registered} is the default model.")


# --- a new run ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FormPreset:
    """What a page fills in for the user (the Dataset page: its dataset, fine-tune the active model)."""

    data_path: str = ""
    init_from: str | None = None  # registered model name
    name_prefix: str = "run"
    epochs: int = 20


def _data_source(label: str, key: str, preset_path: str, default_usage: str, placeholder: str) -> tuple[str, list[str]]:
    """A data path, plus the CSV Usage values when it is a FER2013 CSV (the kind is read from the path:
    a .csv file, a custom dataset folder holding index.sqlite, or an image-folder tree)."""
    path = st.text_input(label, value=preset_path, placeholder=placeholder, key=key).strip()
    usage = [default_usage]
    if path.lower().endswith(".csv"):
        usage = st.multiselect(f"{label}: rows with Usage", CSV_USAGES, default=[default_usage], key=f"{key}_usage")
    elif path and is_dataset_root(path):
        st.caption(":material/label: a custom dataset: its labelled faces of the "
                   + ("train" if default_usage == "Training" else "val") + " split")
    return path, usage


def render_train_form(key: str, models: list[RegisteredModel], preset: FormPreset = FormPreset()) -> None:
    """The controls that start a background training (checked before anything starts)."""
    running = active_run(default_runs_dir())
    if running is not None:
        st.info(f"`{running.name}` is training now; one training runs at a time on this machine. "
                "Wait for it to end or cancel it above.", icon=":material/hourglass_top:")
        return
    names = [model.name for model in models]
    by_name = {model.name: model for model in models}
    with st.container(border=True):
        top = st.columns(3)
        run_name = top[0].text_input("Run name", value=f"{preset.name_prefix}_{datetime.now():%Y%m%d_%H%M}", key=f"{key}_name",
                                     help="Letters, digits, '_', '-', '.': the folder under runs/ and the new model's name.")
        # An ensemble is not one network: a fine-tune starts from one of the registered networks
        # (for an ensemble preset, the most accurate of them).
        networks = [model for model in models if not is_ensemble(model.card)]
        start_options = ["from scratch", *(model.name for model in networks)]
        start_preset = preset.init_from
        if preset.init_from in by_name and is_ensemble(by_name[preset.init_from].card) and networks:
            start_preset = max(networks, key=lambda model: model.val_accuracy or 0.0).name
        start = top[1].selectbox("Start", start_options,
                                 index=start_options.index(start_preset) if start_preset in start_options else 0,
                                 key=f"{key}_start", format_func=lambda value: value if value == "from scratch" else f"fine-tune {value}",
                                 help="Fine-tuning starts from a registered network's weights (same architecture; not an ensemble).")
        initial = by_name.get(start)
        architectures = list_models()
        architecture = top[2].selectbox(
            "Architecture", architectures,
            index=architectures.index(initial.card.architecture if initial else "resnet_fer_small"),
            key=f"{key}_arch_{start}", disabled=initial is not None,
            help="A fine-tune keeps the architecture of the model it starts from.")
        st.caption(get_spec(architecture).description)
        data_path, train_usage = _data_source(
            "Training data: an image-folder tree <root>/<class>/*, a FER2013 CSV, or a custom dataset folder",
            f"{key}_train", preset.data_path, "Training", "/path/to/fer2013/train")
        mix = st.text_input("Also train on (optional): another folder, CSV or dataset, e.g. FER2013's train folder",
                            key=f"{key}_mix").strip()
        hold_out = st.toggle("Hold out a fraction of the training data for validation", key=f"{key}_hold_out",
                             help="Instead of separate validation data. A custom dataset uses its val split when no validation path is given.")
        fraction, val_path, val_usage = 0.1, "", ["PublicTest"]
        if hold_out:
            fraction = st.slider("Held-out fraction", 0.05, 0.3, 0.1, 0.05, key=f"{key}_fraction")
        else:
            val_path, val_usage = _data_source("Validation data (same kinds)", f"{key}_val", "", "PublicTest",
                                               "/path/to/fer2013/val")
        row = st.columns(6)
        epochs = row[0].number_input("Epochs", 1, 1000, preset.epochs, key=f"{key}_epochs")
        batch = row[1].number_input("Batch (0: default)", 0, 1024, 0, key=f"{key}_batch")
        rate = row[2].number_input("Peak LR (0: default)", 0.0, 1.0, 0.0, step=0.005, format="%.4f", key=f"{key}_lr")
        mixup = row[3].number_input("Mixup alpha", 0.0, 1.0, 0.0, step=0.1, key=f"{key}_mixup", help="0 turns mixup off; 0.2 is typical.")
        patience = row[4].number_input("Early-stop patience", 1, 1000, 20, key=f"{key}_patience")
        augment = row[5].toggle("Augmentation", value=True, key=f"{key}_augment",
                                help="Flips, rotations, shifts, zoom and random erasing.")
        photo = st.toggle("Photo and webcam conditions", value=False, key=f"{key}_photo_augment", disabled=not augment,
                          help="Also jitter exposure, contrast, brightness, sensor noise, blur and JPEG quality, "
                               "for faces that come from photos and webcams rather than FER2013.")
        teacher = st.selectbox("Distil from (optional)", ["none", *names], key=f"{key}_teacher",
                               help="Train on a registered model's test-time-augmented predictions as soft targets.")
        buttons = st.columns([1, 1, 4])
        check = buttons[0].button("Check the data", key=f"{key}_check", icon=":material/fact_check:")
        submitted = buttons[1].button("Start training", key=f"{key}_submit", icon=":material/model_training:", type="primary")
    if not (check or submitted):
        return
    config = TrainConfig(
        architecture=architecture,
        train_data=data_path,
        out=str(default_runs_dir() / run_name.strip()),  # the name is checked as typed before anything starts
        val_data=val_path or None,
        epochs=int(epochs), batch_size=int(batch) or None, learning_rate=float(rate) or None,
        augment=bool(augment), photo_augment=bool(augment and photo), mixup=float(mixup), patience=int(patience),
        train_usage=train_usage or ["Training"], val_usage=val_usage or ["PublicTest"], val_fraction=float(fraction),
        init_from=str(initial.path) if initial else None,
        teacher=str(by_name[teacher].path) if teacher in by_name else None,
        mix_data=[mix] if mix else [],
    )
    try:
        if not config.train_data:
            raise FerError("type the path of the training data")
        if not hold_out and not config.val_data and not is_dataset_root(config.train_data):
            raise FerError("type the path of the validation data, or hold out a fraction of the training data")
        counts = check_training_request(config, default_runs_dir(), run_name=run_name.strip())
    except FerError as error:
        st.error(str(error), icon=":material/error:")
        return
    summary = "; ".join(f"{role}: {sum(per_class.values()):,} faces ({', '.join(f'{name} {count}' for name, count in per_class.items())})"
                        for role, per_class in counts.items())
    if check:
        st.success(f"Ready to train. {summary}", icon=":material/check_circle:")
        return
    try:
        run = start_training(config, default_runs_dir(), register=run_name.strip())
    except FerError as error:
        st.error(str(error), icon=":material/error:")
        return
    st.session_state[f"{key}_started"] = (run.name, time.time())
    st.rerun()


def render_training(key: str, models: list[RegisteredModel], preset: FormPreset = FormPreset()) -> None:
    """Monitor, new-run form and past runs, in that order."""
    started = st.session_state.pop(f"{key}_started", None)
    if started:
        st.success(f"Training `{started[0]}` started in the background.", icon=":material/rocket_launch:")
    render_monitor(key)
    st.subheader("Start a training", anchor=False)
    st.caption("It runs in the background as `python -m fer_core train ...`: you can leave this page, reload it or "
               "close the browser; come back to see it. When it ends it is finalized and appears in the model list.")
    render_train_form(key, models, preset)
    st.subheader("Runs", anchor=False)
    render_runs(key, models)
