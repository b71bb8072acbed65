"""The Dataset page's Label view: one face large, a button and a key per class, auto-advance.

Every action is a button with a keyboard `shortcut` (1-7 the classes, 0 clears the label, Left
and Right move, U undoes, Delete deletes). Its callback runs before the view is drawn again and
acts through `fer_core.labeling.LabelWalk`, so the next face is what the redraw shows. The view
is a fragment: a key press reruns only it, not the sidebar or the rest of the page, and it never
loads or calls a model (the faces carry the prediction made when they were added).
"""

from __future__ import annotations

import base64

import streamlit as st

from fer_core.classes import CLASSES
from fer_core.dataset_records import FaceRecord
from fer_core.dataset_store import QUEUE_KINDS, DatasetStore
from fer_core.labeling import QUEUE_TITLES, LabelWalk
from ui.dataset_actions import session_actor
from ui.resources import dataset_store

WALKS_KEY = "label_walks"  # queue kind -> this session's LabelWalk
QUEUE_KEY = "label_queue"
FACE_SIDE = 288  # the face is shown this large (48x48 crops: 6x, pixels kept crisp)
NAV_BUTTONS = (  # (action, label, shortcut, icon)
    ("back", "Previous", "Left", ":material/arrow_back:"),
    ("skip", "Skip", "Right", ":material/arrow_forward:"),
    ("clear", "Unlabel", "0", ":material/label_off:"),
    ("undo", "Undo", "U", ":material/undo:"),
    ("delete", "Delete", "Delete", ":material/delete:"),
)


def _walk(kind: str) -> LabelWalk:
    walks: dict[str, LabelWalk] = st.session_state.setdefault(WALKS_KEY, {})
    if kind not in walks:
        walks[kind] = LabelWalk(kind)
    return walks[kind]


def _act(kind: str, action: str, label: str | None = None) -> None:
    """A button's callback (runs before the redraw, so the redraw shows the next face)."""
    walk, store, actor = _walk(kind), dataset_store(), session_actor()
    if action == "label":
        walk.label(store, label, actor)
    elif action == "clear":
        walk.label(store, None, actor)
    elif action == "delete":
        walk.delete(store, actor)
    elif action == "undo":
        walk.undo(store, actor)
    elif action == "back":
        walk.back(store)
    elif action == "skip":
        walk.skip(store)
    elif action == "restart":
        walk.restart()


def _position_text(walk: LabelWalk, store: DatasetStore, face: FaceRecord) -> str:
    position = walk.position(store)
    title = QUEUE_TITLES[walk.kind]
    if position.inside:
        return f"**{position.number} of {position.total}** {title}"
    state = f"labelled {face.label}" if face.label else "unlabelled"
    return f"not in this queue any more ({state}); **{position.total}** {title} in the queue"


def face_html(store: DatasetStore, face: FaceRecord, side: int = FACE_SIDE) -> str:
    """The stored PNG itself, inline (no decode, no re-encode, no second request), enlarged by
    the browser: a whole factor with `pixelated` rendering keeps a 48x48 crop's pixels crisp."""
    data = base64.b64encode(store.path_of(face).read_bytes()).decode("ascii")
    longest = max(face.width, face.height)
    factor = max(1, side // longest) if longest < side else side / longest
    width, height = round(face.width * factor), round(face.height * factor)
    rendering = "pixelated" if factor >= 2 else "auto"
    return (f'<img class="fer-label-face" alt="face #{face.id}" src="data:image/png;base64,{data}" '
            f'width="{width}" height="{height}" '
            # the size in CSS too: Streamlit's markdown drops an <img>'s width/height attributes
            f'style="width:{width}px;height:{height}px;max-width:100%;object-fit:contain;'
            f'image-rendering:{rendering};border-radius:4px">')


def _render_face(store: DatasetStore, face: FaceRecord) -> None:
    picture, details = st.columns([3, 2], gap="medium")
    with picture:
        try:
            st.markdown(face_html(store, face), unsafe_allow_html=True)
        except OSError:
            st.error(f"face {face.id}: its image file {face.file} is missing; run "
                     "`python -m fer_core dataset check --repair`", icon=":material/broken_image:")
    with details:
        st.markdown(f"### Face #{face.id}")
        st.markdown(f"Label: **{face.label or 'unlabelled'}**")
        if face.predicted_label:
            st.markdown(f"Model: **{face.predicted_label}** {face.confidence or 0:.0%} ({face.model_name or 'unknown model'})")
        else:
            st.markdown("Model: no prediction stored")
        st.caption(f"{face.source}, {face.origin or 'no origin'}; {face.split} split; "
                   f"added {face.created[:16].replace('T', ' ')} UTC; {face.width}x{face.height} px")


def _render_buttons(kind: str, face: FaceRecord | None) -> None:
    columns = st.columns(len(CLASSES))
    for number, (column, name) in enumerate(zip(columns, CLASSES, strict=True), start=1):
        suggested = face is not None and face.predicted_label == name
        column.button(name, key=f"label_class_{name}", shortcut=str(number), width="stretch",
                      type="primary" if suggested else "secondary",
                      icon=":material/check:" if face is not None and face.label == name else None,
                      help="the model's suggestion" if suggested else None,
                      disabled=face is None, on_click=_act, args=(kind, "label", name))
    columns = st.columns(len(NAV_BUTTONS))
    for column, (action, label, shortcut, icon) in zip(columns, NAV_BUTTONS, strict=True):
        column.button(label, key=f"label_{action}", shortcut=shortcut, icon=icon, width="stretch",
                      disabled=face is None and action not in ("undo", "back"), on_click=_act, args=(kind, action))


@st.fragment
def render_label() -> None:
    """The queue picker, the face shown, what was done last, and the buttons."""
    store = dataset_store()
    kind = st.segmented_control("Queue", QUEUE_KINDS, default=QUEUE_KINDS[0], required=True, key=QUEUE_KEY,
                                format_func=lambda value: QUEUE_TITLES[value].capitalize())
    walk = _walk(kind or QUEUE_KINDS[0])
    face = walk.current(store)
    total, unlabelled = store.count(), store.count(label="unlabelled")
    summary = f"Labelled **{total - unlabelled}** of {total} faces"
    if face is not None:
        summary += f" · this face: {_position_text(walk, store, face)}"
    st.markdown(summary)
    if walk.last is not None:
        if walk.last.ok:
            st.success(walk.last.text, icon=":material/check_circle:")
        else:
            st.warning(walk.last.text, icon=":material/warning:")
    if face is None:
        st.info(f"Nothing (more) to review in the queue *{QUEUE_TITLES[walk.kind]}*. Faces you skipped come back "
                "with *Start over*; new faces come from Collect, the Upload page and webcam snapshots.",
                icon=":material/task_alt:")
        st.button("Start over", key="label_restart", icon=":material/replay:", on_click=_act, args=(walk.kind, "restart"))
    else:
        _render_face(store, face)
    _render_buttons(walk.kind, face)
    st.caption(f"Keys: **1-{len(CLASSES)}** label ({', '.join(CLASSES)}) and go on, **0** unlabel, "
               "**Left / Right** previous / next, **U** undo your last change, **Delete** delete (restorable in Browse). "
               "The highlighted class is the model's suggestion.")
