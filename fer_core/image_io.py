"""Decoding images from files or bytes into RGB or grayscale uint8 arrays.

Every entry point of the product (uploads, datasets, the CLI) reads pictures through here,
so odd inputs are handled once: EXIF orientation, palette/CMYK/16-bit/alpha modes, animated
images (first frame), decompression bombs and zero-byte or non-image files. Problems come back
as `ImageError` naming the file, never as a PIL traceback.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fer_core.errors import ImageError

# Images larger than this are refused before decoding (PIL's bomb guard raised to it).
MAX_PIXELS: int = 60_000_000
# Decoded images whose longer side exceeds this are downscaled: detection does not need more,
# and it keeps a 50-megapixel photo from costing seconds in every later step.
MAX_SIDE: int = 4096


@dataclass
class DecodedImage:
    """An RGB picture plus what happened while decoding it (shown to the user as notes)."""

    rgb: np.ndarray  # (H, W, 3) uint8
    name: str
    original_size: tuple[int, int]  # (width, height) before any downscale
    notes: list[str] = field(default_factory=list)

    @property
    def scale(self) -> float:
        """Factor from original pixel coordinates to `rgb` coordinates."""
        return self.rgb.shape[1] / self.original_size[0]


def _open(source: bytes | str | os.PathLike, name: str) -> Image.Image:
    if isinstance(source, (bytes, bytearray)):
        if len(source) == 0:
            raise ImageError(f"{name}: the file is empty (0 bytes)")
        stream: io.BytesIO | str | os.PathLike = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{name}: no such file")
        if path.stat().st_size == 0:
            raise ImageError(f"{name}: the file is empty (0 bytes)")
        stream = path
    previous_limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(stream)
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageError(
                    f"{name}: the image is {width}x{height} ({width * height / 1e6:.0f} megapixels), "
                    f"more than the {MAX_PIXELS / 1e6:.0f} megapixels this app accepts; resize it first"
                )
            image.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageError(f"{name}: refused as a possible decompression bomb ({error})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file (or a format that cannot be read)") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"{name}: the image is corrupt or truncated ({error})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous_limit
    return image


def _to_rgb(image: Image.Image, notes: list[str]) -> Image.Image:
    """Convert any PIL mode to RGB; 16-bit and float images are rescaled to 8 bits."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) / (high - low) * 255.0 if high > low else np.zeros_like(array)
        notes.append(f"{image.mode} image rescaled to 8 bits")
        return Image.fromarray(scaled.round().astype(np.uint8), mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Composite transparent pixels on white rather than letting them turn black.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode == "CMYK":
        notes.append("CMYK image converted to RGB")
    return image.convert("RGB")


def decode_image(source: bytes | str | os.PathLike, name: str | None = None) -> DecodedImage:
    """Decode bytes or a path into an upright RGB uint8 array, or raise `ImageError`."""
    label = name or (Path(source).name if not isinstance(source, (bytes, bytearray)) else "image")
    image = _open(source, label)
    notes: list[str] = []
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        image.seek(0)
        notes.append(f"animated image with {frames} frames: only the first frame is analysed")
    try:
        upright = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a malformed EXIF block must not lose the picture
        upright = image
        notes.append("EXIF orientation could not be read and was ignored")
    original_size = upright.size
    rgb_image = _to_rgb(upright, notes)
    longest = max(rgb_image.size)
    if longest > MAX_SIDE:
        factor = MAX_SIDE / longest
        new_size = (max(1, round(rgb_image.width * factor)), max(1, round(rgb_image.height * factor)))
        rgb_image = rgb_image.resize(new_size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        notes.append(f"downscaled from {original_size[0]}x{original_size[1]} to {new_size[0]}x{new_size[1]}")
    return DecodedImage(rgb=np.asarray(rgb_image, dtype=np.uint8), name=label, original_size=original_size, notes=notes)


def read_grayscale(path: str | os.PathLike) -> np.ndarray:
    """Read one dataset image as (H, W) uint8 grayscale, or raise `ImageError` naming it."""
    image = _open(path, str(path))
    return np.asarray(_to_rgb(ImageOps.exif_transpose(image), []).convert("L"), dtype=np.uint8)
