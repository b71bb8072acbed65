"""Loading FER datasets (Kaggle CSV or image-folder tree) into arrays and tf.data pipelines.

Both public FER2013 formats end up as the same `FaceDataset`: grayscale uint8 faces at the
model's input size and integer labels in `CLASSES` order, so training and evaluation never
care where the data came from.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_core.classes import CLASSES, CSV_CODE_TO_INDEX, NUM_CLASSES, class_index
from fer_core.errors import DatasetError, FerError, ImageError
from fer_core.image_io import read_grayscale
from fer_core.preprocessing import resize_gray, to_gray

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
CSV_USAGES = ("Training", "PublicTest", "PrivateTest")


@dataclass
class FaceDataset:
    """Face crops and labels held in memory (FER2013 is 66 MB at 48x48)."""

    images: np.ndarray  # (N, S, S) uint8 grayscale
    labels: np.ndarray  # (N,) int32, indexes into CLASSES
    source: str
    skipped: int = 0  # unreadable files left out (image folders only)
    # Where each face came from inside `source`, so a report can show it again later:
    # "angry/0001.jpg" (image folder, relative path), "line 17" (CSV), "face 42" (dataset store).
    ids: list[str] | None = None

    def __post_init__(self) -> None:
        if self.ids is not None and len(self.ids) != len(self.labels):
            raise ValueError(f"{len(self.ids)} ids for {len(self.labels)} faces")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: np.ndarray, source: str | None = None) -> FaceDataset:
        """The faces at `index` (integer positions or a boolean mask), ids kept aligned."""
        positions = np.flatnonzero(index) if np.asarray(index).dtype == bool else np.asarray(index)
        ids = [self.ids[position] for position in positions] if self.ids is not None else None
        return FaceDataset(self.images[positions], self.labels[positions], source or self.source, ids=ids)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=NUM_CLASSES)
        return {name: int(count) for name, count in zip(CLASSES, counts, strict=True)}


def is_fer_csv(path: str | os.PathLike) -> bool:
    return Path(path).is_file() and Path(path).suffix.lower() == ".csv"


class CsvRowProblem(DatasetError):
    """One row of a FER2013 CSV is unusable; `reason` says why without the file and line."""

    def __init__(self, path: Path, line: int, reason: str):
        self.reason = reason
        super().__init__(f"{path}, line {line}: {reason}")


@dataclass(frozen=True)
class FerCsvRow:
    """One data row of a Kaggle `emotion,pixels[,Usage]` CSV; its cells are parsed on request."""

    path: Path
    line: int
    cells: list[str]
    width: int  # the header's number of columns
    emotion_col: int
    pixels_col: int
    usage_col: int | None

    @property
    def empty(self) -> bool:
        return not self.cells or all(not cell.strip() for cell in self.cells)

    def _cell(self, column: int) -> str:
        if len(self.cells) <= column:
            raise CsvRowProblem(self.path, self.line, f"expected {self.width} columns, found {len(self.cells)}")
        return self.cells[column]

    @property
    def usage(self) -> str | None:
        return self._cell(self.usage_col).strip() if self.usage_col is not None else None

    def label(self) -> int:
        """The emotion as an index into CLASSES (the CSV numbers them differently)."""
        cell = self._cell(self.emotion_col)
        try:
            return CSV_CODE_TO_INDEX[int(cell)]
        except (ValueError, KeyError):
            raise CsvRowProblem(self.path, self.line, f"emotion {cell!r} is not a code 0-6") from None

    def pixels(self) -> np.ndarray:
        """The face as a (side, side) uint8 square."""
        cell = self._cell(self.pixels_col)  # outside the try: CsvRowProblem is a ValueError too
        try:
            values = np.array(cell.split(), dtype=np.int64)
        except ValueError:
            raise CsvRowProblem(self.path, self.line, "pixels must be space-separated integers") from None
        side = int(round(np.sqrt(values.size)))
        if values.size == 0 or side * side != values.size:
            raise CsvRowProblem(self.path, self.line, f"{values.size} pixel values do not form a square image (48x48 needs 2304)")
        if values.min() < 0 or values.max() > 255:
            raise CsvRowProblem(self.path, self.line, "pixel values must be within 0-255")
        return values.astype(np.uint8).reshape(side, side)


def iter_fer_csv(path: str | os.PathLike) -> Iterator[FerCsvRow]:
    """The rows of a FER2013 CSV, after checking its header: the one reader behind loading,
    counting, re-reading a report's faces and importing into a custom dataset. DatasetError for
    a missing, empty or non-CSV file, or one without the emotion and pixels columns."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such CSV file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise DatasetError(f"{path}: the CSV file is empty")
            columns = [column.strip().lower() for column in header]
            if "emotion" not in columns or "pixels" not in columns:
                raise DatasetError(f"{path}: expected the columns emotion,pixels[,Usage]; found {','.join(header)}")
            layout = (len(header), columns.index("emotion"), columns.index("pixels"),
                      columns.index("usage") if "usage" in columns else None)
            for line, cells in enumerate(reader, start=2):
                yield FerCsvRow(path, line, cells, *layout)
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not a UTF-8 text file ({error.reason})") from None
    except csv.Error as error:
        raise DatasetError(f"{path}: not a valid CSV file ({error})") from None


def load_fer_csv(path: str | os.PathLike, usages: Sequence[str] | None = None, image_size: int = 48) -> FaceDataset:
    """Read the Kaggle `emotion,pixels,Usage` CSV, keeping rows whose Usage is in `usages`."""
    path = Path(path)
    wanted = _check_usages(path, usages)
    images: list[np.ndarray] = []
    labels: list[int] = []
    ids: list[str] = []
    for row in iter_fer_csv(path):
        if wanted is not None and row.usage_col is None:
            raise DatasetError(f"{path}: --usage was given but the CSV has no Usage column")
        if row.empty:
            raise CsvRowProblem(path, row.line, "empty row")
        if wanted is not None and row.usage not in wanted:
            continue
        labels.append(row.label())
        images.append(resize_gray(row.pixels(), image_size))
        ids.append(f"line {row.line}")
    if not images:
        which = "" if wanted is None else f" with Usage {', '.join(sorted(wanted))}"
        raise DatasetError(f"{path}: no rows{which}")
    return FaceDataset(np.stack(images), np.asarray(labels, dtype=np.int32), source=str(path), ids=ids)


def _check_usages(path: Path, usages: Iterable[str] | None) -> set[str] | None:
    wanted = None if usages is None else {usage.strip() for usage in usages}
    if wanted is not None and not wanted <= set(CSV_USAGES):
        raise DatasetError(f"{path}: unknown Usage {sorted(wanted - set(CSV_USAGES))}; expected {', '.join(CSV_USAGES)}")
    return wanted


def list_image_folder(root: str | os.PathLike) -> tuple[list[Path], np.ndarray]:
    """Paths and labels of `<root>/<class>/*` images; unknown class folders are an error."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    class_dirs = sorted(entry for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    if not class_dirs:
        raise DatasetError(f"{root}: expected one sub-folder per class ({', '.join(CLASSES)}), found none")
    unknown = [entry.name for entry in class_dirs if entry.name.strip().lower() not in CLASSES]
    if unknown:
        raise DatasetError(f"{root}: unknown class folder(s) {', '.join(unknown)}; expected {', '.join(CLASSES)}")
    paths: list[Path] = []
    labels: list[int] = []
    for class_dir in class_dirs:
        label = class_index(class_dir.name)
        for file in sorted(class_dir.iterdir()):
            if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(file)
                labels.append(label)
    if not paths:
        raise DatasetError(f"{root}: the class folders hold no images ({', '.join(IMAGE_SUFFIXES)})")
    return paths, np.asarray(labels, dtype=np.int32)


def load_image_folder(root: str | os.PathLike, image_size: int = 48, strict: bool = True) -> FaceDataset:
    """Read every image under `<root>/<class>/` as grayscale `image_size` squares.

    strict: an unreadable image raises `DatasetError` naming it; otherwise it is skipped and
    counted in `FaceDataset.skipped`.
    """
    paths, labels = list_image_folder(root)

    def read(path: Path) -> np.ndarray | None:
        try:
            return resize_gray(read_grayscale(path), image_size)
        except ImageError as error:
            if strict:
                raise DatasetError(f"{error} (in dataset {root})") from None
            return None

    with ThreadPoolExecutor(max_workers=4) as pool:
        images = list(pool.map(read, paths))
    keep = [index for index, image in enumerate(images) if image is not None]
    return FaceDataset(
        images=np.stack([images[index] for index in keep]),
        labels=labels[keep],
        source=str(root),
        skipped=len(paths) - len(keep),
        ids=[paths[index].relative_to(root).as_posix() for index in keep],
    )


def load_dataset(path: str | os.PathLike, usages: Iterable[str] | None = None, image_size: int = 48) -> FaceDataset:
    """Load a FER2013 CSV (optionally filtered by Usage), an image-folder root, or a custom dataset
    root (a folder with index.sqlite, fer_core/dataset_store.py): its labelled faces of the splits
    named by `usages` (train, val, test; default train)."""
    from fer_core.dataset_records import resolve_splits
    from fer_core.dataset_store import DatasetStore, is_dataset_root  # lazy: it imports this module

    path = Path(path)
    if is_dataset_root(path):
        splits = resolve_splits(list(usages)) if usages else ("train",)
        return DatasetStore(path, create=False).face_dataset(splits=splits, image_size=image_size)
    if is_fer_csv(path):
        return load_fer_csv(path, list(usages) if usages else None, image_size=image_size)
    if path.is_dir():
        if usages:
            raise DatasetError(f"{path}: --usage applies to a FER2013 CSV, not to an image folder")
        return load_image_folder(path, image_size=image_size)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    raise DatasetError(f"{path}: expected a FER2013 CSV file or an image folder <root>/<class>/*")


def count_faces(path: str | os.PathLike, usages: Iterable[str] | None = None) -> dict[str, int]:
    """Faces per class at `path` without decoding any image: what a training form shows, and
    the check that runs before a training starts. DatasetError for a missing path, a folder
    without class sub-folders, a CSV without the expected columns, or no faces at all."""
    from fer_core.dataset_records import resolve_splits
    from fer_core.dataset_store import DatasetStore, is_dataset_root

    path = Path(path)
    counts = dict.fromkeys(CLASSES, 0)
    if is_dataset_root(path):
        store = DatasetStore(path, create=False)
        for split in resolve_splits(list(usages)) if usages else ("train",):
            for name in CLASSES:
                counts[name] += store.count(label=name, split=split)
        where = f"{path} ({', '.join(usages) if usages else 'train'} split)"
    elif is_fer_csv(path):
        wanted = _check_usages(path, usages)
        for row in iter_fer_csv(path):
            if wanted is not None and row.usage_col is None:
                raise DatasetError(f"{path}: a Usage filter was given but the CSV has no Usage column")
            if row.empty or (wanted is not None and row.usage not in wanted):
                continue
            counts[CLASSES[row.label()]] += 1
        where = f"{path}" + (f" (Usage {', '.join(sorted(wanted))})" if wanted else "")
    elif path.is_dir():
        if usages:
            raise DatasetError(f"{path}: a Usage filter applies to a FER2013 CSV, not to an image folder")
        _, labels = list_image_folder(path)
        for label, count in zip(*np.unique(labels, return_counts=True), strict=True):
            counts[CLASSES[label]] = int(count)
        where = str(path)
    elif not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    else:
        raise DatasetError(f"{path}: expected a FER2013 CSV file, an image folder <root>/<class>/* or a custom dataset folder")
    if not sum(counts.values()):
        raise DatasetError(f"{where}: no faces to train on")
    return counts


def load_faces(source: str | os.PathLike, ids: Sequence[str], image_size: int = 48) -> list[np.ndarray | None]:
    """The faces named by `FaceDataset.ids` (relative paths, "line N" of a CSV, "face N" of a
    dataset store), read again from `source` as grayscale squares; None for one that is gone.
    DatasetError when `source` itself is not on this machine."""
    from fer_core.dataset_store import DatasetStore, is_dataset_root

    source = Path(source)
    if not source.exists():
        raise DatasetError(f"{source}: the evaluation data is not on this machine")
    faces: list[np.ndarray | None] = [None] * len(ids)
    if is_dataset_root(source):
        store = DatasetStore(source, create=False)
        for position, face_id in enumerate(ids):
            try:
                faces[position] = resize_gray(to_gray(store.load_image(int(face_id.removeprefix("face ")))), image_size)
            except (FerError, ValueError, OSError):
                faces[position] = None
    elif is_fer_csv(source):
        wanted = {int(face_id.removeprefix("line ")): position for position, face_id in enumerate(ids)}
        last = max(wanted, default=0)
        for row in iter_fer_csv(source):
            if row.line in wanted:
                try:
                    faces[wanted[row.line]] = resize_gray(row.pixels(), image_size)
                except CsvRowProblem:
                    faces[wanted[row.line]] = None
            if row.line >= last:
                break
    else:
        for position, face_id in enumerate(ids):
            path = (source / face_id).resolve()
            if not path.is_relative_to(source.resolve()):  # ids come from a report file: never leave the data root
                continue
            try:
                faces[position] = resize_gray(read_grayscale(path), image_size)
            except (ImageError, OSError):
                faces[position] = None
    return faces
