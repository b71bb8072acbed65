"""fer_core.data: both dataset formats (Kaggle CSV and image folders) and their bad inputs.

The datasets are tiny files written by the conftest factories; no FER2013 image is used except
in the one test that reads the real data when this machine has it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_core.classes import CLASSES
from fer_core.data import FaceDataset, list_image_folder, load_dataset, load_fer_csv, load_image_folder
from fer_core.errors import DatasetError, FerError


def pixels_text(side: int, value: int = 128) -> str:
    return " ".join([str(value)] * side * side)


# --- the Kaggle CSV -----------------------------------------------------------------------------


def test_csv_loads_every_row_with_translated_labels(tmp_path: Path, make_fer_csv):
    path = make_fer_csv(tmp_path / "fer2013.csv", per_class=2, usages=("Training", "PublicTest"))
    dataset = load_fer_csv(path)
    assert len(dataset) == 28
    assert dataset.images.shape == (28, 48, 48) and dataset.images.dtype == np.uint8
    assert dataset.labels.dtype == np.int32
    assert dataset.class_counts() == {name: 4 for name in CLASSES}
    # rows are written in CSV code order: code 4 (sad) comes before code 6 (neutral)
    first_of_each = [CLASSES[label] for label in dataset.labels[:14:2]]
    assert first_of_each == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert dataset.source == str(path)


def test_csv_usage_filter_and_resize(tmp_path: Path, make_fer_csv):
    path = make_fer_csv(tmp_path / "fer2013.csv", per_class=1, usages=("Training", "PublicTest", "PrivateTest"))
    public = load_fer_csv(path, usages=["PublicTest"])
    assert len(public) == 7
    both = load_dataset(path, usages=["PublicTest", "PrivateTest"], image_size=32)
    assert len(both) == 14 and both.images.shape[1:] == (32, 32)


def test_csv_pixels_are_reshaped_row_major(tmp_path: Path, make_fer_csv):
    pixels = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10
    path = make_fer_csv(tmp_path / "small.csv", rows=[["3", " ".join(map(str, pixels.ravel())), "Training"]])
    dataset = load_fer_csv(path, image_size=4)
    np.testing.assert_array_equal(dataset.images[0], pixels)
    assert CLASSES[dataset.labels[0]] == "happy"


def test_csv_without_usage_column_loads(tmp_path: Path, make_fer_csv):
    path = make_fer_csv(tmp_path / "two_columns.csv", rows=[["0", pixels_text(48)]], header=("emotion", "pixels"))
    assert len(load_dataset(path)) == 1
    with pytest.raises(DatasetError, match=r"two_columns\.csv: --usage was given but the CSV has no Usage column"):
        load_dataset(path, usages=["Training"])


@pytest.mark.parametrize(
    "rows, message",
    [
        ([["3", pixels_text(48), "Training"], [], ["3", pixels_text(48), "Training"]], r"line 3: empty row"),
        ([["3", pixels_text(48), "Training"], ["", "", ""]], r"line 3: empty row"),
        ([["3", " ".join(["1"] * 2000), "Training"]], r"line 2: 2000 pixel values do not form a square image"),
        ([["3", "", "Training"]], r"line 2: 0 pixel values do not form a square image"),
        ([["9", pixels_text(48), "Training"]], r"line 2: emotion '9' is not a code 0-6"),
        ([["happy", pixels_text(48), "Training"]], r"line 2: emotion 'happy' is not a code 0-6"),
        ([["3", "1 2 x 4", "Training"]], r"line 2: pixels must be space-separated integers"),
        ([["3", pixels_text(48, 300), "Training"]], r"line 2: pixel values must be within 0-255"),
        ([["3"]], r"line 2: expected 3 columns, found 1"),
    ],
    ids=["blank-line", "empty-cells", "wrong-pixel-count", "no-pixels", "bad-code", "name-not-code",
         "non-integer-pixels", "out-of-range", "missing-columns"],
)
def test_bad_csv_rows_name_the_file_and_line(tmp_path: Path, make_fer_csv, rows, message):
    path = make_fer_csv(tmp_path / "bad.csv", rows=rows)
    with pytest.raises(DatasetError, match=r"bad\.csv, " + message):
        load_fer_csv(path)


def test_bad_csv_files(tmp_path: Path, make_fer_csv):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DatasetError, match=r"empty\.csv: the CSV file is empty"):
        load_fer_csv(empty)
    wrong = make_fer_csv(tmp_path / "wrong.csv", rows=[["a", "b"]], header=("label", "image"))
    with pytest.raises(DatasetError, match=r"wrong\.csv: expected the columns emotion,pixels\[,Usage\]; found label,image"):
        load_fer_csv(wrong)
    header_only = make_fer_csv(tmp_path / "header.csv", rows=[])
    with pytest.raises(DatasetError, match=r"header\.csv: no rows"):
        load_fer_csv(header_only)
    training_only = make_fer_csv(tmp_path / "train.csv", per_class=1, usages=("Training",))
    with pytest.raises(DatasetError, match=r"train\.csv: no rows with Usage PrivateTest"):
        load_fer_csv(training_only, usages=["PrivateTest"])
    with pytest.raises(DatasetError, match=r"train\.csv: unknown Usage \['Test'\]"):
        load_fer_csv(training_only, usages=["Test"])
    with pytest.raises(DatasetError, match=r"missing\.csv: no such CSV file"):
        load_fer_csv(tmp_path / "missing.csv")


# --- image folders ----------------------------------------------------------------------------


def test_image_folder_loads_classes_from_folder_names(tmp_path: Path, make_image_folder):
    root = make_image_folder(tmp_path / "faces", per_class=3, size=64)
    dataset = load_image_folder(root, image_size=48)
    assert isinstance(dataset, FaceDataset)
    assert dataset.images.shape == (21, 48, 48) and dataset.images.dtype == np.uint8
    assert dataset.class_counts() == {name: 3 for name in CLASSES}
    assert dataset.skipped == 0 and dataset.source == str(root)
    paths, labels = list_image_folder(root)
    assert all(CLASSES[label] == path.parent.name for path, label in zip(paths, labels, strict=True))


def test_image_folder_may_hold_a_subset_of_classes_in_any_case(tmp_path: Path):
    for folder in ("Happy", "SAD"):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (30, 30), (200, 10, 10)).save(tmp_path / folder / "a.jpg")
    (tmp_path / "Happy" / "readme.txt").write_text("ignored: not an image suffix")
    (tmp_path / ".hidden").mkdir()
    dataset = load_dataset(tmp_path, image_size=48)
    assert dataset.class_counts()["happy"] == 1 and dataset.class_counts()["sad"] == 1
    assert len(dataset) == 2 and dataset.images.shape == (2, 48, 48)


def test_image_folder_reads_color_and_16_bit_images_as_gray(tmp_path: Path):
    (tmp_path / "neutral").mkdir()
    Image.new("RGBA", (48, 48), (255, 0, 0, 255)).save(tmp_path / "neutral" / "rgba.png")
    Image.fromarray(np.full((48, 48), 40000, np.uint16)).save(tmp_path / "neutral" / "deep.png")
    dataset = load_image_folder(tmp_path)
    assert dataset.images.shape == (2, 48, 48)
    assert abs(int(dataset.images[1, 0, 0]) - 76) <= 1  # pure red in ITU-R 601 luma


def test_unknown_class_folder_is_named(tmp_path: Path, make_image_folder):
    root = make_image_folder(tmp_path / "faces", per_class=1, classes=("happy", "sad"))
    make_image_folder(root, per_class=1, classes=("contempt",))
    with pytest.raises(DatasetError, match=r"faces: unknown class folder\(s\) contempt; expected angry, disgust"):
        load_image_folder(root)


def test_unreadable_image_is_named_or_skipped(tmp_path: Path, make_image_folder):
    root = make_image_folder(tmp_path / "faces", per_class=2, classes=("fear",))
    broken = root / "fear" / "broken.png"
    broken.write_text("not an image")
    with pytest.raises(DatasetError, match=r"broken\.png: not an image file.*\(in dataset .*faces\)"):
        load_image_folder(root)
    lenient = load_image_folder(root, strict=False)
    assert len(lenient) == 2 and lenient.skipped == 1
    broken.unlink()
    (root / "fear" / "zero.jpg").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"zero\.jpg: the file is empty"):
        load_image_folder(root)


def test_bad_folder_layouts(tmp_path: Path):
    with pytest.raises(DatasetError, match=r"nowhere: no such folder"):
        load_image_folder(tmp_path / "nowhere")
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("L", (48, 48)).save(flat / "face.png")
    with pytest.raises(DatasetError, match=r"flat: expected one sub-folder per class"):
        load_image_folder(flat)
    empty_classes = tmp_path / "empty"
    (empty_classes / "happy").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"empty: the class folders hold no images"):
        load_image_folder(empty_classes)


def test_load_dataset_dispatch_errors(tmp_path: Path, make_image_folder):
    root = make_image_folder(tmp_path / "faces", per_class=1, classes=("angry",))
    with pytest.raises(DatasetError, match=r"--usage applies to a FER2013 CSV, not to an image folder"):
        load_dataset(root, usages=["Training"])
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(DatasetError, match=r"notes\.txt: expected a FER2013 CSV file or an image folder"):
        load_dataset(notes)
    assert issubclass(DatasetError, FerError)


def test_real_fer2013_val_folder_loads(fer_data_dir: Path):
    dataset = load_dataset(fer_data_dir / "val")
    assert len(dataset) == 3589 and dataset.images.shape[1:] == (48, 48)
    assert all(count > 0 for count in dataset.class_counts().values())
