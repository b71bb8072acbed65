"""The Dataset page's Collect, Browse, Balance and Export & retrain views (Label is ui/labeling.py).

The work is fer_core's (dataset_store, dataset_io); this module lays it out and caches the one
expensive step, finding and classifying the faces of an uploaded picture, by file content.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pandas as pd
import streamlit as st

from fer_core.classes import CLASSES
from fer_core.dataset_io import FaceCandidate, ImportReport, export_bytes, picture_candidates
from fer_core.dataset_records import MIN_TRAIN_PER_CLASS, SOURCES, SPLITS, UNLABELLED, FaceRecord, NewFace
from fer_core.dataset_store import DatasetStore
from fer_core.detection import DetectorSettings
from fer_core.drawing import fit_face
from fer_core.errors import FerError
from fer_core.image_io import decode_image
from fer_core.registry import RegisteredModel
from ui import charts, upload_view
from ui.dataset_actions import save_faces, saved_face_id, session_actor
from ui.resources import dataset_store, load_recognizer, model_cache_key
from ui.sidebar import SidebarChoices

THUMB_SIDE = 112  # candidate and grid thumbnails (48x48 crops: 2x, crisp)
GRID_COLUMNS = 6
BROWSE_PAGE_SIZE = 24
ALL = "all"
IMPORT_REPORT_KEY = "collect_import_report"
BROWSE_MESSAGE_KEY = "browse_message"
REPORT_LINES = 200  # import report lines shown at most


# --- Collect --------------------------------------------------------------------------------------


@dataclass
class PictureFaces:
    """The faces found in one uploaded picture, or why there are none."""

    candidates: list[FaceCandidate] = field(default_factory=list)
    error: str | None = None
    notes: list[str] = field(default_factory=list)


@st.cache_data(max_entries=64, show_spinner="Finding and classifying faces...")
def _picture_faces(
    digest: str, name: str, model_key: str, detector: str, settings: tuple[float, int, int], _model: RegisteredModel, _data: bytes
) -> PictureFaces:
    """Keyed by content digest, file name, model, detector and settings (the bytes are not hashed again)."""
    try:
        decoded = decode_image(_data, name=name)
        recognizer = load_recognizer(_model, detector)
        candidates = picture_candidates(recognizer, decoded.rgb, DetectorSettings(*settings), scale=decoded.scale)
    except FerError as error:  # not an image, corrupt, a bomb: this file only
        return PictureFaces(error=str(error))
    return PictureFaces(candidates, notes=list(decoded.notes))


def _label_choice(value: str) -> str | None:
    return None if value == UNLABELLED else value


def render_collect(store: DatasetStore, choices: SidebarChoices) -> None:
    """Photos and crops through the sidebar's detector and model, then imports."""
    st.subheader("Photos and face crops", anchor=False)
    st.caption(f"Every face the sidebar's detector (**{choices.detector}**) finds becomes a candidate, pre-labelled with "
               f"**{choices.model.name}**'s prediction; pictures up to 128 px are face crops and are kept whole. "
               "Correct each label (or choose *unlabelled*), untick faces you do not want, then add them.")
    items = upload_view.collect_inputs("collect", "Drop photos or face crops (jpg, png, webp, bmp, tiff, gif; several at once)")
    if items:
        _render_candidates(items, choices)
    st.subheader("Import a folder or a ZIP", anchor=False)
    _render_import(store, choices)


def _render_candidates(items: list[upload_view.UploadItem], choices: SidebarChoices) -> None:
    settings = choices.settings
    found: list[tuple[upload_view.UploadItem, int, FaceCandidate]] = []
    faces_in: dict[str, int] = {}  # item key -> faces found in that picture
    for item in items:
        faces = _picture_faces(item.digest, item.name, model_cache_key(choices.model), choices.detector,
                               (settings.min_confidence, settings.min_face_size, settings.max_faces), choices.model, item.data)
        if faces.error:
            st.error(faces.error, icon=":material/broken_image:")
            continue
        for note in faces.notes:
            st.caption(f":material/info: {item.name}: {note}")
        if not faces.candidates:
            st.warning(f"**No face found** in {item.name}. Lower the *Minimum face size* or the *Minimum detection "
                       "confidence* in the sidebar, or upload a tight crop of the face (up to 128 px it is taken whole).",
                       icon=":material/face_retouching_off:")
        found += [(item, number, candidate) for number, candidate in enumerate(faces.candidates, start=1)]
        faces_in[item.key] = len(faces.candidates)
    if not found:
        return
    options = [*CLASSES, UNLABELLED]
    chosen: list[tuple[NewFace, str]] = []
    for start in range(0, len(found), GRID_COLUMNS):
        for column, (item, number, candidate) in zip(st.columns(GRID_COLUMNS), found[start : start + GRID_COLUMNS], strict=False):
            key = f"{item.key}_{number}"
            prediction = candidate.prediction
            with column:
                st.image(fit_face(candidate.image, THUMB_SIDE),
                         caption=f"{item.name} #{number}: {prediction.label} {prediction.confidence:.0%}")
                label = st.selectbox("Label", options, index=options.index(prediction.label), key=f"collect_label_{key}")
                saved = saved_face_id(f"collect:{item.digest}:{number}")
                keep = st.checkbox("in the dataset" if saved is None else f"in the dataset (#{saved})",
                                   value=saved is None, key=f"collect_keep_{key}")
            if keep:
                origin = item.name if faces_in[item.key] == 1 else f"{item.name} #{number}"
                face = NewFace(candidate.image, "camera" if item.from_camera else "upload", _label_choice(label),
                               prediction, candidate.box, origin=origin)
                chosen.append((face, f"collect:{item.digest}:{number}"))
    if st.button(f"Add {len(chosen)} face(s) to the dataset", key="collect_add", type="primary",
                 icon=":material/add_photo_alternate:", disabled=not chosen):
        save_faces([face for face, _ in chosen], [key for _, key in chosen], f"{len(chosen)} face(s)")


def _render_import(store: DatasetStore, choices: SidebarChoices) -> None:
    st.caption(f"A folder tree `<class>/<images>` (class folders {', '.join(CLASSES)}, or `{UNLABELLED}/` for faces "
               "without a label), a ZIP of one, a ZIP exported from this page, or a FER2013 CSV. Small images are face "
               "crops; a larger photo in a class folder gives its largest face that label. Exact duplicates are reported, "
               "not added; the whole import is one undo step.")
    left, right = st.columns(2, gap="medium")
    with left:
        archive = st.file_uploader("ZIP of class folders (or an export)", type=["zip"], key="collect_zip",
                                   help="A ZIP larger than the upload limit can be imported by its path on the server (right).")
        if st.button("Import the ZIP", key="collect_import_zip", icon=":material/upload_file:", disabled=archive is None):
            with tempfile.TemporaryDirectory(prefix="fer_import_") as folder:
                path = Path(folder) / "upload.zip"
                path.write_bytes(archive.getvalue())
                _run_import(store, path, archive.name, choices)
    with right:
        typed = st.text_input("Or a folder, ZIP or CSV on the server", key="collect_server_path", placeholder="/path/to/faces")
        if st.button("Import from the server", key="collect_import_path", icon=":material/folder_open:"):
            if not typed.strip():
                st.error("Type the path of a folder, ZIP or CSV on the server first.", icon=":material/error:")
            else:
                path = Path(typed.strip()).expanduser()
                _run_import(store, path, str(path), choices)
    report: ImportReport | None = st.session_state.get(IMPORT_REPORT_KEY)
    if report is not None:
        _render_report(report)


def _run_import(store: DatasetStore, path: Path, shown_as: str, choices: SidebarChoices) -> None:
    try:
        with st.spinner(f"Importing {shown_as}..."):
            recognizer = load_recognizer(choices.model, choices.detector)
            report = store.import_path(path, recognizer, session_actor(), settings=choices.settings)
    except FerError as error:
        st.session_state.pop(IMPORT_REPORT_KEY, None)
        st.error(f"Nothing was imported: {str(error).replace(str(path), shown_as)}", icon=":material/error:")
        return
    report.source = shown_as
    st.session_state[IMPORT_REPORT_KEY] = report


def _render_report(report: ImportReport) -> None:
    summary = report.summary()
    (st.success if report.added else st.info)(summary, icon=":material/inventory_2:")
    rows = [{"file": origin, "result": f"duplicate of face #{face_id}"} for origin, face_id in report.duplicates]
    rows += [{"file": origin, "result": f"skipped: {reason}"} for origin, reason in report.skipped]
    if rows:
        shown = rows[:REPORT_LINES]
        st.dataframe(pd.DataFrame(shown), hide_index=True, key="collect_import_table")
        if len(rows) > REPORT_LINES:
            st.caption(f"... and {len(rows) - REPORT_LINES} more.")


# --- Browse -----------------------------------------------------------------------------------------


def _day_range(value) -> tuple[datetime | None, datetime | None]:
    """A date_input range as [start, end) in UTC; a missing end means the start day only."""
    days = [day for day in (value or ()) if isinstance(day, date)]
    if not days:
        return None, None
    start = datetime.combine(days[0], time.min, tzinfo=UTC)
    end = datetime.combine(days[-1], time.min, tzinfo=UTC) + timedelta(days=1)
    return start, end


def _picked(ids: list[int]) -> list[int]:
    return [face_id for face_id in ids if st.session_state.get(f"browse_pick_{face_id}")]


def _bulk(action: str, page_ids: list[int]) -> None:
    """The bulk buttons' callback. It reads the ticks and the new label as they are when the button
    is clicked (not as they were drawn); what it did is shown on the next draw."""
    store, actor, ids = dataset_store(), session_actor(), _picked(page_ids)
    try:
        if action == "label":
            label = _label_choice(st.session_state.get("browse_new_label", UNLABELLED))
            changed = store.bulk_set_label(ids, label, actor)
            text = f"relabelled {changed} of {len(ids)} face(s) {label or UNLABELLED}"
        elif action == "delete":
            changed = store.bulk_delete(ids, actor)
            text = f"deleted {changed} face(s)"
        elif action == "restore":
            changed = store.bulk_restore(ids, actor)
            text = f"restored {changed} face(s)"
        else:  # undo
            result = store.undo(actor)
            text = "nothing to undo" if result is None else result.description
            changed = 0
    except FerError as error:
        st.session_state[BROWSE_MESSAGE_KEY] = (False, str(error))
        return
    if action != "undo" and changed:
        text += "; Undo reverts it"
    st.session_state[BROWSE_MESSAGE_KEY] = (True, text[0].upper() + text[1:])
    _pick_all(ids, False)


def _pick_all(ids: list[int], value: bool) -> None:
    for face_id in ids:
        st.session_state[f"browse_pick_{face_id}"] = value


def render_browse(store: DatasetStore) -> None:
    """Filters, a page of thumbnails with a checkbox each, and bulk actions on the ticked ones."""
    columns = st.columns([1, 1, 1, 2, 1], vertical_alignment="bottom")
    label = columns[0].selectbox("Label", [ALL, *CLASSES, UNLABELLED], key="browse_label")
    source = columns[1].selectbox("Source", [ALL, *SOURCES], key="browse_source")
    split = columns[2].selectbox("Split", [ALL, *SPLITS], key="browse_split")
    dates = columns[3].date_input("Added between (UTC)", value=[], key="browse_dates")
    deleted = columns[4].toggle("Deleted faces", key="browse_deleted", help="Show only deleted faces, to restore them.")
    created_from, created_to = _day_range(dates)
    filters = {"label": None if label == ALL else label, "source": None if source == ALL else source,
               "split": None if split == ALL else split, "created_from": created_from, "created_to": created_to,
               "deleted_only": deleted}
    try:
        total = store.count(**filters)
    except FerError as error:
        st.error(str(error), icon=":material/error:")
        return
    pages = max(1, math.ceil(total / BROWSE_PAGE_SIZE))
    if st.session_state.get("browse_page", 1) > pages:
        st.session_state["browse_page"] = pages
    top = st.columns([1, 4], vertical_alignment="bottom")
    page = top[0].number_input(f"Page (of {pages})", min_value=1, max_value=pages, step=1, key="browse_page")
    records = store.list_faces(**filters, order="created", descending=True, limit=BROWSE_PAGE_SIZE,
                               offset=(int(page) - 1) * BROWSE_PAGE_SIZE)
    top[1].markdown(f"**{total}** {'deleted ' if deleted else ''}face(s) match; newest first.")
    message = st.session_state.pop(BROWSE_MESSAGE_KEY, None)
    if message is not None:
        (st.success if message[0] else st.warning)(message[1])
    if not records:
        st.info("No face matches these filters." if total == 0 else "This page is empty.", icon=":material/filter_alt_off:")
        _render_bulk_bar([], [], deleted)
        return
    ids = [record.id for record in records]
    for start in range(0, len(records), GRID_COLUMNS):
        for column, record in zip(st.columns(GRID_COLUMNS), records[start : start + GRID_COLUMNS], strict=False):
            with column:
                _render_thumbnail(store, record)
    _render_bulk_bar(ids, _picked(ids), deleted)


def _render_thumbnail(store: DatasetStore, record: FaceRecord) -> None:
    try:
        st.image(fit_face(store.load_image(record), THUMB_SIDE), width=THUMB_SIDE)
    except FerError:
        st.caption(":material/broken_image: image missing")
    predicted = f"model {record.predicted_label} {record.confidence or 0:.0%}" if record.predicted_label else "no prediction"
    st.checkbox(f"#{record.id} **{record.label or UNLABELLED}**", key=f"browse_pick_{record.id}", help=f"{record.source}: {record.origin}")
    st.caption(f"{predicted}; {record.split}")


def _render_bulk_bar(ids: list[int], selected: list[int], deleted: bool) -> None:
    with st.container(border=True):
        columns = st.columns([1, 1, 1.2, 1.3, 1.2, 1], vertical_alignment="bottom")
        columns[0].button("Select page", key="browse_select_all", on_click=_pick_all, args=(ids, True), disabled=not ids)
        columns[1].button("Clear", key="browse_select_none", on_click=_pick_all, args=(ids, False), disabled=not selected)
        if deleted:
            columns[4].button(f"Restore {len(selected)}", key="browse_restore", icon=":material/restore_from_trash:",
                              disabled=not selected, on_click=_bulk, args=("restore", ids))
        else:
            columns[2].selectbox("New label", [*CLASSES, UNLABELLED], key="browse_new_label")
            columns[3].button(f"Relabel {len(selected)}", key="browse_relabel", icon=":material/label:", type="primary",
                              disabled=not selected, on_click=_bulk, args=("label", ids))
            columns[4].button(f"Delete {len(selected)}", key="browse_delete", icon=":material/delete:",
                              disabled=not selected, on_click=_bulk, args=("delete", ids))
        columns[5].button("Undo", key="browse_undo", icon=":material/undo:", on_click=_bulk, args=("undo", []),
                          help="Undo your last change (a bulk action is one step).")


# --- Balance -------------------------------------------------------------------------------------


def render_balance(store: DatasetStore) -> None:
    """Labelled faces per class (chart), per split and per source (tables), and what is missing."""
    stats = store.stats()
    cells = st.columns(4)
    cells[0].metric("Faces", stats.total)
    cells[1].metric("Labelled", stats.labelled)
    cells[2].metric("Unlabelled", stats.unlabelled)
    cells[3].metric("Deleted", stats.deleted, help="Restorable in Browse (toggle *Deleted faces*).")
    small = stats.too_small()
    if small:
        counts = ", ".join(f"{label} ({stats.by_label_split[label]['train']})" for label in small)
        st.warning(f"**Too small to train:** {counts}. Each class needs at least {MIN_TRAIN_PER_CLASS} labelled faces "
                   "in the train split (about 80% of the faces land there, fixed by each face's pixels).",
                   icon=":material/warning:")
    st.plotly_chart(charts.class_counts_chart(stats.by_label), key="balance_chart", config={"displayModeBar": False})
    left, right = st.columns([3, 2], gap="medium")
    with left:
        st.markdown("**Labelled faces per class and split**")
        table = pd.DataFrame.from_dict(stats.by_label_split, orient="index")[list(SPLITS)]
        table["all"] = table.sum(axis=1)
        table.loc["all classes"] = table.sum(axis=0)
        st.dataframe(table, key="balance_splits")
    with right:
        st.markdown("**Faces per source** (labelled or not)")
        st.dataframe(pd.DataFrame({"faces": stats.by_source}), key="balance_sources")


# --- Export & retrain --------------------------------------------------------------------------------


def render_export(store: DatasetStore) -> None:
    """Both exports, made when the button is clicked (not on every rerun)."""
    stats = store.stats()
    stamp = datetime.now().strftime("%Y%m%d_%H%M")
    left, right = st.columns(2, gap="medium")
    with left:
        st.download_button("Dataset ZIP (folders + manifest.csv)", data=lambda: export_bytes(store, ".zip"),
                           file_name=f"custom_dataset_{stamp}.zip", mime="application/zip", key="export_zip",
                           on_click="ignore", icon=":material/download:", disabled=stats.total == 0)
        st.caption(f"{stats.total} face(s) as `<label>/<id>.png` plus manifest.csv (label, source, prediction, box, split, "
                   "origin, notes); importing it again keeps everything.")
    with right:
        st.download_button("FER2013-style CSV", data=lambda: export_bytes(store, ".csv"), file_name=f"custom_dataset_{stamp}.csv",
                           mime="text/csv", key="export_csv", on_click="ignore", icon=":material/download:",
                           disabled=stats.labelled == 0)
        st.caption(f"{stats.labelled} labelled face(s) as `emotion,pixels,Usage` (48x48 gray; Usage from the split)."
                   + ("" if stats.labelled else " Label some faces first."))


def custom_test_table(models: list[RegisteredModel]) -> pd.DataFrame:
    """One row per registered model evaluated on a custom dataset's test split after a retrain."""
    rows = []
    for model in models:
        result = model.card.metrics.get("custom_test")
        if not isinstance(result, dict):
            continue
        previous = result.get("previous") or {}
        accuracy, before = result.get("accuracy"), previous.get("accuracy")
        rows.append({
            "model": model.name, "test faces": result.get("faces"), "accuracy": accuracy, "macro-F1": result.get("macro_f1"),
            "started from": previous.get("model", ""), "its accuracy": before,
            "change": accuracy - before if isinstance(accuracy, float | int) and isinstance(before, float | int) else None,
            "dataset": result.get("data", ""),
        })
    return pd.DataFrame(rows)


def render_retrain_summary(store: DatasetStore, models: list[RegisteredModel]) -> None:
    """Earlier retrains compared on the dataset's test split, and whether this dataset is ready."""
    table = custom_test_table(models)
    if table.empty:
        st.caption("No model has been retrained on a custom dataset yet.")
    else:
        st.markdown("**Retrained models on their dataset's test split** (one pass, beside the model they started from)")
        percent = st.column_config.NumberColumn(format="percent")
        st.dataframe(table, hide_index=True, key="retrain_results",
                     column_config={"accuracy": percent, "its accuracy": percent, "change": percent,
                                    "macro-F1": st.column_config.NumberColumn(format="%.3f")})
    problems = store.stats().training_problems()
    if problems:
        st.warning("**This dataset is not ready to train on yet:** " + "; ".join(problems)
                   + ". Label more faces (Collect and Label tabs) before fine-tuning; a training on too few faces "
                   "learns nothing useful.", icon=":material/warning:")
