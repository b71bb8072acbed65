"""ui.live_panel: the Live webcam panel's HTML bars and timeline (pure functions)."""

from __future__ import annotations

import re

import pytest

from fer_core.classes import CLASSES, class_color_hex
from fer_core.preprocessing import Box
from fer_core.video import TimelinePoint, TrackState
from ui.live_panel import face_bars_html, legend_html, timeline_html


def test_face_bars_show_every_emotion_with_its_share():
    probabilities = (0.05, 0.0, 0.05, 0.7, 0.1, 0.05, 0.05)
    track = TrackState(2, "happy", 0.7, probabilities, Box(0, 0, 10, 10), 0)
    html = face_bars_html(track, CLASSES)
    assert "#2 happy 70%" in html
    widths = [float(width) for width in re.findall(r"width:(\d+)%;background", html)]
    assert widths == [5, 0, 5, 70, 10, 5, 5]
    assert html.count("outline:") == 1  # the top emotion is outlined
    assert class_color_hex("happy") in html


def test_timeline_merges_runs_of_one_emotion_per_face():
    now = 100.0
    points = [TimelinePoint(now - 10 + 0.2 * step, 1, "happy" if step < 20 else "sad", 0.8) for step in range(40)]
    points += [TimelinePoint(now - 2 + 0.2 * step, 2, "neutral", 0.6) for step in range(10)]
    points.append(TimelinePoint(now - 50, 1, "angry", 0.9))  # older than the window: left out
    html = timeline_html(points, now, seconds=20)
    titles = re.findall(r'title="([^"]*)"', html)
    assert [title.split(" (")[0] for title in titles] == ["#1 happy", "#1 sad", "#2 neutral"]
    assert html.count("fer-live-segment") == 3 and ">#1<" in html and ">#2<" in html
    assert "<svg" not in html, "Streamlit's st.html sanitiser drops <svg>"
    lefts = [float(value) for value in re.findall(r"left:([0-9.]+)%", html)]
    assert lefts == pytest.approx([50.0, 70.0, 90.0], abs=0.2)  # 10, 6 and 2 s ago, in a 20 s strip
    assert "no face" in timeline_html([], now, 20)
    assert all(name in legend_html(CLASSES) for name in CLASSES)
