"""The Live webcam panel's pictures as small HTML strings.

Why not plotly: the panel refreshes while the video plays, and on a machine where the browser
and the server share two cores, redrawing two plotly figures twice a second cost half the video's
frame rate (issue 11). A few styled divs and spans are a few hundred bytes each and cost the
browser next to nothing to replace. Pure functions of the panel's state, so they are
tested without a browser.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from fer_core.classes import CLASS_COLORS_RGB, class_color_hex
from fer_core.video import TimelinePoint, TrackState

ROW_HEIGHT = 16  # px per face in the timeline strip
LABEL_WIDTH = 24  # px for the face's number left of its strip


def _color(label: str) -> str:
    return class_color_hex(label) if label in CLASS_COLORS_RGB else "#888888"


def face_bars_html(track: TrackState, classes: Sequence[str]) -> str:
    """One face: '#1 happy 87%' and a bar per emotion (widths in %, the top one outlined)."""
    top = max(range(len(classes)), key=lambda index: track.probabilities[index])
    rows = "".join(
        f'<div style="display:flex;align-items:center;gap:6px;height:16px;font-size:12px">'
        f'<span style="width:58px;text-align:right;color:#555">{escape(name)}</span>'
        f'<span style="flex:1;background:#eef0f2;border-radius:3px;height:10px;overflow:hidden">'
        f'<span style="display:block;height:100%;width:{100 * value:.0f}%;background:{_color(name)};'
        f'{"outline:1.5px solid #222;" if index == top else ""}"></span></span>'
        f'<span style="width:34px;text-align:right;font-variant-numeric:tabular-nums">{value:.0%}</span></div>'
        for index, (name, value) in enumerate(zip(classes, track.probabilities, strict=True))
    )
    return (
        f'<div class="fer-live-face" style="margin:2px 0 10px 0">'
        f'<div style="font-weight:600;margin-bottom:3px">'
        f'<span style="display:inline-block;width:10px;height:10px;border-radius:2px;background:{_color(track.label)};'
        f'margin-right:6px"></span>#{track.track_id} {escape(track.label)} {track.confidence:.0%}</div>{rows}</div>'
    )


def timeline_html(points: Sequence[TimelinePoint], now: float, seconds: float, interval: float = 0.2) -> str:
    """Each tracked face's dominant emotion over the last `seconds`: one row per face, runs of
    the same emotion merged into one coloured segment (its tooltip says what and when), newest on
    the right. Plain positioned spans, not SVG: Streamlit's `st.html` sanitiser drops `<svg>`
    (the panel showed the legend alone), while styled spans pass."""
    tracks = sorted({point.track_id for point in points})
    rows: list[str] = []
    for track_id in tracks:
        own = [point for point in points if point.track_id == track_id and point.seconds >= now - seconds]
        runs: list[list[TimelinePoint]] = []
        for point in own:
            if runs and runs[-1][-1].label == point.label and point.seconds - runs[-1][-1].seconds <= 3 * interval:
                runs[-1].append(point)
            else:
                runs.append([point])
        segments = []
        for run in runs:
            left = max(0.0, 100.0 * (run[0].seconds - (now - seconds)) / seconds)
            right = min(100.0, 100.0 * (run[-1].seconds + interval - (now - seconds)) / seconds)
            confidence = max(point.confidence for point in run)
            tooltip = (f"#{track_id} {run[0].label} (up to {confidence:.0%}), "
                       f"{now - run[-1].seconds:.0f}-{now - run[0].seconds:.0f} s ago")
            segments.append(
                f'<span class="fer-live-segment" title="{escape(tooltip)}" style="position:absolute;top:0;bottom:0;'
                f'left:{left:.1f}%;width:{max(0.5, right - left):.1f}%;border-radius:2px;background:{_color(run[0].label)}"></span>'
            )
        rows.append(
            f'<div style="display:flex;align-items:center;height:{ROW_HEIGHT}px;margin-bottom:4px">'
            f'<span style="width:{LABEL_WIDTH}px;font-size:11px;color:#555">#{track_id}</span>'
            f'<span style="position:relative;flex:1;height:100%;background:#f6f7f8">{"".join(segments)}</span></div>'
        )
    if not tracks:
        rows.append(f'<div style="margin-left:{LABEL_WIDTH}px;font-size:11px;color:#888">no face in the last {seconds:.0f} s</div>')
    axis = (f'<div style="display:flex;justify-content:space-between;margin-left:{LABEL_WIDTH}px;font-size:10px;color:#888">'
            f"<span>{seconds:.0f} s ago</span><span>now</span></div>")
    return f'<div class="fer-live-timeline">{"".join(rows)}{axis}</div>'


def legend_html(classes: Sequence[str]) -> str:
    """The emotions' colours, once under the timeline."""
    return '<div style="font-size:11px;color:#555">' + " ".join(
        f'<span style="white-space:nowrap;margin-right:8px"><span style="display:inline-block;width:9px;height:9px;'
        f'border-radius:2px;background:{_color(name)};margin-right:3px"></span>{escape(name)}</span>'
        for name in classes
    ) + "</div>"
