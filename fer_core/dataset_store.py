"""The custom dataset: the user's own face crops, their labels and their history, on disk.

Users collect faces from photos, the browser camera, webcam snapshots and imports, label them and
retrain on them. Each face is a lossless PNG named by the hash of its pixels (no user text ever
becomes a path) under `images/`, indexed by one SQLite file, `index.sqlite`, in the same root.

The Streamlit app calls the store from many threads and the CLI from other processes, so every
call opens its own connection (sqlite3 connections are never shared between threads), the index
runs in WAL mode with a busy timeout, writes take the write lock up front (BEGIN IMMEDIATE) and
retry while another writer holds it, and a face's file and row appear together or not at all.
Labels are the user's: the model's prediction sits in its own columns and never overwrites one.
Every change is an event, so the latest action of one actor (a browser session, "cli") can be
undone, and a stale write from another tab is refused (`ConflictError`) instead of overwriting.
The values it stores and the records it returns are defined in `dataset_records`.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image

from fer_core.classes import CLASSES, class_index
from fer_core.data import FaceDataset
from fer_core.dataset_records import (
    IMAGES_DIR,
    SOURCES,
    SPLITS,
    UNLABELLED,
    CheckReport,
    DatasetStats,
    FaceRecord,
    NewFace,
    Prediction,
    PreparedFace,
    QueuePosition,
    UndoResult,
    check_label,
    check_source,
    image_file,
    normalize_time,
    pixel_hash,
    read_png,
    resolve_splits,
    split_for,
    utc_now,
)
from fer_core.errors import ConflictError, DatasetError, DuplicateFaceError, ImageError
from fer_core.preprocessing import Box, resize_gray, to_gray

if TYPE_CHECKING:
    from fer_core.dataset_io import ImportReport
    from fer_core.detection import DetectorSettings
    from fer_core.inference import EmotionClassifier, EmotionRecognizer

DATASET_ENV = "FER_DATASET_DIR"
DEFAULT_DATASET_DIR = Path(__file__).resolve().parent.parent / "data" / "custom"
INDEX_FILE = "index.sqlite"
SCHEMA_VERSION = 1

QUEUE_KINDS: tuple[str, ...] = ("unlabelled", "low_confidence", "disagreement")
ORDERS: tuple[str, ...] = ("created", "confidence", "updated", "id")

MAX_STORED_SIDE = 256  # colour crops are area-downscaled to this longest side before storing
PRECROPPED_MAX_SIDE = 128  # images up to this longest side are face crops already (FER's 48x48)
MAX_TEXT = 2000  # origin and notes are cut to this many characters
BUSY_TIMEOUT_S = 20.0  # how long one statement waits for another writer's lock
LOCK_RETRIES = 2  # then BEGIN IMMEDIATE is retried this often before "busy" reaches the user

# Actions the events table records; undo reverts the first group only (the rest are bookkeeping).
UNDOABLE = ("add", "label", "clear_label", "bulk_label", "delete", "bulk_delete", "restore")
# Which state an action changed, so undo can tell whether someone else changed it since.
_TOUCHES = {"add": "deleted", "delete": "deleted", "bulk_delete": "deleted", "restore": "deleted"}

_SCHEMA = (
    f"""CREATE TABLE faces (
        id INTEGER PRIMARY KEY,
        file TEXT NOT NULL UNIQUE,
        label TEXT CHECK (label IS NULL OR label IN ({", ".join(repr(name) for name in CLASSES)})),
        source TEXT NOT NULL CHECK (source IN ({", ".join(repr(name) for name in SOURCES)})),
        origin TEXT NOT NULL DEFAULT '',
        created TEXT NOT NULL,
        updated TEXT NOT NULL,
        predicted_label TEXT CHECK (predicted_label IS NULL OR predicted_label IN ({", ".join(repr(name) for name in CLASSES)})),
        confidence REAL CHECK (confidence IS NULL OR (confidence >= 0 AND confidence <= 1)),
        model_name TEXT,
        box_x INTEGER,
        box_y INTEGER,
        box_width INTEGER,
        box_height INTEGER,
        width INTEGER NOT NULL CHECK (width > 0),
        height INTEGER NOT NULL CHECK (height > 0),
        channels INTEGER NOT NULL CHECK (channels IN (1, 3)),
        sha256 TEXT NOT NULL UNIQUE,
        split TEXT NOT NULL CHECK (split IN ({", ".join(repr(name) for name in SPLITS)})),
        notes TEXT NOT NULL DEFAULT '',
        version INTEGER NOT NULL DEFAULT 1,
        deleted_at TEXT
    )""",
    "CREATE INDEX faces_label ON faces (label)",
    "CREATE INDEX faces_split ON faces (split)",
    "CREATE INDEX faces_source ON faces (source)",
    "CREATE INDEX faces_created ON faces (created)",
    "CREATE INDEX faces_deleted_at ON faces (deleted_at)",
    "CREATE INDEX faces_confidence ON faces (confidence)",
    """CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        face_id INTEGER,
        action TEXT NOT NULL,
        before TEXT,
        after TEXT,
        actor TEXT NOT NULL DEFAULT '',
        time TEXT NOT NULL,
        batch TEXT,
        undone INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX events_actor ON events (actor, undone, id)",
    "CREATE INDEX events_face ON events (face_id, id)",
    "CREATE INDEX events_batch ON events (batch)",
)
_ACTIVE, _UNDONE, _SKIPPED = 0, 1, 2  # events.undone
# Any number of ids as one JSON parameter (SQLite caps the number of `?` in a statement).
_ID_IN = "id IN (SELECT value FROM json_each(?))"


def _id_list(ids: Sequence[int]) -> str:
    return json.dumps([int(face_id) for face_id in ids])


def default_root() -> Path:
    """`$FER_DATASET_DIR`, or `data/custom/` in the repository (git-ignored)."""
    return Path(os.environ.get(DATASET_ENV) or DEFAULT_DATASET_DIR)


def is_dataset_root(path: str | os.PathLike) -> bool:
    """True for a folder that holds a dataset index (`index.sqlite`)."""
    return Path(path).is_dir() and (Path(path) / INDEX_FILE).is_file()


def _record(row: sqlite3.Row) -> FaceRecord:
    box = None
    if row["box_x"] is not None:
        box = Box(row["box_x"], row["box_y"], row["box_width"], row["box_height"])
    return FaceRecord(
        id=row["id"],
        file=row["file"],
        label=row["label"],
        source=row["source"],
        origin=row["origin"],
        created=row["created"],
        updated=row["updated"],
        predicted_label=row["predicted_label"],
        confidence=row["confidence"],
        model_name=row["model_name"],
        box=box,
        width=row["width"],
        height=row["height"],
        channels=row["channels"],
        sha256=row["sha256"],
        split=row["split"],
        notes=row["notes"],
        version=row["version"],
        deleted_at=row["deleted_at"],
    )


def _state(row: sqlite3.Row) -> dict:
    """The part of a face that events record (and undo restores)."""
    return {"label": row["label"], "deleted_at": row["deleted_at"], "version": row["version"]}


def _is_locked(error: sqlite3.OperationalError) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


def _fsync_dir(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems cannot sync a directory; the rename itself is atomic anyway
    finally:
        os.close(descriptor)


def write_file_atomically(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, rename into place; no partial file remains."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            os.fchmod(handle.fileno(), 0o644)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --- review queues -----------------------------------------------------------------------------

# kind -> (which faces, their order as SQL expressions). `_queue_key` gives a face's values of the
# same expressions, so a page can start right after any face (keyset paging: no offset that
# shifts while labelled faces leave the queue).
_QUEUES: dict[str, tuple[str, tuple[str, ...]]] = {
    "unlabelled": ("label IS NULL", ("created", "id")),
    "low_confidence": ("1", ("confidence IS NULL", "COALESCE(confidence, 0.0)", "id")),
    "disagreement": (
        "label IS NOT NULL AND predicted_label IS NOT NULL AND label != predicted_label",
        ("-COALESCE(confidence, 0.0)", "id"),
    ),
}


def _queue_sql(kind: str) -> tuple[str, str, str]:
    """(where, order key, as many `?` as the key has values) of a review queue."""
    if kind not in _QUEUES:
        raise DatasetError(f"unknown review queue {kind!r}; expected {', '.join(QUEUE_KINDS)}")
    where, key = _QUEUES[kind]
    return where, ", ".join(key), ", ".join("?" * len(key))


def _queue_key(kind: str, face: FaceRecord) -> list:
    confidence = 0.0 if face.confidence is None else float(face.confidence)
    if kind == "unlabelled":
        return [face.created, face.id]
    if kind == "low_confidence":
        return [int(face.confidence is None), confidence, face.id]
    return [-confidence, face.id]


# --- the store -------------------------------------------------------------------------------


class DatasetStore:
    """The custom dataset in `root` (default: `default_root()`). Thread- and process-safe.

    The object holds nothing but paths: keep one per root and call it from any thread.
    `actor` names who acted (a browser session id, "cli") for the history and for `undo`.
    """

    def __init__(self, root: str | os.PathLike | None = None, *, create: bool = True):
        """create=False: the root must be a dataset already (DatasetError otherwise)."""
        self.root = Path(root) if root is not None else default_root()
        self.index_path = self.root / INDEX_FILE
        if not self.index_path.is_file():
            if not create:
                raise DatasetError(
                    f"{self.root}: not a custom dataset (no {INDEX_FILE}); "
                    "create one with `python -m fer_core dataset import SRC --root DIR`"
                )
            if self.root.exists() and not self.root.is_dir():
                raise DatasetError(f"{self.root}: not a folder")
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise DatasetError(f"{self.root}: cannot create the dataset folder ({error.strerror})") from None
        self._open_schema()

    def __repr__(self) -> str:
        return f"DatasetStore({str(self.root)!r})"

    # --- connections -----------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(self.index_path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA foreign_keys = ON")
            # WAL with synchronous=NORMAL (SQLite's advice for WAL): a commit survives any crash of
            # the app; only a power cut may roll back the last few labels (never corrupts), and a
            # label no longer waits for a disk sync. Files without rows are found by check().
            connection.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as error:
            raise DatasetError(f"{self.index_path}: cannot open the dataset index ({error})") from None
        return connection

    def _error(self, error: sqlite3.Error) -> DatasetError:
        if isinstance(error, sqlite3.OperationalError) and _is_locked(error):
            return DatasetError(
                f"{self.index_path}: the dataset is busy (another writer held it for over {BUSY_TIMEOUT_S:.0f} s); try again"
            )
        return DatasetError(f"{self.index_path}: {error}")

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A connection for reads, in one read transaction (a consistent snapshot)."""
        connection = self._connect()
        try:
            connection.execute("BEGIN")
            yield connection
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            raise self._error(error) from error
        finally:
            connection.close()

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: BEGIN IMMEDIATE (retried while another writer holds the lock),
        COMMIT on success, ROLLBACK on any exception."""
        connection = self._connect()
        try:
            for attempt in range(LOCK_RETRIES + 1):
                try:
                    connection.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.OperationalError as error:
                    if not _is_locked(error) or attempt == LOCK_RETRIES:
                        raise
                    time.sleep(0.05 * 2**attempt)
            try:
                yield connection
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise self._error(error) from error
        finally:
            connection.close()

    def _open_schema(self) -> None:
        connection = self._connect()
        try:
            for attempt in range(LOCK_RETRIES + 1):
                try:
                    if connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                        connection.execute("PRAGMA journal_mode = WAL")
                    version = connection.execute("PRAGMA user_version").fetchone()[0]
                    break
                except sqlite3.OperationalError as error:
                    if not _is_locked(error) or attempt == LOCK_RETRIES:
                        raise
                    time.sleep(0.05 * 2**attempt)
        except sqlite3.DatabaseError as error:
            raise DatasetError(f"{self.index_path}: not a dataset index ({error})") from None
        finally:
            connection.close()
        if version > SCHEMA_VERSION:
            raise DatasetError(
                f"{self.index_path}: made by a newer version (schema {version}, this one reads {SCHEMA_VERSION})"
            )
        if version == SCHEMA_VERSION:
            return
        with self._writing() as connection:
            if connection.execute("PRAGMA user_version").fetchone()[0] == 0:  # nobody created it meanwhile
                for statement in _SCHEMA:
                    connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # --- reading ---------------------------------------------------------------------------
    def path_of(self, record: FaceRecord) -> Path:
        """The PNG of a face; rebuilt from its hash, never from text stored in the index."""
        return self.root / image_file(record.sha256)

    @staticmethod
    def _row(connection: sqlite3.Connection, face_id: int) -> sqlite3.Row:
        row = connection.execute("SELECT * FROM faces WHERE id = ?", (int(face_id),)).fetchone()
        if row is None:
            raise DatasetError(f"no face {face_id} in the dataset")
        return row

    def get(self, face_id: int) -> FaceRecord:
        with self._reading() as connection:
            return _record(self._row(connection, face_id))

    def find_by_hash(self, sha256: str) -> FaceRecord | None:
        with self._reading() as connection:
            row = connection.execute("SELECT * FROM faces WHERE sha256 = ?", (sha256,)).fetchone()
        return _record(row) if row is not None else None

    @staticmethod
    def _where(
        label: str | None,
        source: str | None,
        split: str | None,
        created_from: str | datetime | None,
        created_to: str | datetime | None,
        ids: Sequence[int] | None,
        include_deleted: bool,
        deleted_only: bool,
    ) -> tuple[str, list]:
        clauses, params = [], []
        if deleted_only:
            clauses.append("deleted_at IS NOT NULL")
        elif not include_deleted:
            clauses.append("deleted_at IS NULL")
        if label is not None:
            if str(label).strip().lower() == UNLABELLED:
                clauses.append("label IS NULL")
            else:
                clauses.append("label = ?")
                params.append(check_label(label))
        if source is not None:
            clauses.append("source = ?")
            params.append(check_source(source))
        if split is not None:
            clauses.append("split = ?")
            params.append(resolve_splits(split)[0])
        if created_from is not None:
            clauses.append("created >= ?")
            params.append(normalize_time(created_from))
        if created_to is not None:
            clauses.append("created < ?")
            params.append(normalize_time(created_to))
        if ids is not None:
            clauses.append(_ID_IN)
            params.append(_id_list(ids))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def list_faces(
        self,
        *,
        label: str | None = None,
        source: str | None = None,
        split: str | None = None,
        created_from: str | datetime | None = None,
        created_to: str | datetime | None = None,
        ids: Sequence[int] | None = None,
        include_deleted: bool = False,
        deleted_only: bool = False,
        order: str = "created",
        descending: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[FaceRecord]:
        """Faces matching every given filter. label: a class or "unlabelled"; created_from is
        inclusive, created_to exclusive; order: created, confidence (faces without one last),
        updated or id, ties broken by id."""
        if order not in ORDERS:
            raise DatasetError(f"unknown order {order!r}; expected {', '.join(ORDERS)}")
        where, params = self._where(label, source, split, created_from, created_to, ids, include_deleted, deleted_only)
        direction = "DESC" if descending else "ASC"
        ordering = f"{order} {direction}, id {direction}"
        if order == "confidence":
            ordering = f"confidence IS NULL, {ordering}"
        sql = f"SELECT * FROM faces{where} ORDER BY {ordering} LIMIT ? OFFSET ?"
        params += [-1 if limit is None else max(0, int(limit)), max(0, int(offset))]
        with self._reading() as connection:
            return [_record(row) for row in connection.execute(sql, params)]

    def count(
        self,
        *,
        label: str | None = None,
        source: str | None = None,
        split: str | None = None,
        created_from: str | datetime | None = None,
        created_to: str | datetime | None = None,
        ids: Sequence[int] | None = None,
        include_deleted: bool = False,
        deleted_only: bool = False,
    ) -> int:
        """How many faces `list_faces` with the same filters would return (without a limit)."""
        where, params = self._where(label, source, split, created_from, created_to, ids, include_deleted, deleted_only)
        with self._reading() as connection:
            return int(connection.execute(f"SELECT COUNT(*) FROM faces{where}", params).fetchone()[0])

    def queue(
        self, kind: str, limit: int = 50, offset: int = 0, *, after: FaceRecord | None = None
    ) -> list[FaceRecord]:
        """Faces to review next (never deleted ones):
        unlabelled      faces without a label, oldest first;
        low_confidence  every face the model was least sure of first (faces never predicted last);
        disagreement    labelled faces whose label differs from the model's, most confident model first
                        (the likeliest labelling mistakes).
        after: read on from this face's place in the queue's order (the next page, without an
        offset that shifts while faces leave the queue); it need not be in the queue any more."""
        where, key, marks = _queue_sql(kind)
        sql = f"SELECT * FROM faces WHERE deleted_at IS NULL AND {where}"
        params: list = []
        if after is not None:
            sql += f" AND ({key}) > ({marks})"
            params += _queue_key(kind, after)
        sql += f" ORDER BY {key} LIMIT ? OFFSET ?"
        with self._reading() as connection:
            rows = connection.execute(sql, [*params, max(0, int(limit)), max(0, int(offset))])
            return [_record(row) for row in rows]

    def queue_face(self, kind: str, face_id: int) -> FaceRecord | None:
        """The face as it is now when it is in the queue (not deleted, matching it), else None."""
        where, _, _ = _queue_sql(kind)
        with self._reading() as connection:
            row = connection.execute(
                f"SELECT * FROM faces WHERE id = ? AND deleted_at IS NULL AND {where}", (int(face_id),)
            ).fetchone()
        return _record(row) if row is not None else None

    def queue_position(self, kind: str, face: FaceRecord) -> QueuePosition:
        """Where `face` stands in a review queue: how many queued faces come before it, how many
        the queue holds, and whether the face is in it (one pass over the index)."""
        where, key, marks = _queue_sql(kind)
        sql = (
            f"SELECT COUNT(*), COALESCE(SUM(({key}) < ({marks})), 0), COALESCE(SUM(id = ?), 0) "
            f"FROM faces WHERE deleted_at IS NULL AND {where}"
        )
        with self._reading() as connection:
            total, before, inside = connection.execute(sql, [*_queue_key(kind, face), int(face.id)]).fetchone()
        return QueuePosition(before=int(before), total=int(total), inside=bool(inside))

    def history(self, face_id: int | None = None, actor: str | None = None, limit: int = 100) -> list[dict]:
        """Events, newest first: every add, label, delete, restore, undo... of a face or an actor."""
        clauses, params = [], []
        if face_id is not None:
            clauses.append("face_id = ?")
            params.append(int(face_id))
        if actor is not None:
            clauses.append("actor = ?")
            params.append(actor)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        with self._reading() as connection:
            rows = connection.execute(f"SELECT * FROM events{where} ORDER BY id DESC LIMIT ?", [*params, int(limit)])
            return [
                {
                    **dict(row),
                    "before": json.loads(row["before"]) if row["before"] else None,
                    "after": json.loads(row["after"]) if row["after"] else None,
                }
                for row in rows
            ]

    def stats(self) -> DatasetStats:
        with self._reading() as connection:
            by_label_split = {label: dict.fromkeys(SPLITS, 0) for label in CLASSES}
            for label, split, count in connection.execute(
                "SELECT label, split, COUNT(*) FROM faces WHERE deleted_at IS NULL AND label IS NOT NULL GROUP BY label, split"
            ):
                by_label_split[label][split] = count
            by_source = dict.fromkeys(SOURCES, 0)
            for source, count in connection.execute(
                "SELECT source, COUNT(*) FROM faces WHERE deleted_at IS NULL GROUP BY source"
            ):
                by_source[source] = count
            total, unlabelled, deleted = connection.execute(
                "SELECT COALESCE(SUM(deleted_at IS NULL), 0), COALESCE(SUM(deleted_at IS NULL AND label IS NULL), 0), "
                "COALESCE(SUM(deleted_at IS NOT NULL), 0) FROM faces"
            ).fetchone()
        return DatasetStats(by_label_split, by_source, int(unlabelled), int(deleted), int(total))

    def load_image(self, record: FaceRecord | int) -> np.ndarray:
        """The stored face: (H, W, 3) RGB or (H, W) gray uint8, as it was added (capped in size)."""
        if not isinstance(record, FaceRecord):
            record = self.get(record)
        return read_png(self.path_of(record))

    def face_dataset(self, splits: Sequence[str] | str = ("train",), image_size: int = 48) -> FaceDataset:
        """The labelled, non-deleted faces of `splits` as grayscale `image_size` squares, in id
        order, with ids "face <id>": what `train --data ROOT` and `evaluate --data ROOT` read."""
        wanted = resolve_splits(splits)
        sql = (
            "SELECT * FROM faces WHERE deleted_at IS NULL AND label IS NOT NULL "
            f"AND split IN ({', '.join('?' * len(wanted))}) ORDER BY id"
        )
        with self._reading() as connection:
            records = [_record(row) for row in connection.execute(sql, wanted)]
        if not records:
            raise DatasetError(
                f"{self.root}: no labelled face in the {', '.join(wanted)} split(s) of this custom dataset"
            )
        images = []
        for record in records:
            try:
                images.append(resize_gray(to_gray(self.load_image(record)), image_size))
            except ImageError as error:
                raise DatasetError(
                    f"face {record.id}: {error}; run `python -m fer_core dataset check --repair`"
                ) from None
        return FaceDataset(
            images=np.stack(images),
            labels=np.asarray([class_index(record.label) for record in records], dtype=np.int32),
            source=str(self.root),
            ids=[f"face {record.id}" for record in records],
        )

    # --- adding ----------------------------------------------------------------------------
    @staticmethod
    def prepare(face: NewFace) -> PreparedFace:
        """Validate a new face and turn it into stored pixels, hash and PNG (no disk access)."""
        image = np.asarray(face.image)
        if image.dtype != np.uint8:
            raise ImageError(f"{face.origin or 'face'}: expected a uint8 image, got {image.dtype}")
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
            raise ImageError(
                f"{face.origin or 'face'}: expected an RGB (H, W, 3) or gray (H, W) image, got shape {image.shape}"
            )
        height, width = image.shape[:2]
        if height == 0 or width == 0:
            raise ImageError(f"{face.origin or 'face'}: the face image is empty ({width}x{height})")
        longest = max(height, width)
        if longest > MAX_STORED_SIDE:
            factor = MAX_STORED_SIDE / longest
            size = (max(1, round(width * factor)), max(1, round(height * factor)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        pixels = np.ascontiguousarray(image)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")  # 2-D: mode L, 3-D: RGB
        prediction = face.prediction
        if prediction is not None:
            confidence = float(prediction.confidence)
            if not 0.0 <= confidence <= 1.0:
                raise DatasetError(f"prediction confidence {confidence} is not within 0-1")
            prediction = Prediction(
                check_label(prediction.label), confidence, str(prediction.model_name or "")[:MAX_TEXT]
            )
        box = face.box
        if box is not None:
            box = Box(*(int(value) for value in (box.as_tuple() if isinstance(box, Box) else box)))
            if box.width <= 0 or box.height <= 0:
                raise DatasetError(f"face box {box.as_tuple()} has no area")
        return PreparedFace(
            pixels=pixels,
            png=buffer.getvalue(),
            sha256=pixel_hash(pixels),
            label=check_label(face.label),
            source=check_source(face.source),
            prediction=prediction,
            box=box,
            origin=str(face.origin or "")[:MAX_TEXT],
            notes=str(face.notes or "")[:MAX_TEXT],
            created=normalize_time(face.created) if face.created else None,
        )

    def add_face(
        self,
        image: np.ndarray,
        *,
        source: str,
        label: str | None = None,
        prediction: Prediction | None = None,
        box: Box | tuple[int, int, int, int] | None = None,
        origin: str = "",
        notes: str = "",
        actor: str = "",
    ) -> FaceRecord:
        """Store one face crop (RGB or gray uint8; larger than 256 px it is area-downscaled).

        `prediction` goes to its own columns; `label` stays empty unless given. An exact duplicate
        (same pixels) raises DuplicateFaceError naming the face that holds them."""
        face = NewFace(image, source, label, prediction, box, origin, notes)
        (result,) = self.add_faces([face], actor=actor)
        if isinstance(result, DuplicateFaceError):
            raise result
        return result

    def add_faces(
        self, faces: Sequence[NewFace | PreparedFace], actor: str = "", *, batch: str | None = None
    ) -> list[FaceRecord | DuplicateFaceError]:
        """Store several faces in one transaction, one result per face (a duplicate is reported,
        not raised). Several faces share a `batch`, so one `undo` removes them all; pass the
        same batch to several calls (a long import) to make them one undo step."""
        prepared = [face if isinstance(face, PreparedFace) else self.prepare(face) for face in faces]
        if not prepared:
            return []
        if batch is None and len(prepared) > 1:
            batch = uuid.uuid4().hex
        written: list[Path] = []
        results: list[int | DuplicateFaceError] = []
        try:
            with self._writing() as connection:
                now = utc_now()
                folders: set[Path] = set()
                for face in prepared:
                    existing = connection.execute(
                        "SELECT id, deleted_at FROM faces WHERE sha256 = ?", (face.sha256,)
                    ).fetchone()
                    if existing is not None:
                        deleted = " (deleted: restore it instead)" if existing["deleted_at"] else ""
                        where = f"{face.origin}: " if face.origin else ""
                        message = f"{where}the dataset has exactly this face already: face {existing['id']}{deleted}"
                        results.append(DuplicateFaceError(message, existing["id"]))
                        continue
                    path = self.root / face.file
                    try:
                        write_file_atomically(path, face.png)
                    except OSError as error:
                        raise DatasetError(f"{path}: cannot write the face image ({error})") from None
                    written.append(path)
                    folders.add(path.parent)
                    prediction, box = face.prediction, face.box
                    cursor = connection.execute(
                        "INSERT INTO faces (file, label, source, origin, created, updated, predicted_label, confidence, "
                        "model_name, box_x, box_y, box_width, box_height, width, height, channels, sha256, split, notes) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            face.file,
                            face.label,
                            face.source,
                            face.origin,
                            face.created or now,
                            now,
                            prediction.label if prediction else None,
                            prediction.confidence if prediction else None,
                            prediction.model_name if prediction else None,
                            *(box.as_tuple() if box else (None,) * 4),
                            face.pixels.shape[1],
                            face.pixels.shape[0],
                            1 if face.pixels.ndim == 2 else 3,
                            face.sha256,
                            split_for(face.sha256),
                            face.notes,
                        ),
                    )
                    face_id = int(cursor.lastrowid)
                    after = {"label": face.label, "deleted_at": None, "version": 1}
                    self._log(connection, face_id, "add", None, after, actor, now, batch)
                    results.append(face_id)
                for folder in folders:
                    _fsync_dir(folder)
        except BaseException:
            # Neither half may remain: the rows were rolled back, so remove the files written.
            for path in written:
                path.unlink(missing_ok=True)
            raise
        added = [face_id for face_id in results if isinstance(face_id, int)]
        records = {record.id: record for record in self.list_faces(ids=added, include_deleted=True)} if added else {}
        return [records[result] if isinstance(result, int) else result for result in results]

    # --- changing --------------------------------------------------------------------------
    @staticmethod
    def _log(
        connection: sqlite3.Connection,
        face_id: int | None,
        action: str,
        before: dict | None,
        after: dict | None,
        actor: str,
        now: str,
        batch: str | None = None,
    ) -> None:
        connection.execute(
            "INSERT INTO events (face_id, action, before, after, actor, time, batch) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                face_id,
                action,
                json.dumps(before) if before is not None else None,
                json.dumps(after) if after is not None else None,
                str(actor or ""),
                now,
                batch,
            ),
        )

    def _change(
        self,
        connection: sqlite3.Connection,
        row: sqlite3.Row,
        changes: dict,
        action: str,
        actor: str,
        now: str,
        batch: str | None = None,
    ) -> None:
        """Apply `changes` to one face, bump its version and record the event."""
        assignments = ", ".join(f"{column} = ?" for column in changes)
        connection.execute(
            f"UPDATE faces SET {assignments}, version = version + 1, updated = ? WHERE id = ?",
            [*changes.values(), now, row["id"]],
        )
        after = self._row(connection, row["id"])
        before_state, after_state = _state(row), _state(after)
        if action == "predict":
            for state, source in ((before_state, row), (after_state, after)):
                state.update({key: source[key] for key in ("predicted_label", "confidence", "model_name")})
        if action == "notes":
            before_state["notes"], after_state["notes"] = row["notes"], after["notes"]
        self._log(connection, row["id"], action, before_state, after_state, actor, now, batch)

    def _conflict(self, connection: sqlite3.Connection, row: sqlite3.Row, expected_version: int) -> ConflictError:
        event = connection.execute(
            "SELECT action, actor, time FROM events WHERE face_id = ? ORDER BY id DESC LIMIT 1", (row["id"],)
        ).fetchone()
        now_is = f"labelled {row['label']}" if row["label"] else "unlabelled"
        if row["deleted_at"]:
            now_is += ", deleted"
        by = ""
        if event is not None:
            by = f" after a {event['action'].replace('_', ' ')}" + (f" by {event['actor']}" if event["actor"] else "")
            by += f" at {event['time'][:19].replace('T', ' ')} UTC"
        return ConflictError(
            f"face {row['id']} was changed meanwhile (version {row['version']}, you had {expected_version}): "
            f"it is now {now_is}{by}; nothing was overwritten, reload it and try again",
            current=_record(row),
        )

    def _single(
        self,
        face_id: int,
        action: str,
        changes: Callable[[sqlite3.Row], dict | None],
        actor: str,
        expected_version: int | None,
    ) -> FaceRecord:
        """One face, one change, under optimistic concurrency; `changes` returns None for a no-op."""
        with self._writing() as connection:
            row = self._row(connection, face_id)
            if expected_version is not None and row["version"] != int(expected_version):
                raise self._conflict(connection, row, int(expected_version))
            update = changes(row)
            if update:
                self._change(connection, row, update, action, actor, utc_now())
            return _record(self._row(connection, face_id))

    def set_label(
        self, face_id: int, label: str | None, actor: str = "", expected_version: int | None = None
    ) -> FaceRecord:
        """Label a face (None clears it). With `expected_version` (the version the caller showed),
        a face changed meanwhile by someone else raises ConflictError and nothing is written."""
        label = check_label(label)

        def changes(row: sqlite3.Row) -> dict | None:
            if row["deleted_at"] is not None:
                raise DatasetError(f"face {face_id} is deleted; restore it before labelling it")
            return None if row["label"] == label else {"label": label}

        return self._single(face_id, "label" if label else "clear_label", changes, actor, expected_version)

    def clear_label(self, face_id: int, actor: str = "", expected_version: int | None = None) -> FaceRecord:
        return self.set_label(face_id, None, actor, expected_version)

    def delete(self, face_id: int, actor: str = "", expected_version: int | None = None) -> FaceRecord:
        """Soft delete: the face leaves every list, queue, count and dataset until restored or purged."""
        return self._single(
            face_id,
            "delete",
            lambda row: None if row["deleted_at"] else {"deleted_at": utc_now()},
            actor,
            expected_version,
        )

    def restore(self, face_id: int, actor: str = "", expected_version: int | None = None) -> FaceRecord:
        return self._single(
            face_id, "restore", lambda row: {"deleted_at": None} if row["deleted_at"] else None, actor, expected_version
        )

    def set_notes(self, face_id: int, notes: str, actor: str = "", expected_version: int | None = None) -> FaceRecord:
        notes = str(notes or "")[:MAX_TEXT]
        return self._single(
            face_id, "notes", lambda row: None if row["notes"] == notes else {"notes": notes}, actor, expected_version
        )

    def set_prediction(
        self, face_id: int, label: str, confidence: float, model_name: str, actor: str = ""
    ) -> FaceRecord:
        """Record another model's prediction; the label is never touched."""
        self._check_confidence(confidence)
        changes = {
            "predicted_label": check_label(label),
            "confidence": float(confidence),
            "model_name": str(model_name)[:MAX_TEXT],
        }
        return self._single(face_id, "predict", lambda row: changes, actor, None)

    @staticmethod
    def _check_confidence(confidence: float) -> None:
        if not 0.0 <= float(confidence) <= 1.0:
            raise DatasetError(f"prediction confidence {confidence} is not within 0-1")

    def _bulk(self, ids: Sequence[int], action: str, changes: Callable[[sqlite3.Row], dict | None], actor: str) -> int:
        ids = list(dict.fromkeys(int(face_id) for face_id in ids))
        if not ids:
            return 0
        batch = uuid.uuid4().hex
        changed = 0
        with self._writing() as connection:
            rows = {
                row["id"]: row for row in connection.execute(f"SELECT * FROM faces WHERE {_ID_IN}", (_id_list(ids),))
            }
            missing = [face_id for face_id in ids if face_id not in rows]
            if missing:
                raise DatasetError(f"no face {', '.join(map(str, missing))} in the dataset; nothing was changed")
            now = utc_now()
            for face_id in ids:
                update = changes(rows[face_id])
                if update:
                    self._change(connection, rows[face_id], update, action, actor, now, batch)
                    changed += 1
        return changed

    def bulk_set_label(self, ids: Sequence[int], label: str | None, actor: str = "") -> int:
        """Label many faces at once (one undo step); deleted faces and faces with that label already
        are left alone. Returns how many changed."""
        label = check_label(label)
        return self._bulk(
            ids,
            "bulk_label",
            lambda row: None if row["deleted_at"] or row["label"] == label else {"label": label},
            actor,
        )

    def bulk_delete(self, ids: Sequence[int], actor: str = "") -> int:
        """Soft-delete many faces at once (one undo step). Returns how many changed."""
        now = utc_now()
        return self._bulk(ids, "bulk_delete", lambda row: None if row["deleted_at"] else {"deleted_at": now}, actor)

    def bulk_restore(self, ids: Sequence[int], actor: str = "") -> int:
        """Restore many deleted faces at once (one undo step). Returns how many changed."""
        return self._bulk(ids, "restore", lambda row: {"deleted_at": None} if row["deleted_at"] else None, actor)

    def repredict(
        self, classifier: EmotionClassifier, ids: Sequence[int] | None = None, *, tta: str = "none", actor: str = ""
    ) -> int:
        """Re-predict faces (default: every face not deleted) with `classifier`; labels untouched."""
        from fer_core.dataset_io import predict_images

        records = self.list_faces(ids=ids, include_deleted=ids is not None)
        done = 0
        for start in range(0, len(records), 256):
            chunk = records[start : start + 256]
            predictions = predict_images(classifier, [self.load_image(record) for record in chunk], tta=tta)
            with self._writing() as connection:
                now = utc_now()
                for record, prediction in zip(chunk, predictions, strict=True):
                    row = connection.execute("SELECT * FROM faces WHERE id = ?", (record.id,)).fetchone()
                    if row is not None:
                        changes = {
                            "predicted_label": prediction.label,
                            "confidence": prediction.confidence,
                            "model_name": prediction.model_name,
                        }
                        self._change(connection, row, changes, "predict", actor, now)
                        done += 1
        return done

    # --- undo ------------------------------------------------------------------------------
    def undo(self, actor: str) -> UndoResult | None:
        """Revert the latest not-yet-undone action of `actor` (a bulk action or an import as one
        step); None when there is nothing to undo. When someone else changed one of its faces
        since, nothing is reverted, the step is dropped from this actor's undo history (so the next
        undo goes further back) and ConflictError says what happened."""
        placeholders = ", ".join("?" * len(UNDOABLE))
        conflict: ConflictError | None = None
        with self._writing() as connection:
            latest = connection.execute(
                f"SELECT * FROM events WHERE actor = ? AND undone = {_ACTIVE} AND action IN ({placeholders}) "
                "ORDER BY id DESC LIMIT 1",
                (str(actor), *UNDOABLE),
            ).fetchone()
            if latest is None:
                return None
            if latest["batch"]:
                events = connection.execute(
                    f"SELECT * FROM events WHERE batch = ? AND actor = ? AND undone = {_ACTIVE} ORDER BY id DESC",
                    (latest["batch"], str(actor)),
                ).fetchall()
            else:
                events = [latest]
            action = latest["action"]
            problems, plan = [], []
            for event in events:
                row = connection.execute("SELECT * FROM faces WHERE id = ?", (event["face_id"],)).fetchone()
                after = json.loads(event["after"]) if event["after"] else {}
                if row is None:
                    problems.append(f"face {event['face_id']} was purged")
                    continue
                if _TOUCHES.get(event["action"]) == "deleted":
                    if (row["deleted_at"] is None) != (after.get("deleted_at") is None):
                        state = "deleted" if row["deleted_at"] else "restored"
                        problems.append(f"face {row['id']} was {state} since")
                        continue
                elif row["label"] != after.get("label"):
                    problems.append(f"face {row['id']} was relabelled {row['label'] or 'unlabelled'} since")
                    continue
                plan.append((event, row))
            ids = [event["face_id"] for event in events]
            marker = _SKIPPED if problems else _UNDONE
            connection.execute(
                f"UPDATE events SET undone = {marker} WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps([event["id"] for event in events]),),
            )
            what = f"{action.replace('_', ' ')} of {_faces_text(ids)}"
            if problems:
                shown = "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
                conflict = ConflictError(f"could not undo the {what}: {shown}; nothing was reverted")
            else:
                now = utc_now()
                undo_batch = uuid.uuid4().hex if len(plan) > 1 else None
                for event, row in plan:
                    before = json.loads(event["before"]) if event["before"] else None
                    if event["action"] == "add":
                        changes = {"deleted_at": now}
                    elif _TOUCHES.get(event["action"]) == "deleted":
                        changes = {"deleted_at": before["deleted_at"]}
                    else:
                        changes = {"label": before["label"]}
                    self._change(connection, row, changes, "undo", actor, now, undo_batch)
        if conflict is not None:
            raise conflict
        return UndoResult(action, ids, f"undid the {what}")

    # --- removing for good ---------------------------------------------------------------------
    def purge(self, ids: Sequence[int] | None = None, actor: str = "") -> int:
        """Remove soft-deleted faces (all, or those of `ids`) for good: rows first (committed), then
        files, so a crash in between leaves only orphan files that `check --repair` removes."""
        where, params = "deleted_at IS NOT NULL", []
        if ids is not None:
            where += f" AND {_ID_IN}"
            params = [_id_list(ids)]
        with self._writing() as connection:
            rows = connection.execute(f"SELECT * FROM faces WHERE {where}", params).fetchall()
            now = utc_now()
            for row in rows:
                connection.execute("DELETE FROM faces WHERE id = ?", (row["id"],))
                self._log(connection, row["id"], "purge", _state(row), None, actor, now)
        self._remove_unreferenced([row["sha256"] for row in rows])
        return len(rows)

    def _remove_unreferenced(self, hashes: Sequence[str]) -> None:
        """Remove the files of rows deleted (and committed) before: under the write lock, and only
        while no row holds those pixels again (someone may have added the same face meanwhile)."""
        if not hashes:
            return
        with self._writing() as connection:
            for sha in hashes:
                if connection.execute("SELECT 1 FROM faces WHERE sha256 = ?", (sha,)).fetchone() is None:
                    (self.root / image_file(sha)).unlink(missing_ok=True)

    # --- consistency -----------------------------------------------------------------------
    def _image_files(self) -> list[Path]:
        folder = self.root / IMAGES_DIR
        return (
            sorted(path for path in folder.rglob("*") if path.is_file() or path.is_symlink()) if folder.is_dir() else []
        )

    def check(self, repair: bool = False) -> CheckReport:
        """Compare files and rows: files without a row (orphans, e.g. after a crash between the
        file's rename and the row's commit), rows without a file, unreadable or altered files.

        repair: remove orphan files and leftover temp files, and remove the faces whose file is
        missing or unreadable (their last state stays in the events); the report lists what was done."""
        report = CheckReport()
        with self._reading() as connection:
            rows = {row["sha256"]: row for row in connection.execute("SELECT * FROM faces")}
            report.integrity = [
                str(line[0]) for line in connection.execute("PRAGMA quick_check") if str(line[0]).lower() != "ok"
            ]
        # The slow part (reading every image) runs without holding the write lock ...
        files = self._image_files()
        expected = {self.root / image_file(sha): sha for sha in rows}
        suspects: set[Path] = {path for path in files if path not in expected}
        unreadable: dict[int, str] = {}
        for path, sha in expected.items():
            row = rows[sha]
            if not path.is_file():
                continue
            try:
                if pixel_hash(read_png(path)) != sha:
                    unreadable[row["id"]] = f"{row['file']}: the pixels differ from the recorded hash (altered file)"
            except ImageError as error:
                unreadable[row["id"]] = str(error).replace(str(self.root) + os.sep, "")
        # ... then every finding is confirmed under the write lock, when no add is half done.
        with self._writing() as connection:
            current = {row["sha256"]: row for row in connection.execute("SELECT * FROM faces")}
            report.faces = len(current)
            report.files = len(self._image_files())
            for path in sorted(suspects):
                sha = path.stem if path.suffix == ".png" else ""
                if (path.exists() or path.is_symlink()) and sha not in current:
                    report.orphan_files.append(path.relative_to(self.root).as_posix())
            now = utc_now()
            removed_rows: list[str] = []
            for sha, row in current.items():
                path = self.root / image_file(sha)
                problem = None
                if not path.is_file():
                    report.missing.append(row["id"])
                    problem = "image file missing"
                elif row["id"] in unreadable:
                    report.unreadable.append((row["id"], unreadable[row["id"]]))
                    problem = "image file unreadable"
                if problem and repair:
                    # Nothing could bring the face back: its row goes (the event keeps its state).
                    connection.execute("DELETE FROM faces WHERE id = ?", (row["id"],))
                    self._log(connection, row["id"], "repair", _state(row), None, "check", now)
                    if path.exists():
                        removed_rows.append(sha)
                    report.actions.append(f"removed face {row['id']} ({problem})")
            if repair:
                for relative in report.orphan_files:
                    (self.root / relative).unlink(missing_ok=True)
                    report.actions.append(f"removed orphan file {relative}")
        self._remove_unreferenced(removed_rows)
        report.missing.sort()
        report.unreadable.sort()
        return report

    # --- import and export (fer_core/dataset_io.py) --------------------------------------------
    def import_path(
        self,
        src: str | os.PathLike,
        recognizer: EmotionRecognizer | None = None,
        actor: str = "cli",
        *,
        settings: DetectorSettings | None = None,
        tta: str = "none",
    ) -> ImportReport:
        """Import a class-folder tree, a ZIP (of such a tree, or this store's export) or a FER2013
        CSV; see `fer_core.dataset_io.import_path`."""
        from fer_core.dataset_io import import_path

        return import_path(self, src, recognizer, actor, settings=settings, tta=tta)

    def export_zip(self, path: str | os.PathLike) -> Path:
        """`<label>/<id>.png` (unlabelled faces under `unlabelled/`) plus manifest.csv."""
        from fer_core.dataset_io import export_zip

        return export_zip(self, path)

    def export_csv(self, path: str | os.PathLike) -> Path:
        """A FER2013-style CSV of the labelled faces (48x48 gray; Usage from the split)."""
        from fer_core.dataset_io import export_csv

        return export_csv(self, path)


def _faces_text(ids: Sequence[int]) -> str:
    if len(ids) == 1:
        return f"face {ids[0]}"
    return f"{len(ids)} faces"


__all__ = [
    "CheckReport",
    "ConflictError",
    "DatasetStats",
    "DatasetStore",
    "DuplicateFaceError",
    "FaceRecord",
    "NewFace",
    "PreparedFace",
    "Prediction",
    "QueuePosition",
    "UndoResult",
    "default_root",
    "is_dataset_root",
]
