"""Labelling faces one after another: a browser tab's walk through one of the store's review
queues, with auto-advance, back and forward, undo and delete.

The Label view calls this on every key press, so nothing here reads the whole table or runs a
model: faces ahead are read a page at a time (keyset paging, `DatasetStore.queue(after=...)`),
and a key press costs one write plus a few indexed reads. The version of the face the user sees
goes with every write (`expected_version`), so a face that another tab changed meanwhile is
refused with `ConflictError` and shown as it is now, instead of being overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fer_core.dataset_records import FaceRecord, QueuePosition
from fer_core.dataset_store import QUEUE_KINDS, DatasetStore
from fer_core.errors import ConflictError, DatasetError

PAGE_SIZE = 25  # faces read ahead at a time
QUEUE_TITLES: dict[str, str] = {
    "unlabelled": "unlabelled",
    "low_confidence": "least confident first",
    "disagreement": "label differs from the model",
}


@dataclass(frozen=True)
class LabelStep:
    """What the latest action did, for the page to say; `ok` is False when it was refused."""

    text: str
    ok: bool = True


@dataclass
class LabelWalk:
    """One tab's place in one review queue: the face shown (with the version the user saw), the
    faces read ahead, and a browser-like history (faces shown before, for Left; faces left by
    going back, for Right). Plain data: the page keeps it in session state and passes the
    shared store to every call."""

    kind: str
    page_size: int = PAGE_SIZE
    shown: FaceRecord | None = None
    ahead: list[FaceRecord] = field(default_factory=list)  # read from the queue, not shown yet
    behind: list[int] = field(default_factory=list)  # face ids shown before, most recent last
    forward: list[int] = field(default_factory=list)  # face ids left by going back, next last
    cursor: FaceRecord | None = None  # the last face read from the queue (the next page starts after it)
    started: bool = False
    last: LabelStep | None = None

    def __post_init__(self) -> None:
        if self.kind not in QUEUE_KINDS:
            raise DatasetError(f"unknown review queue {self.kind!r}; expected {', '.join(QUEUE_KINDS)}")

    # --- reading ---------------------------------------------------------------------------
    def current(self, store: DatasetStore) -> FaceRecord | None:
        """The face to show now, read fresh (its label and version as they are in the store);
        None when the queue has nothing (more) to show."""
        if not self.started:
            self.started = True
            self._advance(store)
        elif self.shown is not None:
            try:
                self.shown = store.get(self.shown.id)
            except DatasetError:  # purged meanwhile
                self._advance(store)
            else:
                if self.shown.deleted:  # by another tab: nothing to label here any more
                    self._advance(store)
        return self.shown

    def position(self, store: DatasetStore) -> QueuePosition | None:
        return store.queue_position(self.kind, self.shown) if self.shown is not None else None

    def restart(self) -> None:
        """Start the queue from its beginning again (faces skipped before come back)."""
        self.shown, self.ahead, self.behind, self.forward = None, [], [], []
        self.cursor, self.started = None, False

    def _read_ahead(self, store: DatasetStore) -> None:
        page = store.queue(self.kind, limit=self.page_size, after=self.cursor)
        if page:
            self.cursor = page[-1]
            self.ahead.extend(page)

    def _advance(self, store: DatasetStore) -> None:
        """Show the face left by going back, else the next face ahead that is still in the queue
        (another tab may have labelled or deleted some since they were read); None at the end."""
        self.shown = None
        while self.forward:
            try:
                revisit = store.get(self.forward.pop())
            except DatasetError:  # purged meanwhile
                continue
            if not revisit.deleted:
                self.shown = revisit
                return
        while True:
            if not self.ahead:
                self._read_ahead(store)
                if not self.ahead:
                    return
            fresh = store.queue_face(self.kind, self.ahead.pop(0).id)
            if fresh is not None:
                self.shown = fresh
                return

    def _leave(self, store: DatasetStore) -> None:
        if self.shown is not None:
            self.behind.append(self.shown.id)
        self._advance(store)

    # --- acting ----------------------------------------------------------------------------
    def label(self, store: DatasetStore, label: str | None, actor: str) -> LabelStep:
        """Label the face shown (None clears its label) and move on to the next face."""
        face = self.shown
        if face is None:
            return self._say("No face to label here.", ok=False)
        try:
            updated = store.set_label(face.id, label, actor, expected_version=face.version)
        except ConflictError as error:
            return self._refused(error)
        except DatasetError as error:
            return self._say(str(error), ok=False)
        name = label or "unlabelled"
        if updated.version == face.version:
            text = f"#{face.id} is {name} already; moved on"
        else:
            text = f"labelled #{face.id} {name}; U undoes"
        self.shown = updated
        self._leave(store)
        return self._say(text)

    def delete(self, store: DatasetStore, actor: str) -> LabelStep:
        """Delete the face shown (softly: restorable, and U undoes it) and move on."""
        face = self.shown
        if face is None:
            return self._say("No face to delete here.", ok=False)
        try:
            store.delete(face.id, actor, expected_version=face.version)
        except ConflictError as error:
            return self._refused(error)
        except DatasetError as error:
            return self._say(str(error), ok=False)
        self.shown = None
        self._advance(store)
        return self._say(f"deleted #{face.id}; U undoes")

    def skip(self, store: DatasetStore) -> LabelStep:
        """Go on to the next face without labelling this one."""
        if self.shown is None:
            return self._say("This is the end of the queue.", ok=False)
        skipped = self.shown.id
        self._leave(store)
        return self._say(f"skipped #{skipped}; Left goes back")

    def back(self, store: DatasetStore) -> LabelStep:
        """Show the face shown before this one again (to check or change its label)."""
        while self.behind:
            face_id = self.behind.pop()
            try:
                previous = store.get(face_id)
            except DatasetError:
                continue
            if previous.deleted:
                continue
            if self.shown is not None:
                self.forward.append(self.shown.id)
            self.shown = previous
            return self._say(f"back to #{previous.id}; Right goes forward")
        return self._say("No face before this one in this session.", ok=False)

    def undo(self, store: DatasetStore, actor: str) -> LabelStep:
        """Undo this actor's latest change (in any tab of the session) and show the face it
        touched again when it was a single face that is not deleted."""
        try:
            result = store.undo(actor)
        except ConflictError as error:
            return self._say(str(error), ok=False)
        except DatasetError as error:
            return self._say(str(error), ok=False)
        if result is None:
            return self._say("Nothing to undo.", ok=False)
        if len(result.face_ids) == 1:
            face_id = result.face_ids[0]
            try:
                face = store.get(face_id)
            except DatasetError:
                face = None
            if face is not None and not face.deleted:
                if self.shown is not None and self.shown.id != face_id:
                    self.forward.append(self.shown.id)
                for history in (self.behind, self.forward):
                    if face_id in history:
                        history.remove(face_id)
                self.shown = face
        return self._say(result.description[0].upper() + result.description[1:])

    def _refused(self, error: ConflictError) -> LabelStep:
        """Another tab changed the face: show it as it is now; the user decides again."""
        if isinstance(error.current, FaceRecord):
            self.shown = error.current
        return self._say(str(error), ok=False)

    def _say(self, text: str, ok: bool = True) -> LabelStep:
        self.last = LabelStep(text, ok)
        return self.last
