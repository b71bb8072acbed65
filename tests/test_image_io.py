"""fer_core.image_io: every common image mode, EXIF orientation, and clear errors for bad files.

All images are made in the test with Pillow and written as real files or bytes.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_core import image_io
from fer_core.errors import FerError, ImageError
from fer_core.image_io import decode_image, read_grayscale


def encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def two_tone(width: int = 40, height: int = 20) -> Image.Image:
    """Left half red, right half blue: shows where a rotation put things."""
    array = np.zeros((height, width, 3), np.uint8)
    array[:, : width // 2] = (255, 0, 0)
    array[:, width // 2 :] = (0, 0, 255)
    return Image.fromarray(array)


# --- modes ------------------------------------------------------------------------------------


def test_rgb_png_from_bytes_and_path_give_the_same_array(tmp_path: Path):
    image = two_tone()
    path = tmp_path / "two_tone.png"
    image.save(path)
    from_path = decode_image(path)
    from_bytes = decode_image(path.read_bytes(), name="upload.png")
    assert from_path.rgb.dtype == np.uint8 and from_path.rgb.shape == (20, 40, 3)
    np.testing.assert_array_equal(from_path.rgb, np.asarray(image))
    np.testing.assert_array_equal(from_bytes.rgb, from_path.rgb)
    assert from_path.name == "two_tone.png" and from_bytes.name == "upload.png"
    assert from_path.original_size == (40, 20) and from_path.scale == 1.0
    assert from_path.notes == []


def test_rgba_transparent_pixels_become_white_not_black():
    array = np.zeros((10, 10, 4), np.uint8)
    array[:, :5] = (255, 0, 0, 255)  # opaque red
    array[:, 5:] = (0, 0, 0, 0)  # fully transparent
    decoded = decode_image(encode(Image.fromarray(array)), name="alpha.png")
    assert decoded.rgb.shape == (10, 10, 3)
    assert tuple(decoded.rgb[0, 0]) == (255, 0, 0)
    assert tuple(decoded.rgb[0, 9]) == (255, 255, 255)


def test_grayscale_l_image_becomes_three_equal_channels():
    gray = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (8, 1))
    decoded = decode_image(encode(Image.fromarray(gray)), name="gray.png")
    assert decoded.rgb.shape == (8, 16, 3)
    for channel in range(3):
        np.testing.assert_array_equal(decoded.rgb[..., channel], gray)


def test_palette_image_with_and_without_transparency():
    palette_image = two_tone().convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    decoded = decode_image(encode(palette_image), name="palette.png")
    assert tuple(decoded.rgb[0, 0]) == (255, 0, 0) and tuple(decoded.rgb[0, -1]) == (0, 0, 255)

    transparent = palette_image.copy()
    blue_index = transparent.getpixel((39, 0))
    transparent.info["transparency"] = blue_index
    decoded = decode_image(encode(transparent, transparency=blue_index), name="palette_alpha.png")
    assert tuple(decoded.rgb[0, 0]) == (255, 0, 0)
    assert tuple(decoded.rgb[0, -1]) == (255, 255, 255)


def test_cmyk_jpeg_is_converted_with_a_note():
    cmyk = two_tone().convert("CMYK")
    decoded = decode_image(encode(cmyk, "JPEG", quality=95), name="print.jpg")
    assert decoded.rgb.shape == (20, 40, 3)
    red, blue = decoded.rgb[10, 5].astype(int), decoded.rgb[10, 35].astype(int)
    assert red[0] > 200 and red[2] < 60
    assert blue[2] > 200 and blue[0] < 60
    assert any("CMYK" in note for note in decoded.notes)


def test_16_bit_png_is_rescaled_to_the_full_8_bit_range():
    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000 + 500).astype(np.uint16)
    image = Image.fromarray(ramp)
    assert image.mode == "I;16"
    decoded = decode_image(encode(image), name="depth16.png")
    gray = decoded.rgb[..., 0]
    assert gray.min() == 0 and gray.max() == 255
    assert np.all(np.diff(gray.ravel().astype(int)) >= 0)  # order kept
    assert any("8 bits" in note for note in decoded.notes)


def test_32_bit_float_tiff_is_rescaled():
    values = np.linspace(-1.0, 3.0, 100, dtype=np.float32).reshape(10, 10)
    decoded = decode_image(encode(Image.fromarray(values), "TIFF"), name="float.tif")
    assert decoded.rgb[0, 0, 0] == 0 and decoded.rgb[-1, -1, 0] == 255


def test_animated_gif_uses_the_first_frame_with_a_note():
    frames = [Image.new("RGB", (12, 12), color) for color in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    decoded = decode_image(data, name="anim.gif")
    assert tuple(decoded.rgb[6, 6]) == (255, 0, 0)
    assert any("3 frames" in note for note in decoded.notes)


# --- EXIF orientation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "orientation, shape, top_left_color",
    [
        (1, (20, 40, 3), "red"),  # as stored
        (3, (20, 40, 3), "blue"),  # rotated 180
        (6, (40, 20, 3), "red"),  # camera held rotated: shown turned 90 degrees clockwise
        (8, (40, 20, 3), "blue"),  # shown turned 90 degrees counter-clockwise
    ],
)
def test_exif_orientation_is_applied(orientation: int, shape: tuple, top_left_color: str):
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation tag
    data = encode(two_tone(), "JPEG", quality=95, exif=exif.tobytes())
    decoded = decode_image(data, name=f"orient{orientation}.jpg")
    assert decoded.rgb.shape == shape
    pixel = decoded.rgb[2, 2].astype(int)
    if top_left_color == "red":
        assert pixel[0] > 200 and pixel[2] < 60
    else:
        assert pixel[2] > 200 and pixel[0] < 60
    assert decoded.original_size == (shape[1], shape[0])  # upright size


def test_read_grayscale_applies_exif_too(tmp_path: Path):
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    two_tone().save(path, "JPEG", quality=95, exif=exif.tobytes())
    gray = read_grayscale(path)
    assert gray.shape == (40, 20) and gray.dtype == np.uint8


# --- size limits --------------------------------------------------------------------------------


def test_images_longer_than_max_side_are_downscaled_with_a_note():
    wide = Image.new("RGB", (image_io.MAX_SIDE + 904, 100), (10, 200, 30))
    decoded = decode_image(encode(wide), name="panorama.png")
    assert decoded.rgb.shape[1] == image_io.MAX_SIDE
    assert decoded.rgb.shape[0] == round(100 * image_io.MAX_SIDE / (image_io.MAX_SIDE + 904))
    assert decoded.original_size == (image_io.MAX_SIDE + 904, 100)
    assert decoded.scale == pytest.approx(image_io.MAX_SIDE / (image_io.MAX_SIDE + 904))
    assert any("downscaled" in note for note in decoded.notes)


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path: Path):
    path = tmp_path / "bomb.png"
    Image.new("1", (9000, 9000)).save(path)  # 81 megapixels in a few kilobytes
    with pytest.raises(ImageError, match=r"bomb\.png: .*(81 megapixels|decompression bomb)"):
        decode_image(path)


# --- bad input ------------------------------------------------------------------------------


def test_empty_bytes_and_empty_file(tmp_path: Path):
    with pytest.raises(ImageError, match=r"^upload\.jpg: the file is empty \(0 bytes\)$"):
        decode_image(b"", name="upload.jpg")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match=r"^empty\.png: the file is empty"):
        decode_image(empty)


def test_missing_file(tmp_path: Path):
    with pytest.raises(ImageError, match=r"^nothere\.png: no such file$"):
        decode_image(tmp_path / "nothere.png")


def test_non_image_file_is_named(tmp_path: Path):
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture\n")
    with pytest.raises(ImageError, match=r"^notes\.jpg: not an image file"):
        decode_image(text)
    with pytest.raises(ImageError, match=r"^paste\.bin: not an image file"):
        decode_image(b"%PDF-1.4 not an image", name="paste.bin")


def test_truncated_image_is_reported_as_corrupt():
    data = encode(Image.new("RGB", (64, 64), (1, 2, 3)), "PNG")
    with pytest.raises(ImageError, match=r"^cut\.png: the image is corrupt or truncated"):
        decode_image(data[: len(data) // 2], name="cut.png")


def test_read_grayscale_errors_name_the_path(tmp_path: Path):
    bad = tmp_path / "happy" / "broken.png"
    bad.parent.mkdir()
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ImageError, match=str(bad).replace("\\", "\\\\")):
        read_grayscale(bad)


def test_image_errors_are_user_facing_value_errors():
    assert issubclass(ImageError, FerError) and issubclass(ImageError, ValueError)
