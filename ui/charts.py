"""Plotly charts shared by the pages (Upload, Live webcam, Dataset & labeling)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from fer_core.classes import CLASS_COLORS_RGB, class_color_hex


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
