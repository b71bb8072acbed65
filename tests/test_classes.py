"""fer_core.classes: the one class list, the CSV code translation and the colours."""

from __future__ import annotations

import re

import pytest

from fer_core import classes


def test_seven_classes_in_image_folder_order():
    assert classes.CLASSES == ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    assert classes.NUM_CLASSES == 7
    assert list(classes.CLASSES) == sorted(classes.CLASSES)  # FER2013 folders sort alphabetically


def test_csv_codes_map_to_the_same_emotion():
    # Kaggle: 0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral
    expected = {0: "angry", 1: "disgust", 2: "fear", 3: "happy", 4: "sad", 5: "surprise", 6: "neutral"}
    for code, name in expected.items():
        assert classes.CLASSES[classes.CSV_CODE_TO_INDEX[code]] == name
    assert sorted(classes.CSV_CODE_TO_INDEX.values()) == list(range(7))


def test_class_index_is_case_insensitive_and_names_valid_classes():
    assert classes.class_index("Happy") == 3
    assert classes.class_index(" surprise ") == 6
    with pytest.raises(ValueError, match="unknown emotion class 'contempt'.*angry, disgust"):
        classes.class_index("contempt")


def test_every_class_has_a_distinct_colour():
    hexes = [classes.class_color_hex(name) for name in classes.CLASSES]
    assert all(re.fullmatch(r"#[0-9a-f]{6}", value) for value in hexes)
    assert len(set(hexes)) == len(hexes)
    assert classes.class_color_hex("angry") == "#e63946"
