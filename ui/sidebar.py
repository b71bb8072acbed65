"""The sidebar every page shares: active model, face detector, detection settings.

`app.py` renders it once per run (before the page), and pages read the result with
`current_choices()`; widget keys keep the choices across page switches.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from fer_core.detection import DEFAULT_DETECTOR, DETECTOR_LABELS, DetectorSettings, list_detectors
from fer_core.registry import RegisteredModel
from ui.resources import registry

CHOICES_KEY = "sidebar_choices"


@dataclass(frozen=True)
class SidebarChoices:
    model: RegisteredModel  # photos, the dataset's suggestions, reports
    detector: str
    settings: DetectorSettings
    live_model: RegisteredModel | None = None  # the webcam's (a fast one); None: same as `model`

    @property
    def webcam_model(self) -> RegisteredModel:
        return self.live_model or self.model


def _accuracy_caption(model: RegisteredModel) -> str:
    metrics = model.card.metrics
    parts = []
    if "val_accuracy" in metrics:
        parts.append(f"validation accuracy **{metrics['val_accuracy']:.1%}** (one pass, as on the webcam)")
    best_tta = metrics.get("best_tta", "none")
    by_tta = metrics.get("val_accuracy_by_tta") or {}
    if best_tta != "none" and best_tta in by_tta:
        parts.append(f"**{by_tta[best_tta]:.1%}** with {best_tta} test-time augmentation (as on photos)")
    if "test_accuracy" in metrics:
        parts.append(f"test accuracy **{metrics['test_accuracy']:.1%}**")
    if "val_macro_f1" in metrics:
        parts.append(f"macro-F1 {metrics['val_macro_f1']:.3f}")
    return ", ".join(parts) or "not evaluated yet"


def render_sidebar() -> SidebarChoices | None:
    """Draw the shared controls; None (with an explanation) when no model is usable."""
    models, problems = registry().scan()
    with st.sidebar:
        st.header("Model")
        if not models:
            st.error("No usable model in `models/`. Train one: `python -m fer_core train ...` (see README).")
            for name, problem in problems.items():
                st.caption(f"{name}: {problem}")
            st.session_state.pop(CHOICES_KEY, None)
            return None
        names = [model.name for model in models]
        if st.session_state.get("sidebar_model") not in names:
            st.session_state["sidebar_model"] = names[0]  # the default model comes first
        chosen = st.selectbox(
            "Active model",
            names,
            key="sidebar_model",
            format_func=lambda name: next(model.label() for model in models if model.name == name),
        )
        model = next(model for model in models if model.name == chosen)
        st.caption(f"{model.card.architecture}, {model.card.parameters:,} parameters, {_accuracy_caption(model)}")
        if st.session_state.get("sidebar_live_model") not in names:
            st.session_state["sidebar_live_model"] = registry().live_default().name
        live_name = st.selectbox(
            "Live webcam model",
            names,
            key="sidebar_live_model",
            format_func=lambda name: next(model.label() for model in models if model.name == name),
            help="Video needs a fast model; photos use the active model above.",
        )
        live_model = next(model for model in models if model.name == live_name)
        if live_model.card.flops:
            st.caption(f"{live_model.card.flops / 1e6:.0f} MFLOPs a face"
                       + (f", one pass {live_model.card.metrics['val_accuracy']:.1%} on validation"
                          if "val_accuracy" in live_model.card.metrics else ""))
        st.header("Face detection")
        detector = st.selectbox(
            "Detector",
            list_detectors(),
            index=list_detectors().index(DEFAULT_DETECTOR),
            key="sidebar_detector",
            format_func=lambda name: DETECTOR_LABELS.get(name, name),
        )
        min_face = st.slider("Minimum face size (px)", 8, 200, 20, step=2, key="sidebar_min_face")
        confidence = st.slider("Minimum detection confidence", 0.1, 0.95, 0.5, step=0.05, key="sidebar_confidence")
    choices = SidebarChoices(model, detector, DetectorSettings(min_confidence=confidence, min_face_size=min_face), live_model)
    st.session_state[CHOICES_KEY] = choices
    return choices


def ensure_app_navigation() -> None:
    """Give a page the shared sidebar when app.py did not run before it.

    Streamlit 1.67 runs a page on its own, without app.py, when a deep link (e.g. /live_webcam)
    is the first request of a server process (a legacy mode kept for apps with a `pages/`
    folder; AppTest's reruns run that way too). The page then draws the sidebar itself, with the
    same widget keys, so the choices carry over either way.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if getattr(PagesManager, "uses_pages_directory", False):
        st.set_page_config(page_title="FER Workbench", page_icon=":performing_arts:", layout="wide")
        render_sidebar()


def current_choices() -> SidebarChoices:
    """The choices made in this run's sidebar; stops the page with a message when there are none."""
    ensure_app_navigation()
    choices = st.session_state.get(CHOICES_KEY)
    if choices is None:
        st.info("Choose a model in the sidebar first (no usable model was found).")
        st.stop()
    return choices
