"""The Live webcam panel's pictures as small HTML and SVG strings.

Why not plotly: the panel refreshes while the video plays, and on a machine where the browser
and the server share two cores, redrawing two plotly figures twice a second cost half the video's
frame rate (issue 11). A few styled divs and one SVG strip are a few hundred bytes each and
cost the browser next to nothing to replace. Pure functions of the panel's state, so they are
tested without a browser.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from fer_core.classes import CLASS_COLORS_RGB, class_color_hex
from fer_core.video import TimelinePoint, TrackState

ROW_HEIGHT = 16  # px per face in the timeline strip
STRIP_WIDTH = 400  # the SVG's own coordinate width; it scales to the column


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


def timeline_svg(points: Sequence[TimelinePoint], now: float, seconds: float, interval: float = 0.2) -> str:
    """Each tracked face's dominant emotion over the last `seconds`: one row per face, runs of
    the same emotion merged into one coloured segment (with a tooltip), newest on the right."""
    tracks = sorted({point.track_id for point in points})
    height = max(1, len(tracks)) * (ROW_HEIGHT + 4) + 18
    scale = STRIP_WIDTH / seconds
    shapes: list[str] = []
    for row, track_id in enumerate(tracks):
        y = row * (ROW_HEIGHT + 4)
        shapes.append(f'<text x="0" y="{y + 12}" font-size="11" fill="#555">#{track_id}</text>')
        own = [point for point in points if point.track_id == track_id and point.seconds >= now - seconds]
        runs: list[list[TimelinePoint]] = []
        for point in own:
            if runs and runs[-1][-1].label == point.label and point.seconds - runs[-1][-1].seconds <= 3 * interval:
                runs[-1].append(point)
            else:
                runs.append([point])
        for run in runs:
            x0 = 24 + (run[0].seconds - (now - seconds)) * scale * (STRIP_WIDTH - 24) / STRIP_WIDTH
            x1 = 24 + (run[-1].seconds + interval - (now - seconds)) * scale * (STRIP_WIDTH - 24) / STRIP_WIDTH
            confidence = max(point.confidence for point in run)
            shapes.append(
                f'<rect x="{x0:.1f}" y="{y}" width="{max(1.0, x1 - x0):.1f}" height="{ROW_HEIGHT}" rx="2" '
                f'fill="{_color(run[0].label)}"><title>#{track_id} {escape(run[0].label)} '
                f"(up to {confidence:.0%}), {now - run[-1].seconds:.0f}-{now - run[0].seconds:.0f} s ago</title></rect>"
            )
    axis_y = height - 4
    shapes.append(f'<text x="24" y="{axis_y}" font-size="10" fill="#888">{seconds:.0f} s ago</text>')
    shapes.append(f'<text x="{STRIP_WIDTH}" y="{axis_y}" font-size="10" fill="#888" text-anchor="end">now</text>')
    if not tracks:
        shapes.append(f'<text x="24" y="12" font-size="11" fill="#888">no face in the last {seconds:.0f} s</text>')
    return (
        f'<svg class="fer-live-timeline" viewBox="0 0 {STRIP_WIDTH} {height}" width="100%" '
        f'preserveAspectRatio="none" style="max-height:{height * 1.6:.0f}px">{"".join(shapes)}</svg>'
    )


def legend_html(classes: Sequence[str]) -> str:
    """The emotions' colours, once under the timeline."""
    return '<div style="font-size:11px;color:#555">' + " ".join(
        f'<span style="white-space:nowrap;margin-right:8px"><span style="display:inline-block;width:9px;height:9px;'
        f'border-radius:2px;background:{_color(name)};margin-right:3px"></span>{escape(name)}</span>'
        for name in classes
    ) + "</div>"
