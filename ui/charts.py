"""Plotly charts shared by the pages (Upload, Live webcam, Dataset & labeling, Video files)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from fer_core.classes import CLASS_COLORS_RGB, class_color_hex
from fer_core.clip_summary import ClipRow, dominant_runs


def probability_chart(probabilities: Sequence[float], classes: Sequence[str], title: str | None = None) -> go.Figure:
    """Horizontal bars of the class probabilities, one colour per emotion, top class first
    in reading order (classes keep their fixed order so charts are comparable)."""
    values = [float(value) for value in probabilities]
    if len(values) != len(classes):
        raise ValueError(f"{len(values)} probabilities for {len(classes)} classes")
    top = max(range(len(values)), key=values.__getitem__) if values else -1
    colors = [class_color_hex(name) if name in CLASS_COLORS_RGB else "#888888" for name in classes]
    figure = go.Figure(
        go.Bar(
            x=values,
            y=list(classes),
            orientation="h",
            marker={"color": colors, "line": {"width": [2 if index == top else 0 for index in range(len(values))],
                                              "color": "#222222"}},
            text=[f"{value:.0%}" for value in values],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: %{x:.1%}<extra></extra>",
        )
    )
    figure.update_layout(
        title={"text": title, "font": {"size": 14}} if title else None,
        height=230 if title else 200,
        margin={"l": 0, "r": 30, "t": 30 if title else 5, "b": 0},
        xaxis={"range": [0, 1.08], "tickformat": ".0%", "fixedrange": True, "showgrid": True},
        yaxis={"autorange": "reversed", "fixedrange": True},
        showlegend=False,
    )
    return figure


def class_counts_chart(counts: Mapping[str, int], title: str | None = None) -> go.Figure:
    """Vertical bars of a count per emotion (the Dataset page's balance), in the fixed class order
    and each emotion's colour, with the count written on its bar."""
    names = list(counts)
    values = [int(counts[name]) for name in names]
    figure = go.Figure(
        go.Bar(
            x=names,
            y=values,
            marker={"color": [class_color_hex(name) if name in CLASS_COLORS_RGB else "#888888" for name in names]},
            text=[str(value) for value in values],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{x}: %{y} faces<extra></extra>",
        )
    )
    figure.update_layout(
        title={"text": title, "font": {"size": 14}} if title else None,
        height=300,
        margin={"l": 0, "r": 0, "t": 30 if title else 20, "b": 0},
        yaxis={"title": "labelled faces", "rangemode": "tozero", "fixedrange": True},
        xaxis={"fixedrange": True},
        showlegend=False,
    )
    return figure


def emotion_timeline_chart(
    rows: Sequence[ClipRow], durations: Mapping[int, float], classes: Sequence[str], span: tuple[float, float] | None = None
) -> go.Figure:
    """One face through a clip: each emotion's smoothed probability over time (lines broken
    where the face was not seen), above a band of the top emotion. `span` (seconds) fixes the
    time axis, so the charts of all faces of a clip line up."""
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.84, 0.16], vertical_spacing=0.03)
    times: list[float | None] = []
    values: list[list[float | None]] = [[] for _ in classes]
    for row, following in zip(rows, [*rows[1:], None], strict=True):
        times.append(row.time)
        for index, value in enumerate(row.probabilities):
            values[index].append(value)
        if following is not None and row.time + durations.get(row.frame, 0.0) < following.time - 1e-6:
            times.append(None)  # a gap: the face was not seen in between
            for series in values:
                series.append(None)
    for name, series in zip(classes, values, strict=True):
        figure.add_trace(
            go.Scatter(x=times, y=series, name=name, mode="lines", line={"color": _color(name), "width": 2},
                       hovertemplate=f"{name} %{{y:.0%}} at %{{x:.2f}} s<extra></extra>"),
            row=1, col=1,
        )
    runs = dominant_runs(rows, durations)
    for name in classes:
        own = [(start, end) for start, end, label in runs if label == name]
        if own:
            figure.add_trace(
                go.Bar(x=[(start + end) / 2 for start, end in own], y=[1] * len(own), width=[end - start for start, end in own],
                       marker={"color": _color(name), "line": {"width": 0}}, showlegend=False, name=name,
                       customdata=[[start, end] for start, end in own],
                       hovertemplate=f"{name} from %{{customdata[0]:.2f}} to %{{customdata[1]:.2f}} s<extra></extra>"),
                row=2, col=1,
            )
    figure.update_layout(
        height=290, margin={"l": 0, "r": 0, "t": 10, "b": 0}, bargap=0, barmode="overlay",
        legend={"orientation": "h", "y": 1.12, "x": 0, "font": {"size": 11}},
    )
    figure.update_yaxes(range=[0, 1.02], tickformat=".0%", fixedrange=True, row=1, col=1)
    figure.update_yaxes(visible=False, range=[0, 1], fixedrange=True, row=2, col=1)
    figure.update_xaxes(title_text="seconds", row=2, col=1)
    if span is not None:
        figure.update_xaxes(range=list(span))
    return figure


def _color(name: str) -> str:
    return class_color_hex(name) if name in CLASS_COLORS_RGB else "#888888"
