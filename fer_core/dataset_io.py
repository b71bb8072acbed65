"""Getting faces into and out of the custom dataset: photos through the detector, class-folder
trees, ZIPs, FER2013 CSVs, and exports that import back with every label.

Everything read here is untrusted. ZIP members are read in memory, never extracted; an absolute or
`..` member refuses the whole archive (zip slip), and the member count and uncompressed size are
capped before anything is read. Every picture goes through `image_io.decode_image` (EXIF, CMYK,
16-bit, decompression bombs). One bad file becomes a reason in the report, never the end of the
import; names from the input only ever become the faces' `origin` text, never a path.
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
import tempfile
import uuid
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fer_core.classes import CLASSES, CSV_CODE_TO_CLASS
from fer_core.data import IMAGE_SUFFIXES, CsvRowProblem, iter_fer_csv
from fer_core.dataset_records import (
    SOURCES,
    SPLIT_TO_USAGE,
    UNLABELLED,
    NewFace,
    Prediction,
    check_label,
    normalize_time,
)
from fer_core.dataset_store import PRECROPPED_MAX_SIDE, DatasetStore, write_file_atomically
from fer_core.detection import DetectorSettings
from fer_core.errors import DatasetError, DuplicateFaceError, FerError, ImageError
from fer_core.image_io import decode_image
from fer_core.preprocessing import Box, face_region, resize_gray, to_gray

if TYPE_CHECKING:
    from fer_core.inference import EmotionClassifier, EmotionRecognizer

MAX_ZIP_MEMBERS = 20_000  # also the most files a folder import reads
MAX_ZIP_BYTES = 2 * 1024**3  # total uncompressed size, as the ZIP's headers state it
MAX_MEMBER_BYTES = 100 * 1024**2  # one picture larger than this is skipped unread
MANIFEST_FILE = "manifest.csv"
MANIFEST_COLUMNS = (
    "file", "label", "source", "created", "predicted_label", "confidence", "split",
    "origin", "notes", "model_name", "box_x", "box_y", "box_width", "box_height",
)  # fmt: skip
CSV_FACE_SIZE = 48  # FER2013 CSV pixels are 48x48 grayscale
CLASS_TO_CSV_CODE: dict[str, int] = {name: code for code, name in CSV_CODE_TO_CLASS.items()}
UNLABELLED_FOLDERS = (UNLABELLED, "unlabeled")
IMPORT_CHUNK = 64  # faces predicted and committed together (short write locks: the page stays responsive)


# --- faces from photos -------------------------------------------------------------------------


@dataclass
class FaceCandidate:
    """One face found in a photo, ready to be added (`image` is what gets stored)."""

    image: np.ndarray = field(repr=False)  # RGB crop: the box's square widened by the model's margin
    box: Box | None  # in the original picture's pixels; None for a picture that is a face crop already
    prediction: Prediction  # the active model's top class, confidence and name
    probabilities: np.ndarray = field(repr=False)  # (7,) in the classifier's class order
    detection_score: float = 1.0


def face_candidates(
    recognizer: EmotionRecognizer,
    rgb: np.ndarray,
    settings: DetectorSettings = DetectorSettings(),
    *,
    tta: str = "none",
    scale: float = 1.0,
) -> list[FaceCandidate]:
    """Every face the recognizer's detector finds in `rgb`, cropped with the model card's margin
    (the geometry inference uses) and pre-labelled by its classifier. `scale`: the picture's
    `DecodedImage.scale`, so boxes come back in the original picture's pixels."""
    classifier = recognizer.classifier
    detections = recognizer.detector.detect(rgb, settings)
    if not detections:
        return []
    faces = np.stack([classifier.prepare_face(rgb, detection.box) for detection in detections])
    probabilities = classifier.predict_faces(faces, tta)
    candidates = []
    for detection, probs in zip(detections, probabilities, strict=True):
        box = detection.box
        if scale != 1.0:
            box = Box(*(int(round(value / scale)) for value in box.as_tuple()))
        candidates.append(
            FaceCandidate(
                image=np.ascontiguousarray(face_region(rgb, detection.box, classifier.margin)),
                box=box,
                prediction=_top(classifier, probs),
                probabilities=np.asarray(probs),
                detection_score=float(detection.score),
            )
        )
    return candidates


def picture_candidates(
    recognizer: EmotionRecognizer,
    rgb: np.ndarray,
    settings: DetectorSettings = DetectorSettings(),
    *,
    tta: str = "none",
    scale: float = 1.0,
) -> list[FaceCandidate]:
    """The faces of one uploaded or captured picture: a small one (longest side <= 128 px, such
    as a FER crop) is one face as it is (no detection, no box, gray when its channels are equal);
    a larger photo gives one candidate per detected face (`face_candidates`)."""
    if not is_precropped(rgb):
        return face_candidates(recognizer, rgb, settings, tta=tta, scale=scale)
    classifier = recognizer.classifier
    image = stored_pixels(rgb)
    probabilities = classifier.predict_faces(classifier.prepare_face(image)[np.newaxis], tta)[0]
    return [FaceCandidate(image, None, _top(classifier, probabilities), np.asarray(probabilities))]


def _top(classifier: EmotionClassifier, probabilities: np.ndarray) -> Prediction:
    top = int(np.argmax(probabilities))
    return Prediction(classifier.classes[top], float(probabilities[top]), classifier.card.name)


def is_precropped(image: np.ndarray) -> bool:
    """Small images (FER's 48x48 and the like) are face crops already: stored whole, never detected."""
    return max(image.shape[:2]) <= PRECROPPED_MAX_SIDE


def predict_images(classifier: EmotionClassifier, images: Sequence[np.ndarray], tta: str = "none") -> list[Prediction]:
    """The classifier's top class for whole face crops (RGB or gray), in one batch."""
    if not images:
        return []
    faces = np.stack([classifier.prepare_face(image) for image in images])
    return [_top(classifier, probs) for probs in classifier.predict_faces(faces, tta)]


def stored_pixels(rgb: np.ndarray) -> np.ndarray:
    """A decoded picture as the store keeps it: gray when its three channels are equal."""
    if rgb.ndim == 3 and np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(rgb[:, :, 0], rgb[:, :, 2]):
        return np.ascontiguousarray(rgb[:, :, 0])
    return rgb


# --- import ------------------------------------------------------------------------------------


@dataclass
class ImportReport:
    """What an import did, per file: added face ids, duplicates (with the face holding those
    pixels) and skipped files with the reason."""

    source: str
    added: list[int] = field(default_factory=list)
    duplicates: list[tuple[str, int]] = field(default_factory=list)  # (origin, existing face id)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (origin, reason)

    def summary(self) -> str:
        return f"{self.source}: {len(self.added)} added, {len(self.duplicates)} duplicates, {len(self.skipped)} skipped"

    def lines(self, limit: int | None = None) -> list[str]:
        lines = [self.summary()]
        details = [f"duplicate: {origin} is face {face_id} already" for origin, face_id in self.duplicates]
        details += [f"skipped: {origin}: {reason}" for origin, reason in self.skipped]
        if limit is not None and len(details) > limit:
            details = details[:limit] + [f"... and {len(details) - limit} more"]
        return lines + details


class _Skip(Exception):
    """A member that cannot be read; its message is the reason in the report."""


class _Importer:
    """Collects faces, predicts those without a prediction in batches, stores them in chunks."""

    def __init__(
        self,
        store: DatasetStore,
        report: ImportReport,
        recognizer: EmotionRecognizer | None,
        actor: str,
        settings: DetectorSettings,
        tta: str,
    ):
        self.store, self.report, self.recognizer = store, report, recognizer
        self.actor, self.settings, self.tta = actor, settings, tta
        self.batch = uuid.uuid4().hex  # the whole import is one undo step
        self.pending: list[tuple[str, NewFace]] = []

    def skip(self, origin: str, reason: str) -> None:
        self.report.skipped.append((origin, reason))

    def face(self, origin: str, face: NewFace) -> None:
        self.pending.append((origin, face))
        if len(self.pending) >= IMPORT_CHUNK:
            self.flush()

    def picture(self, origin: str, source: bytes | Path, label: str | None, every_face: bool) -> None:
        """A picture file: a small one is a face crop; a photo goes through the detector (its
        largest face, or every face when `every_face`)."""
        try:
            decoded = decode_image(source, name=origin)
        except ImageError as error:
            self.skip(origin, str(error).removeprefix(f"{origin}: "))
            return
        rgb = decoded.rgb
        if is_precropped(rgb):
            self.face(origin, NewFace(stored_pixels(rgb), "import", label, origin=origin))
            return
        if self.recognizer is None:
            self.skip(origin, f"a {rgb.shape[1]}x{rgb.shape[0]} photo: finding its face needs a model and detector")
            return
        candidates = face_candidates(self.recognizer, rgb, self.settings, tta=self.tta, scale=decoded.scale)
        if not candidates:
            self.skip(origin, "no face found in the photo")
            return
        chosen = candidates if every_face else [max(candidates, key=lambda candidate: candidate.box.area if candidate.box else 0)]
        for number, candidate in enumerate(chosen, start=1):
            name = origin if len(chosen) == 1 else f"{origin} #{number}"
            self.face(name, NewFace(candidate.image, "import", label, candidate.prediction, candidate.box, origin=name))

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        if self.recognizer is not None:
            unpredicted = [index for index, (_, face) in enumerate(pending) if face.prediction is None]
            images = [pending[index][1].image for index in unpredicted]
            for index, prediction in zip(
                unpredicted, predict_images(self.recognizer.classifier, images, self.tta), strict=True
            ):
                origin, face = pending[index]
                pending[index] = (origin, replace(face, prediction=prediction))
        origins, prepared = [], []
        for origin, face in pending:
            try:
                prepared.append(self.store.prepare(face))
                origins.append(origin)
            except FerError as error:
                self.skip(origin, str(error))
        results = self.store.add_faces(prepared, self.actor, batch=self.batch)
        for origin, result in zip(origins, results, strict=True):
            if isinstance(result, DuplicateFaceError):
                self.report.duplicates.append((origin, int(result.existing_id)))
            else:
                self.report.added.append(result.id)


def _folder_label(name: str) -> tuple[bool, str | None]:
    """(is a known folder, its label): a class name in any case, or "unlabelled" (no label)."""
    key = name.strip().lower()
    if key in UNLABELLED_FOLDERS:
        return True, None
    if key in CLASSES:
        return True, key
    return False, None


def _ignored(name: str) -> bool:
    """macOS resource forks and hidden files: skipped without a word."""
    return any(part.startswith(".") or part == "__MACOSX" for part in name.split("/"))


def _is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


def _read_bytes(source: bytes | Path) -> bytes:
    return source.read_bytes() if isinstance(source, Path) else source


def _import_tree(importer: _Importer, names: list[str], read: Callable[[str], bytes | Path]) -> None:
    """`<class>/<image>` members (optionally under one top folder), or this store's export."""
    names = [name for name in names if not _ignored(name)]
    prefix = ""
    if MANIFEST_FILE not in names and names and all("/" in name for name in names):
        tops = {name.split("/", 1)[0] for name in names}
        if len(tops) == 1 and not _folder_label(next(iter(tops)))[0]:
            prefix = next(iter(tops)) + "/"
    if prefix + MANIFEST_FILE in names:
        _import_manifest(importer, names, prefix, read)
        return
    reported: set[str] = set()
    for name in names:
        parts = name[len(prefix) :].split("/")
        if len(parts) == 1:
            importer.skip(name, "not inside a class folder")
            continue
        known, label = _folder_label(parts[0])
        if not known:
            folder = prefix + parts[0] + "/"
            if folder not in reported:
                reported.add(folder)
                importer.skip(folder, f"not a class folder (expected {', '.join(CLASSES)} or {UNLABELLED})")
            continue
        if len(parts) > 2:
            importer.skip(name, "inside a sub-folder of a class folder (only the images directly in it are read)")
        elif not _is_image_name(name):
            importer.skip(name, f"not an image file (expected {', '.join(IMAGE_SUFFIXES)})")
        else:
            try:
                source = read(name)
            except _Skip as reason:
                importer.skip(name, str(reason))
                continue
            # A labelled photo gives its largest face the label; an unlabelled one gives every face.
            importer.picture(name, source, label, every_face=label is None)


def _import_manifest(importer: _Importer, names: list[str], prefix: str, read: Callable[[str], bytes | Path]) -> None:
    """This store's export: keep label, source, prediction, box, created, origin and notes."""
    manifest = prefix + MANIFEST_FILE
    try:
        text = _read_bytes(read(manifest)).decode("utf-8-sig")
    except (_Skip, UnicodeDecodeError, OSError) as error:
        raise DatasetError(f"{importer.report.source}: {manifest} cannot be read ({error})") from None
    try:
        rows = list(csv.DictReader(io.StringIO(text)))
    except csv.Error as error:
        raise DatasetError(f"{importer.report.source}: {manifest} is not a valid CSV ({error})") from None
    if rows and "file" not in rows[0]:
        raise DatasetError(f"{importer.report.source}: {manifest} has no 'file' column")
    available = set(names)
    listed = {manifest}
    for line, row in enumerate(rows, start=2):
        member = (row.get("file") or "").strip()
        name = prefix + member
        if not member or name not in available:
            importer.skip(member or f"{manifest}, line {line}", f"listed in {MANIFEST_FILE} but not in the export")
            continue
        listed.add(name)
        try:
            face = _manifest_face(member, row)
            source = read(name)
            decoded = decode_image(source, name=member)
        except _Skip as reason:
            importer.skip(member, str(reason))
            continue
        except FerError as error:
            importer.skip(member, str(error).removeprefix(f"{member}: "))
            continue
        importer.face(member, replace(face, image=stored_pixels(decoded.rgb)))
    for name in names:
        if name not in listed:
            importer.skip(name, f"not listed in {MANIFEST_FILE}")


def _manifest_face(member: str, row: dict) -> NewFace:
    """A manifest row's metadata (the image comes later); bad values are a DatasetError."""
    label_text = (row.get("label") or "").strip()
    label = None if label_text.lower() in ("", *UNLABELLED_FOLDERS) else check_label(label_text)
    source = (row.get("source") or "").strip()
    prediction = None
    predicted = (row.get("predicted_label") or "").strip()
    if predicted:
        try:
            confidence = float(row.get("confidence") or "nan")
        except ValueError:
            confidence = float("nan")
        if not 0.0 <= confidence <= 1.0:
            raise DatasetError(f"confidence {row.get('confidence')!r} is not a number within 0-1")
        prediction = Prediction(check_label(predicted), confidence, (row.get("model_name") or "").strip())
    box = None
    box_text = [(row.get(f"box_{key}") or "").strip() for key in ("x", "y", "width", "height")]
    if all(box_text):
        try:
            box = Box(*(int(float(value)) for value in box_text))
        except ValueError:
            raise DatasetError(f"box {','.join(box_text)} is not four numbers") from None
    created = (row.get("created") or "").strip() or None
    return NewFace(
        image=np.zeros((1, 1), np.uint8),  # replaced by the decoded member
        source=source if source in SOURCES else "import",
        label=label,
        prediction=prediction,
        box=box,
        origin=(row.get("origin") or "").strip() or member,
        notes=row.get("notes") or "",
        created=normalize_time(created) if created else None,
    )


def _check_member_name(archive: Path, name: str) -> None:
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts or "\x00" in name:
        raise DatasetError(
            f"{archive}: member {name!r} has an unsafe path (absolute or with '..'); the ZIP was refused, nothing imported"
        )


def _import_zip(importer: _Importer, path: Path) -> None:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise DatasetError(f"{path}: not a readable ZIP archive ({error})") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            raise DatasetError(f"{path}: {len(infos):,} members, more than the {MAX_ZIP_MEMBERS:,} an import accepts")
        total = sum(info.file_size for info in infos)
        if total > MAX_ZIP_BYTES:
            raise DatasetError(
                f"{path}: {total / 1024**3:.1f} GB uncompressed, more than the {MAX_ZIP_BYTES / 1024**3:.0f} GB an import accepts"
            )
        for info in infos:
            _check_member_name(path, info.filename)
        members = {info.filename.replace("\\", "/"): info for info in infos if not info.is_dir()}

        def read(name: str) -> bytes:
            info = members[name]
            if stat.S_ISLNK(info.external_attr >> 16):
                raise _Skip("a symbolic link, not a file")
            if info.flag_bits & 0x1:
                raise _Skip("encrypted (password-protected ZIP members are not read)")
            if info.file_size > MAX_MEMBER_BYTES:
                raise _Skip(f"{info.file_size / 1024**2:.0f} MB, more than the {MAX_MEMBER_BYTES / 1024**2:.0f} MB a picture may have")
            try:
                with archive.open(info) as handle:
                    data = handle.read(info.file_size + 1)  # never more than the header promised
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError, zlib.error) as error:
                raise _Skip(f"cannot be read from the ZIP ({error})") from None
            if len(data) != info.file_size:
                raise _Skip("its size differs from what the ZIP's header says")
            return data

        _import_tree(importer, list(members), read)


def _folder_names(root: Path) -> list[str]:
    names = []
    for folder, dirs, files in os.walk(root):  # symlinked folders are not followed
        dirs[:] = sorted(name for name in dirs if not name.startswith("."))
        base = Path(folder).relative_to(root)
        for name in sorted(files):
            names.append((base / name).as_posix())
            if len(names) > MAX_ZIP_MEMBERS:
                raise DatasetError(f"{root}: more than {MAX_ZIP_MEMBERS:,} files; import a smaller folder")
    return names


def _import_fer_csv(importer: _Importer, path: Path) -> None:
    """Kaggle's `emotion,pixels[,Usage]` rows; a bad row is skipped with its reason. The split
    comes from each face's hash like every other face (Usage is not kept)."""
    for row in iter_fer_csv(path):
        origin = f"{path.name}, line {row.line}"
        if row.empty:
            continue
        try:
            label, pixels = CLASSES[row.label()], row.pixels()
        except CsvRowProblem as problem:
            importer.skip(origin, problem.reason)
            continue
        importer.face(origin, NewFace(pixels, "import", label, origin=origin))


def import_path(
    store: DatasetStore,
    src: str | os.PathLike,
    recognizer: EmotionRecognizer | None = None,
    actor: str = "cli",
    *,
    settings: DetectorSettings | None = None,
    tta: str = "none",
) -> ImportReport:
    """Import into `store`, as one undo step of `actor`:

    - a folder `<class>/<images>` (class names in any case; `unlabelled/` for faces without a
      label; other folders are reported as skipped), or a ZIP of one (optionally under one top
      folder); small images are face crops, stored whole; a larger photo in a class folder gives
      its largest detected face that label (an unlabelled photo gives every face);
    - a ZIP (or folder) made by `export_zip`: its manifest.csv keeps label, source, prediction,
      box, created, origin and notes;
    - a FER2013 CSV (`emotion,pixels[,Usage]`);
    - a single picture (every face, unlabelled).
    `recognizer` pre-labels every face (predicted_label, never the label) and finds faces in
    photos; without it photos are skipped with a reason. Exact duplicates are reported, not added.
    """
    path = Path(src)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    report = ImportReport(str(path))
    importer = _Importer(store, report, recognizer, actor, settings or DetectorSettings(), tta)
    suffix = path.suffix.lower()
    if path.is_dir():
        _import_tree(importer, _folder_names(path), lambda name: path / name)
    elif suffix == ".zip":
        _import_zip(importer, path)
    elif suffix == ".csv":
        _import_fer_csv(importer, path)
    elif suffix in IMAGE_SUFFIXES:
        importer.picture(path.name, path, None, every_face=True)
    else:
        raise DatasetError(f"{path}: expected a folder <class>/<images>, a .zip, a FER2013 .csv or a picture")
    importer.flush()
    return report


# --- export ------------------------------------------------------------------------------------


def _output(path: str | os.PathLike, suffix: str) -> Path:
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise DatasetError(f"{path}: the output file must end in {suffix}")
    if not path.parent.is_dir():
        raise DatasetError(f"{path.parent}: no such folder for the output")
    return path


def _write_output(path: Path, fill: Callable[[Path], None]) -> Path:
    """`fill` writes a temp file beside `path`, which then replaces it whole."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        fill(temporary)
        with temporary.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def _stored_bytes(store: DatasetStore, record) -> bytes:
    try:
        return store.path_of(record).read_bytes()
    except OSError:
        raise DatasetError(
            f"face {record.id}: its image file {record.file} is missing; run `python -m fer_core dataset check --repair`"
        ) from None


def export_zip(store: DatasetStore, path: str | os.PathLike) -> Path:
    """Every face not deleted as `<label>/<id>.png` (`unlabelled/` without a label) plus
    manifest.csv (file, label, source, created, predicted_label, confidence, split, origin,
    notes, model_name, box); `import_path` reads it back with everything kept."""
    path = _output(path, ".zip")
    records = store.list_faces(order="id")

    def fill(temporary: Path) -> None:
        manifest = io.StringIO()
        writer = csv.writer(manifest)
        writer.writerow(MANIFEST_COLUMNS)
        with zipfile.ZipFile(temporary, "w") as archive:
            for record in records:
                member = f"{record.label or UNLABELLED}/{record.id}.png"
                archive.writestr(member, _stored_bytes(store, record), compress_type=zipfile.ZIP_STORED)  # PNG: compressed
                box = record.box.as_tuple() if record.box else ("", "", "", "")
                writer.writerow(
                    [member, record.label or "", record.source, record.created, record.predicted_label or "",
                     "" if record.confidence is None else f"{record.confidence:.6f}", record.split,
                     record.origin, record.notes, record.model_name or "", *box]
                )  # fmt: skip
            archive.writestr(MANIFEST_FILE, manifest.getvalue(), compress_type=zipfile.ZIP_DEFLATED)

    return _write_output(path, fill)


def export_csv(store: DatasetStore, path: str | os.PathLike) -> Path:
    """The labelled faces not deleted as a FER2013 CSV: emotion code, 48x48 gray pixels, and
    Usage from the split (train Training, val PublicTest, test PrivateTest)."""
    path = _output(path, ".csv")
    records = [record for record in store.list_faces(order="id") if record.label]
    if not records:
        raise DatasetError(f"{store.root}: no labelled face to export")

    def fill(temporary: Path) -> None:
        with temporary.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(("emotion", "pixels", "Usage"))
            for record in records:
                try:
                    gray = resize_gray(to_gray(store.load_image(record)), CSV_FACE_SIZE)
                except ImageError as error:
                    raise DatasetError(f"face {record.id}: {error}") from None
                pixels = " ".join(str(value) for value in gray.ravel())
                writer.writerow((CLASS_TO_CSV_CODE[record.label], pixels, SPLIT_TO_USAGE[record.split]))

    return _write_output(path, fill)


def export_bytes(store: DatasetStore, suffix: str) -> bytes:
    """An export made now, as bytes for a download: ".zip" (`export_zip`) or ".csv" (`export_csv`),
    written to a temp file that is removed afterwards."""
    writers = {".zip": export_zip, ".csv": export_csv}
    if suffix not in writers:
        raise DatasetError(f"unknown export format {suffix!r}; expected .zip or .csv")
    with tempfile.TemporaryDirectory(prefix="fer_export_") as folder:
        return writers[suffix](store, Path(folder) / f"dataset{suffix}").read_bytes()


def write_report_json(path: str | os.PathLike, data: str) -> Path:
    """Write a small JSON report atomically (the CLI's `stats --json`)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise DatasetError(f"{path.parent}: no such folder for the output")
    write_file_atomically(path, data.encode("utf-8"))
    return path
