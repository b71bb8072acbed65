"""The Upload page's building blocks: collecting files, cached analysis, and rendering.

The work itself (decode, detect, classify, draw) is `fer_core.analysis.analyze_bytes`; this
module caches it by file content + model + detector settings, and lays out the results.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from html import escape

import streamlit as st

from fer_core.analysis import UploadAnalysis, analyze_bytes, annotated_png, content_digest, results_frame
from fer_core.classes import CLASS_COLORS_RGB, CLASSES, class_color_hex
from fer_core.dataset_records import NewFace, Prediction
from fer_core.detection import DetectorSettings
from fer_core.drawing import readable_on
from fer_core.inference import FacePrediction
from fer_core.registry import RegisteredModel
from ui.charts import probability_chart
from ui.dataset_actions import save_faces, saved_face_id
from ui.resources import load_recognizer, model_cache_key
from ui.sidebar import SidebarChoices

LOGGER = logging.getLogger(__name__)
IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif"]
FACES_SHOWN_OPEN = 6  # more faces than this go into a collapsed expander


@dataclass(frozen=True)
class UploadItem:
    """One picture to analyse. `key` is unique on the page even if a file is uploaded twice."""

    name: str
    data: bytes
    digest: str
    key: str
    from_camera: bool = False


def collect_inputs(
    key_prefix: str = "upload", label: str = "Drop photos here (jpg, png, webp, bmp, tiff, gif; several at once)"
) -> list[UploadItem]:
    """The uploader's files plus, when the camera is switched on, the camera photo. `key_prefix`
    keeps the widgets of two pages that use this (Upload, Dataset & labeling) apart."""
    files = st.file_uploader(label, type=IMAGE_TYPES, accept_multiple_files=True, key=f"{key_prefix}_files")
    sources = [(file.name, file.getvalue(), False) for file in files or []]
    if st.toggle("Take a photo with the browser camera", key=f"{key_prefix}_use_camera"):
        photo = st.camera_input("Camera", key=f"{key_prefix}_camera", label_visibility="collapsed")
        if photo is not None:
            data = photo.getvalue()
            sources.append((f"camera-{content_digest(data)[:8]}.jpg", data, True))
    seen: Counter[str] = Counter()
    items = []
    for name, data, from_camera in sources:
        digest = content_digest(data)
        seen[digest] += 1
        items.append(UploadItem(name, data, digest, f"{digest[:16]}_{seen[digest]}", from_camera))
    return items


@st.cache_data(max_entries=64, show_spinner="Finding and classifying faces...")
def _analyze_cached(
    digest: str,
    name: str,
    model_key: str,
    detector: str,
    settings: tuple[float, int, int],
    whole_image: bool,
    _model: RegisteredModel,
    _data: bytes,
) -> UploadAnalysis:
    """Keyed by content digest, file name, model, detector and settings; the bytes themselves
    (underscore) are not hashed again."""
    recognizer = load_recognizer(_model, detector)
    try:
        return analyze_bytes(
            _data, name, recognizer, DetectorSettings(*settings), whole_image=whole_image, digest=digest
        )
    except Exception as error:  # a file must never break the page; the others still run
        LOGGER.exception("analysing %s failed", name)
        problem = f"{name}: could not be analysed ({type(error).__name__}: {error})"
        return UploadAnalysis(name=name, digest=digest, error=problem)


def whole_image_key(item: UploadItem) -> str:
    return f"upload_whole_{item.key}"


def analyze(item: UploadItem, choices: SidebarChoices) -> UploadAnalysis:
    settings = choices.settings
    return _analyze_cached(
        item.digest,
        item.name,
        model_cache_key(choices.model),
        choices.detector,
        (settings.min_confidence, settings.min_face_size, settings.max_faces),
        bool(st.session_state.get(whole_image_key(item), False)),
        choices.model,
        item.data,
    )


def face_badge(face: FacePrediction) -> str:
    """An HTML label '#n emotion NN%' in the emotion's colour (same as on the image)."""
    text_color = "#000" if readable_on(CLASS_COLORS_RGB.get(face.label, (200, 200, 200))) == (0, 0, 0) else "#fff"
    background = class_color_hex(face.label) if face.label in CLASS_COLORS_RGB else "#c8c8c8"
    return (
        f'<span class="fer-face-badge" style="background:{background};color:{text_color};'
        f'padding:2px 10px;border-radius:6px;font-weight:600;white-space:nowrap">#{face.index} {escape(face.label)} '
        f"{face.confidence:.0%}</span>"
    )


def render_face(item: UploadItem, analysis: UploadAnalysis, face: FacePrediction, model_name: str) -> None:
    """Badge and box, then the colour thumbnail beside the 7-class chart, then labelling."""
    box = analysis.original_box(face.box)
    st.markdown(
        f"{face_badge(face)} &nbsp; <small>box {box.x}, {box.y}, {box.width}x{box.height} px</small>",
        unsafe_allow_html=True,
    )
    thumbnail_column, chart_column = st.columns([1, 2], vertical_alignment="center")
    with thumbnail_column:
        st.image(analysis.thumbnails[face.index - 1], width=128)
    with chart_column:
        st.plotly_chart(
            probability_chart(face.probabilities, face.classes),
            key=f"upload_chart_{item.key}_{face.index}",
            config={"displayModeBar": False},
        )
    render_send_to_dataset(item, analysis, face, model_name)


def render_send_to_dataset(item: UploadItem, analysis: UploadAnalysis, face: FacePrediction, model_name: str) -> None:
    """Add the face's colour crop to the custom dataset with the label the user chose; the
    model's prediction is stored beside it, never as the label."""
    key = f"upload_label_{item.key}_{face.index}"
    saved_key = f"upload:{item.digest}:{face.index}"
    saved = saved_face_id(saved_key)
    title = f"In the dataset (#{saved})" if saved is not None else "Add to dataset"
    with st.popover(title, icon=":material/add_photo_alternate:", key=f"{key}_popover"):
        predicted = CLASSES.index(face.label) if face.label in CLASSES else 0
        label = st.selectbox("True emotion", CLASSES, index=predicted, key=key)
        if st.button("Add to the custom dataset", key=f"{key}_send", icon=":material/add_photo_alternate:"):
            new_face = NewFace(
                image=analysis.thumbnails[face.index - 1],
                source="upload",
                label=label,
                prediction=Prediction(face.label, face.confidence, model_name) if face.label in CLASSES else None,
                box=analysis.original_box(face.box),
                origin=item.name,
            )
            save_faces([new_face], [saved_key], f"face #{face.index} of {item.name}")


def render_no_face(item: UploadItem, choices: SidebarChoices) -> None:
    settings = choices.settings
    st.warning(
        f"**No face found** in {item.name}. Try a closer crop around the face, lower the "
        f"*Minimum face size* (now {settings.min_face_size} px) or the *Minimum detection confidence* "
        f"(now {settings.min_confidence:.2f}) in the sidebar, or another face detector. "
        "If the picture already is a tight face crop, classify the whole image as one face:",
        icon=":material/face_retouching_off:",
    )


def render_analysis(item: UploadItem, analysis: UploadAnalysis, choices: SidebarChoices) -> None:
    """One file: its annotated picture beside each face's thumbnail and probability chart."""
    with st.container(border=True):
        st.subheader(item.name, anchor=False)
        if not analysis.ok:
            st.error(analysis.error or f"{item.name}: could not be analysed", icon=":material/broken_image:")
            return
        for note in analysis.notes:
            st.caption(f":material/info: {note}")
        faces = analysis.faces
        whole_toggle = {
            "label": "Classify the whole image as one face",
            "key": whole_image_key(item),
            "help": "For tight face crops that the detector cannot find.",
        }
        if not faces:
            render_no_face(item, choices)
            st.toggle(**whole_toggle)
            return
        picture_column, faces_column = st.columns([3, 2], gap="medium")
        with picture_column:
            summary = ", ".join(f"#{face.index} {face.label} {face.confidence:.0%}" for face in faces)
            kind = "whole image as one face" if analysis.whole_image else f"{len(faces)} face(s)"
            st.image(analysis.preview_jpeg, caption=f"{kind}: {summary}", output_format="JPEG")
            width, height = analysis.original_size or (0, 0)
            st.download_button(
                "Annotated image (PNG)",
                data=lambda: annotated_png(item.data, item.name, faces),
                file_name=f"{item.name.rsplit('.', 1)[0]}_annotated.png",
                mime="image/png",
                key=f"upload_png_{item.key}",
                on_click="ignore",
                icon=":material/download:",
                help=f"Full resolution ({width}x{height} px)",
            )
            st.toggle(**whole_toggle)
        with faces_column:
            many = len(faces) > FACES_SHOWN_OPEN
            with st.expander(f"All {len(faces)} faces", expanded=True) if many else st.container():
                for face in faces:
                    render_face(item, analysis, face, choices.model.name)


def render_results_table(analyses: list[UploadAnalysis]) -> None:
    """All faces of all files in one table, with a CSV download."""
    table = results_frame(analyses)
    st.subheader("All results", anchor=False)
    failed = sum(not analysis.ok for analysis in analyses)
    st.caption(
        f"{len(table)} face(s) in {len(analyses) - failed} image(s)"
        + (f"; {failed} file(s) could not be read" if failed else "")
        + ". Boxes are in the uploaded file's pixels."
    )
    if table.empty:
        return
    classes = table.columns[table.columns.get_loc("confidence") + 1 :]
    columns = {"confidence": st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0)}
    columns.update({name: st.column_config.NumberColumn(format="percent") for name in classes})
    st.dataframe(table, hide_index=True, column_config=columns, key="upload_table")
    st.download_button(
        "Results (CSV)",
        data=table.to_csv(index=False),
        file_name="emotions.csv",
        mime="text/csv",
        key="upload_csv",
        on_click="ignore",
        icon=":material/download:",
    )
