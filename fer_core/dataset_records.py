"""The custom dataset's vocabulary: its sources and splits, what a face record holds, and the
checks every value passes before the store writes it.

Pages, the CLI, imports and exports share these without opening a store; `dataset_store` holds the
SQLite index and the files that use them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image

from fer_core.classes import CLASSES, class_index
from fer_core.errors import DatasetError, ImageError
from fer_core.preprocessing import Box

IMAGES_DIR = "images"  # faces' PNG files, under the dataset root
SOURCES: tuple[str, ...] = ("upload", "camera", "webcam", "import")
SPLITS: tuple[str, ...] = ("train", "val", "test")
UNLABELLED = "unlabelled"  # the label filter (and export folder) for faces without a label
# FER2013 CSV Usage values for the splits (CSV export, and accepted as split names by face_dataset).
SPLIT_TO_USAGE: dict[str, str] = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
USAGE_TO_SPLIT: dict[str, str] = {usage: split for split, usage in SPLIT_TO_USAGE.items()}
MIN_TRAIN_PER_CLASS = 10  # fewer training faces than this in a class: too few to train

_SHA = re.compile(r"^[0-9a-f]{64}$")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def normalize_time(value: str | datetime) -> str:
    """Any ISO-8601 time (naive means UTC) as the store writes it, so strings compare in order."""
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise DatasetError(f"{value!r} is not an ISO-8601 time (e.g. 2024-05-01T12:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def check_label(label: str | None) -> str | None:
    """A class name (any case) as stored, None for no label; anything else is a DatasetError."""
    if label is None:
        return None
    try:
        return CLASSES[class_index(str(label))]
    except ValueError as error:
        raise DatasetError(str(error)) from None


def check_source(source: str) -> str:
    if source not in SOURCES:
        raise DatasetError(f"unknown face source {source!r}; expected one of {', '.join(SOURCES)}")
    return source


def resolve_splits(names: Sequence[str] | str) -> tuple[str, ...]:
    """Split names (train, val, test; FER2013's Training, PublicTest, PrivateTest also work)."""
    names = [names] if isinstance(names, str) else list(names)
    splits = []
    for name in names:
        key = str(name).strip()
        split = USAGE_TO_SPLIT.get(key, key.lower())
        if split not in SPLITS:
            raise DatasetError(f"unknown split {name!r}; expected {', '.join(SPLITS)} (or {', '.join(USAGE_TO_SPLIT)})")
        if split not in splits:
            splits.append(split)
    if not splits:
        raise DatasetError(f"no split given; expected {', '.join(SPLITS)}")
    return tuple(splits)


def split_for(sha256: str) -> str:
    """The split of a face, fixed by its pixel hash: 80% train, 10% val, 10% test."""
    bucket = int(sha256[:8], 16) % 10
    return "train" if bucket < 8 else ("val" if bucket == 8 else "test")


def pixel_hash(pixels: np.ndarray) -> str:
    """SHA-256 of the decoded pixels and their shape: the same face as JPEG or PNG hashes alike."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    return hashlib.sha256(repr(pixels.shape).encode() + pixels.tobytes()).hexdigest()


def image_file(sha256: str) -> str:
    """Where a face's PNG lives inside the root, derived from its hash only."""
    if not _SHA.match(sha256):
        raise DatasetError(f"{sha256!r} is not a SHA-256 hex digest")
    return f"{IMAGES_DIR}/{sha256[:2]}/{sha256}.png"


def read_png(path: Path) -> np.ndarray:
    """A stored face: (H, W) gray or (H, W, 3) RGB uint8; ImageError when missing or unreadable."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode not in ("L", "RGB"):
                raise ImageError(f"{path}: unexpected image mode {image.mode} in the dataset")
            return np.asarray(image, dtype=np.uint8)
    except FileNotFoundError:
        raise ImageError(f"{path}: the face image is missing") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"{path}: the face image is unreadable ({error})") from None


# --- records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    """What a model said about a face when it was captured (or re-predicted)."""

    label: str
    confidence: float
    model_name: str = ""


@dataclass(frozen=True)
class FaceRecord:
    """One row of the index. `file` is relative to the root; `box` is in the original picture."""

    id: int
    file: str
    label: str | None
    source: str
    origin: str
    created: str
    updated: str
    predicted_label: str | None
    confidence: float | None
    model_name: str | None
    box: Box | None
    width: int
    height: int
    channels: int
    sha256: str
    split: str
    notes: str
    version: int
    deleted_at: str | None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def prediction(self) -> Prediction | None:
        if self.predicted_label is None:
            return None
        return Prediction(self.predicted_label, float(self.confidence or 0.0), self.model_name or "")

    def as_row(self) -> dict:
        """Plain values for a table or JSON (the box flattened)."""
        row = asdict(self)
        box = row.pop("box")
        row.update({f"box_{key}": (box or {}).get(key) for key in ("x", "y", "width", "height")})
        return row


@dataclass(frozen=True)
class NewFace:
    """A face to add: the crop itself, RGB (H, W, 3) or gray (H, W) uint8, and what is known of it."""

    image: np.ndarray = field(repr=False)
    source: str
    label: str | None = None
    prediction: Prediction | None = None
    box: Box | tuple[int, int, int, int] | None = None
    origin: str = ""
    notes: str = ""
    created: str | None = None  # kept from an export; default: now


@dataclass(frozen=True)
class PreparedFace:
    """A validated `NewFace`: stored pixels, their hash and PNG bytes, ready to be written."""

    pixels: np.ndarray = field(repr=False)
    png: bytes = field(repr=False)
    sha256: str
    label: str | None
    source: str
    prediction: Prediction | None
    box: Box | None
    origin: str
    notes: str
    created: str | None

    @property
    def file(self) -> str:
        return image_file(self.sha256)


@dataclass(frozen=True)
class QueuePosition:
    """Where a face stands in a review queue (`DatasetStore.queue_position`)."""

    before: int  # queued faces that come before it
    total: int  # faces in the queue now
    inside: bool  # whether the face itself is in the queue

    @property
    def number(self) -> int:
        """Its 1-based place in the queue (where it would be, when it left the queue)."""
        return self.before + 1


@dataclass
class UndoResult:
    """What `undo` reverted."""

    action: str
    face_ids: list[int]
    description: str


@dataclass
class DatasetStats:
    """Counts over the faces that are not deleted (`deleted` counts the others)."""

    by_label_split: dict[str, dict[str, int]]  # labelled faces: class -> split -> count
    by_source: dict[str, int]
    unlabelled: int
    deleted: int
    total: int

    @property
    def labelled(self) -> int:
        return self.total - self.unlabelled

    @property
    def by_label(self) -> dict[str, int]:
        return {label: sum(splits.values()) for label, splits in self.by_label_split.items()}

    @property
    def by_split(self) -> dict[str, int]:
        return {split: sum(splits[split] for splits in self.by_label_split.values()) for split in SPLITS}

    def too_small(self, min_per_class: int = MIN_TRAIN_PER_CLASS, split: str = "train") -> list[str]:
        """Classes with fewer than `min_per_class` labelled faces in `split`: too few to train on."""
        return [label for label, splits in self.by_label_split.items() if splits[split] < min_per_class]

    def training_problems(self, min_per_class: int = MIN_TRAIN_PER_CLASS) -> list[str]:
        """Why this dataset is not ready to train on yet, in plain words (empty when it is):
        classes with too few training faces, and an empty test split (nothing to compare on)."""
        problems = []
        small = self.too_small(min_per_class)
        if small:
            counts = ", ".join(f"{label} {self.by_label_split[label]['train']}" for label in small)
            problems.append(
                f"too few labelled training faces in {len(small)} of {len(CLASSES)} classes ({counts}); "
                f"each class needs at least {min_per_class} in the train split"
            )
        splits = self.by_split
        if splits["val"] == 0:
            problems.append("no labelled face in the val split, so a training has nothing to validate on")
        if splits["test"] == 0:
            problems.append("no labelled face in the test split, so the new model cannot be compared with the old one")
        return problems

    def to_dict(self) -> dict:
        return {
            "total": self.total,
            "labelled": self.labelled,
            "unlabelled": self.unlabelled,
            "deleted": self.deleted,
            "by_label_split": self.by_label_split,
            "by_label": self.by_label,
            "by_split": self.by_split,
            "by_source": self.by_source,
        }

    def table(self) -> str:
        header = f"{'label':<10}" + "".join(f"{split:>7}" for split in SPLITS) + f"{'all':>7}"
        lines = [header]
        for label, splits in self.by_label_split.items():
            counts = [splits[split] for split in SPLITS]
            lines.append(f"{label:<10}" + "".join(f"{count:>7}" for count in counts) + f"{sum(counts):>7}")
        totals = [self.by_split[split] for split in SPLITS]
        lines.append(f"{'labelled':<10}" + "".join(f"{count:>7}" for count in totals) + f"{sum(totals):>7}")
        return "\n".join(lines)


@dataclass
class CheckReport:
    """What `check` found (and, with repair, did)."""

    faces: int = 0
    files: int = 0
    orphan_files: list[str] = field(default_factory=list)  # relative to the root, no row
    missing: list[int] = field(default_factory=list)  # face ids whose file is gone
    unreadable: list[tuple[int, str]] = field(default_factory=list)  # (face id, reason)
    integrity: list[str] = field(default_factory=list)  # SQLite's own complaints
    actions: list[str] = field(default_factory=list)  # what repair did

    @property
    def ok(self) -> bool:
        return not (self.orphan_files or self.missing or self.unreadable or self.integrity)

    def lines(self) -> list[str]:
        lines = [f"{self.faces} faces, {self.files} image files"]
        lines += [f"orphan file (no row): {file}" for file in self.orphan_files]
        lines += [f"face {face_id}: image file missing" for face_id in self.missing]
        lines += [f"face {face_id}: {reason}" for face_id, reason in self.unreadable]
        lines += [f"index: {problem}" for problem in self.integrity]
        lines += [f"repaired: {action}" for action in self.actions]
        if self.ok and not self.actions:
            lines.append("no problem found")
        return lines
