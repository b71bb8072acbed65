"""fer_core.preprocessing: boxes, grayscale, resizing, face crops with margins, pixel scaling."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from fer_core.image_io import decode_image
from fer_core.preprocessing import (
    Box,
    crop_face,
    downscale,
    resize_faces,
    resize_gray,
    scale_pixels,
    square_with_margin,
    to_gray,
)

# --- Box ------------------------------------------------------------------------------------------


def test_box_area_tuple_and_iou_hand_checked():
    a = Box(0, 0, 10, 10)
    b = Box(5, 5, 10, 10)  # overlap 5x5 = 25, union 100 + 100 - 25 = 175
    assert a.area == 100 and a.as_tuple() == (0, 0, 10, 10)
    assert a.iou(b) == pytest.approx(25 / 175)
    assert b.iou(a) == pytest.approx(25 / 175)
    assert a.iou(a) == 1.0
    assert a.iou(Box(20, 20, 5, 5)) == 0.0
    assert Box(0, 0, 0, 0).iou(Box(0, 0, 0, 0)) == 0.0  # no division by zero
    assert Box(0, 0, -3, 4).area == 0


# --- grayscale and resizing ------------------------------------------------------------------


def test_to_gray_uses_itu_601_weights_like_pil():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(rgb).convert("L"), dtype=int)
    assert np.abs(to_gray(rgb).astype(int) - expected).max() <= 1
    gray = rgb[..., 0]
    assert to_gray(gray) is gray  # already gray: untouched


def test_to_gray_rejects_other_shapes():
    with pytest.raises(ValueError, match=r"expected an RGB or grayscale image, got shape \(4, 4, 4\)"):
        to_gray(np.zeros((4, 4, 4), np.uint8))


def test_resize_gray_shrinks_by_area_and_grows():
    checker = np.kron([[0, 255], [255, 0]], np.ones((48, 48))).astype(np.uint8)  # 96x96
    small = resize_gray(checker, 48)
    assert small.shape == (48, 48) and small.dtype == np.uint8
    assert small[0, 0] == 0 and small[0, 47] == 255
    assert resize_gray(checker[:30, :20], 48).shape == (48, 48)  # not square, growing
    same = np.zeros((48, 48), np.uint8)
    assert resize_gray(same, 48) is same


def test_downscale_halves_by_exact_means_and_stays_close_to_area_resizing(astronaut_rgb: np.ndarray):
    block = np.array([[0, 100, 7, 9], [200, 60, 1, 3]], np.uint8)  # two 2x2 blocks: means 90 and 5
    assert downscale(block, 2, 1).tolist() == [[90, 5]]
    frame = cv2.resize(astronaut_rgb, (640, 480), interpolation=cv2.INTER_AREA)
    fast = downscale(frame, 192, 144)
    assert fast.shape == (144, 192, 3) and fast.dtype == np.uint8
    area = cv2.resize(frame, (192, 144), interpolation=cv2.INTER_AREA)
    assert np.abs(fast.astype(float) - area).mean() < 2.0  # grey levels, on a real photo
    assert downscale(frame[:50, :60], 120, 100).shape == (100, 120, 3)  # enlarging
    assert downscale(frame, 640, 480) is frame


# --- face crops -------------------------------------------------------------------------------


def test_square_with_margin_widens_around_the_centre():
    square = square_with_margin(Box(100, 50, 40, 60), 0.2)
    assert square.width == square.height == 84  # 60 * 1.4
    assert square.x + square.width / 2 == pytest.approx(120, abs=1)
    assert square.y + square.height / 2 == pytest.approx(80, abs=1)


def test_crop_face_inside_the_image_sees_the_box_content():
    image = np.zeros((200, 200, 3), np.uint8)
    image[50:150, 50:150] = 255  # a white square "face"
    crop = crop_face(image, Box(50, 50, 100, 100), size=48, margin=0.0)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    assert crop.min() == 255
    with_margin = crop_face(image, Box(50, 50, 100, 100), size=48, margin=0.25)
    assert with_margin[0, 0] == 0 and with_margin[24, 24] == 255  # margin shows the dark border


def test_crop_face_at_the_border_replicates_edge_pixels():
    image = np.zeros((100, 100), np.uint8)
    image[:, :10] = 200  # bright strip on the left edge
    crop = crop_face(image, Box(0, 30, 40, 40), size=48, margin=0.2)
    assert crop.shape == (48, 48)
    assert crop[24, 0] == 200  # the padding copies the edge, not black


def test_crop_face_outside_the_image_is_a_clear_error():
    with pytest.raises(ValueError, match=r"face box \(500, 500, 20, 20\) lies outside the 100x80 image"):
        crop_face(np.zeros((80, 100), np.uint8), Box(500, 500, 20, 20), size=48)


def test_scale_pixels_gives_model_input_in_unit_range():
    faces = np.array([np.zeros((48, 48)), np.full((48, 48), 255)], dtype=np.uint8)
    batch = scale_pixels(faces)
    assert batch.shape == (2, 48, 48, 1) and batch.dtype == np.float32
    assert batch[0].max() == 0.0 and batch[1].min() == pytest.approx(1.0)
    assert scale_pixels(batch).shape == (2, 48, 48, 1)  # already 4-D: channel not added twice


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "CMYK", "I;16"])
def test_every_decoded_mode_crops_to_the_same_face(mode: str, astronaut_rgb: np.ndarray):
    """An astronaut face saved in each mode decodes and crops to nearly the same 48x48 face."""
    face_region = astronaut_rgb[40:220, 140:320]
    reference = crop_face(face_region, Box(30, 30, 120, 120), 48)
    if mode == "I;16":
        gray16 = (to_gray(face_region).astype(np.uint16) * 257).astype(np.uint16)
        image = Image.fromarray(gray16)
    elif mode == "P":
        image = Image.fromarray(face_region).convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    else:
        image = Image.fromarray(face_region).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="TIFF" if mode == "CMYK" else "PNG")
    decoded = decode_image(buffer.getvalue(), name=f"face.{mode}")
    assert decoded.rgb.shape == face_region.shape
    crop = crop_face(decoded.rgb, Box(30, 30, 120, 120), 48)
    assert crop.shape == (48, 48)
    assert np.abs(crop.astype(int) - reference.astype(int)).mean() < 6


def test_resize_faces_resizes_a_batch_and_passes_one_of_the_right_size_through():
    faces = np.random.default_rng(0).integers(0, 256, (3, 64, 64), dtype=np.uint8)
    resized = resize_faces(faces, 48)
    assert resized.shape == (3, 48, 48) and resized.dtype == np.uint8
    assert np.array_equal(resized[1], resize_gray(faces[1], 48))
    assert resize_faces(resized, 48) is resized
    assert resize_faces(np.zeros((0, 64, 64), np.uint8), 48).shape == (0, 48, 48)
