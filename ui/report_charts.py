"""Plotly figures of the Training report page: learning curves, confusion matrices, calibration,
per-class comparisons. Pure functions of plain data (rows, matrices) so they are easy to test."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from fer_core.classes import CLASSES, class_color_hex
from fer_core.reports import Calibration

TRAIN_COLOR = "#1f77b4"
VAL_COLOR = "#d62728"
LR_COLOR = "#7f7f7f"
MODEL_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd")


def _segments(rows: Sequence[dict], key: str, keep) -> tuple[list, list, list]:
    """x, y and hover text of the rows `keep` selects, with a gap (None) wherever the cycle
    changes, so one cycle's line never runs back into the next one's."""
    xs, ys, texts, previous = [], [], [], None
    for row in rows:
        if not keep(row):
            continue
        cycle = (row.get("cycle", 1), bool(row.get("after_kept")))
        if previous is not None and cycle != previous:
            xs.append(None)
            ys.append(None)
            texts.append(None)
        previous = cycle
        xs.append(row.get("global_epoch", row["epoch"]))
        ys.append(row.get(key))
        texts.append(f"{row.get('model', '')} cycle {row.get('cycle', 1)}, epoch {row['epoch']}")
    return xs, ys, texts


def learning_curves(rows: Sequence[dict], title: str = "", kept: Sequence[tuple[float, str]] = ()) -> go.Figure:
    """Loss and accuracy per epoch (train vs validation) with the learning rate on its own axis.

    rows: history rows with `global_epoch` (or `epoch`), loss, accuracy, val_loss, val_accuracy,
    lr and optionally `cycle`/`model`/`after_kept` (lineage curves: an ancestor's epochs after
    the one its child started from are drawn faint and dashed). kept: (epoch, label) marks.
    """
    figure = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"),
                           specs=[[{"secondary_y": True}, {"secondary_y": True}]], horizontal_spacing=0.1)
    if not rows:
        return figure
    used = [row for row in rows if not row.get("after_kept")]
    for column, metric in enumerate(("loss", "accuracy"), start=1):
        for key, color, label in ((metric, TRAIN_COLOR, "train"), (f"val_{metric}", VAL_COLOR, "validation")):
            xs, ys, texts = _segments(rows, key, lambda row: not row.get("after_kept"))
            figure.add_trace(go.Scatter(
                x=xs, y=ys, mode="lines+markers", name=f"{label} {metric}", legendgroup=label, showlegend=column == 1,
                line={"color": color, "width": 2}, marker={"size": 4}, customdata=texts,
                hovertemplate="%{customdata}<br>" + f"{label} {metric}" + " %{y:.4f}<extra></extra>",
            ), row=1, col=column)
            xs, ys, texts = _segments(rows, key, lambda row: bool(row.get("after_kept")))
            if xs:
                figure.add_trace(go.Scatter(
                    x=xs, y=ys, mode="lines", name="epochs after the kept one", legendgroup="unused",
                    showlegend=column == 1 and key == metric, line={"color": color, "width": 1, "dash": "dot"}, opacity=0.45,
                    customdata=texts, hovertemplate="%{customdata} (not used later)<br>%{y:.4f}<extra></extra>",
                ), row=1, col=column)
        xs, ys, _ = _segments(rows, "lr", lambda row: True)
        figure.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="learning rate", legendgroup="lr",
                                    showlegend=column == 1, line={"color": LR_COLOR, "width": 1, "dash": "dot"},
                                    hovertemplate="lr %{y:.5f}<extra></extra>"),
                         row=1, col=column, secondary_y=True)
    for index, (epoch, label) in enumerate(kept):
        for column in (1, 2):
            figure.add_vline(x=epoch, line={"color": "#2ca02c", "width": 1.5, "dash": "dash"}, row=1, col=column)
        figure.add_annotation(x=epoch, y=1.0 + 0.07 * (index % 2), xref="x2", yref="paper", text=label, showarrow=False,
                              font={"size": 11, "color": "#2ca02c"}, xanchor="right" if index % 2 == 0 else "left")
    figure.update_layout(height=400, hovermode="x unified", title={"text": title} if title else None,
                         margin={"l": 10, "r": 10, "t": 70 if title else 55, "b": 10},
                         legend={"orientation": "h", "y": -0.2})
    figure.update_xaxes(title_text="epoch" if len({row.get("cycle", 1) for row in used}) < 2 else "epoch (across cycles)")
    figure.update_yaxes(title_text="lr", secondary_y=True, showgrid=False, rangemode="tozero")
    return figure


def overlaid_curves(curves: dict[str, Sequence[dict]], metric: str = "val_accuracy",
                    axis: str = "epoch (across the lineage)") -> go.Figure:
    """One line per model for one history column, on the running epoch axis."""
    figure = go.Figure()
    for index, (name, rows) in enumerate(curves.items()):
        figure.add_trace(go.Scatter(
            x=[row.get("global_epoch", row["epoch"]) for row in rows], y=[row.get(metric) for row in rows],
            mode="lines", name=name, line={"color": MODEL_COLORS[index % len(MODEL_COLORS)], "width": 2},
            hovertemplate=f"{name} " + "epoch %{x}: %{y:.4f}<extra></extra>",
        ))
    figure.update_layout(height=320, hovermode="x unified", margin={"l": 10, "r": 10, "t": 30, "b": 10},
                         xaxis_title=axis, yaxis_title=metric.replace("_", " "),
                         legend={"orientation": "h", "y": 1.12})
    return figure


def confusion_heatmap(matrix: Sequence[Sequence[float]], normalized: bool, classes: Sequence[str] = CLASSES,
                      title: str = "") -> go.Figure:
    """Rows are true classes, columns predictions, in the shared class order."""
    counts = np.asarray(matrix, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    shown = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0) if normalized else counts
    text = [[f"{value:.0%}" if normalized else f"{int(value)}" for value in row] for row in shown]
    figure = go.Figure(go.Heatmap(
        z=shown, x=list(classes), y=list(classes), colorscale="Blues", text=text, texttemplate="%{text}",
        customdata=counts, zmin=0, zmax=1 if normalized else None,
        hovertemplate="true %{y}, predicted %{x}<br>%{customdata:.0f} faces" + (" (%{z:.1%} of the row)" if normalized else "") + "<extra></extra>",
        colorbar={"title": "share" if normalized else "faces"},
    ))
    _matrix_layout(figure, title)
    return figure


def confusion_difference(first: Sequence[Sequence[int]], second: Sequence[Sequence[int]], names: tuple[str, str],
                         classes: Sequence[str] = CLASSES) -> go.Figure:
    """Row-normalised second minus first: green on the diagonal and red off it mean `second` is better."""
    def rows(matrix):
        counts = np.asarray(matrix, dtype=float)
        totals = counts.sum(axis=1, keepdims=True)
        return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)

    difference = rows(second) - rows(first)
    # Colour by "better for the second model": +diagonal and -off-diagonal are good.
    goodness = np.where(np.eye(len(classes), dtype=bool), difference, -difference)
    limit = max(0.05, float(np.abs(difference).max()))
    figure = go.Figure(go.Heatmap(
        z=goodness, x=list(classes), y=list(classes), colorscale="RdYlGn", zmin=-limit, zmax=limit,
        text=[[f"{value:+.0%}" for value in row] for row in difference], texttemplate="%{text}",
        customdata=difference,
        hovertemplate=f"true %{{y}}, predicted %{{x}}<br>{names[1]} minus {names[0]}: " + "%{customdata:+.1%} of the row<extra></extra>",
        colorbar={"title": f"better for<br>{names[1]}"},
    ))
    _matrix_layout(figure, f"{names[1]} minus {names[0]} (row-normalised)")
    return figure


def _matrix_layout(figure: go.Figure, title: str) -> None:
    figure.update_layout(
        height=460, title={"text": title} if title else None, margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
        xaxis={"title": "predicted", "side": "bottom", "constrain": "domain"},
        yaxis={"title": "true", "autorange": "reversed", "scaleanchor": "x", "constrain": "domain"},
    )


def reliability_diagram(result: Calibration) -> go.Figure:
    """Accuracy per confidence bin against the diagonal of perfect calibration, and how many
    faces fall in each bin."""
    edges = np.asarray(result.edges)
    centers = (edges[:-1] + edges[1:]) / 2
    width = float(edges[1] - edges[0])
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.75, 0.25], vertical_spacing=0.06)
    figure.add_trace(go.Bar(x=centers, y=[value if value is not None else 0 for value in result.accuracy], width=width * 0.95,
                            name="accuracy", marker_color="#4c78a8",
                            customdata=np.stack([[value or 0 for value in result.confidence], result.counts], axis=1),
                            hovertemplate="confidence %{customdata[0]:.2f}<br>accuracy %{y:.1%}<br>%{customdata[1]} faces<extra></extra>"),
                     row=1, col=1)
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                                line={"color": "#888888", "dash": "dash"}, hoverinfo="skip"), row=1, col=1)
    figure.add_trace(go.Scatter(x=[value for value in result.confidence if value is not None],
                                y=[acc for acc, conf in zip(result.accuracy, result.confidence, strict=True) if conf is not None],
                                mode="markers", name="bin mean confidence", marker={"color": "#e45756", "size": 8},
                                hovertemplate="mean confidence %{x:.2f}, accuracy %{y:.1%}<extra></extra>"), row=1, col=1)
    figure.add_trace(go.Bar(x=centers, y=result.counts, width=width * 0.95, name="faces", marker_color="#bbbbbb",
                            hovertemplate="%{y} faces<extra></extra>", showlegend=False), row=2, col=1)
    figure.update_layout(height=440, margin={"l": 10, "r": 10, "t": 30, "b": 10}, bargap=0,
                         legend={"orientation": "h", "y": 1.1})
    figure.update_yaxes(title_text="accuracy", range=[0, 1], tickformat=".0%", row=1, col=1)
    figure.update_yaxes(title_text="faces", row=2, col=1)
    figure.update_xaxes(title_text="confidence of the top class", range=[0, 1], row=2, col=1)
    return figure


def per_class_f1_bars(f1_by_model: dict[str, Sequence[float]], classes: Sequence[str] = CLASSES) -> go.Figure:
    """Grouped bars: each class's F1 for each model."""
    figure = go.Figure()
    for index, (name, values) in enumerate(f1_by_model.items()):
        figure.add_trace(go.Bar(x=list(classes), y=list(values), name=name, marker_color=MODEL_COLORS[index % len(MODEL_COLORS)],
                                text=[f"{value:.2f}" for value in values], textposition="outside",
                                hovertemplate=f"{name} " + "%{x}: F1 %{y:.3f}<extra></extra>"))
    figure.update_layout(barmode="group", height=340, yaxis={"range": [0, 1.08], "title": "F1"},
                         margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend={"orientation": "h", "y": 1.15})
    return figure


def confused_pairs_bars(pairs: Sequence, top: int = 8) -> go.Figure:
    """The most frequent mistakes as horizontal bars coloured by the predicted emotion."""
    shown = list(pairs)[:top][::-1]
    figure = go.Figure(go.Bar(
        x=[pair.count for pair in shown], y=[f"{pair.true} → {pair.predicted}" for pair in shown], orientation="h",
        marker_color=[class_color_hex(pair.predicted) for pair in shown],
        text=[f"{pair.count} ({pair.share:.0%} of {pair.true})" for pair in shown], textposition="auto",
        hovertemplate="%{y}: %{x} faces<extra></extra>",
    ))
    figure.update_layout(height=60 + 34 * max(1, len(shown)), margin={"l": 10, "r": 10, "t": 10, "b": 10},
                         xaxis_title="faces")
    return figure
