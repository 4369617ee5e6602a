"""A record dataset kept in a vdir folder: one .vcf or .ics file per item, the layout vdirsyncer,
khal and khard use. `refresh()` reads into the store what other programs changed there (a file is
read again only when its mtime, size or inode moved: the vdir etag); `write_back()` writes what a
sync or an edit changed in the store, each file atomically (temp file, then rename)."""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from protocols.syncml.records import content_hash
from session_xml import DataType

from . import record_formats
from .config import Dataset
from .record_formats import RecordFormatError
from .record_store import RecordStore, VdirFile, item_id_for

LAYOUT = "vdir"
# What a record dataset's items are written as (when the store itself cannot tell, and in a vdir).
CONTENT_TYPES = {DataType.CONTACTS: record_formats.VCARD, DataType.CALENDAR: record_formats.ICALENDAR}
EXTENSIONS = {record_formats.VCARD: ".vcf", record_formats.ICALENDAR: ".ics"}

# vdir names a file after its item's UID when the UID is safe in a file name (as vdirsyncer
# does); other UIDs get a name derived from them, the same one on every run.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,120}$")
_NAME_NAMESPACE = uuid.UUID("5d0c1f38-6a57-4a8e-9a77-0e2b9f3c1d42")


@dataclass(frozen=True)
class VdirReport:
    """What one refresh or write-back did, by item id; `skipped` names files left alone, with why."""

    read: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    written: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = field(default=())


def _etag(path: Path) -> str:
    status = path.stat()
    return f"{status.st_mtime_ns};{status.st_size};{status.st_ino}"


def _write_atomically(path: Path, content: bytes) -> str:
    # A leading dot: vdir readers (and refresh) ignore the temp file if it is ever left behind.
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return _etag(path)


class VdirFolder:
    """The two-way link between a dataset's store and its vdir folder."""

    def __init__(self, store: RecordStore, folder: str | Path, content_type: str) -> None:
        if content_type not in EXTENSIONS:
            raise ValueError(f"a vdir holds vCard or iCalendar files, not {content_type}")
        self.store = store
        self.folder = Path(folder)
        self.content_type = content_type
        self.extension = EXTENSIONS[content_type]

    def _item_files(self) -> list[Path]:
        return sorted(path for path in self.folder.iterdir()
                      if path.name.endswith(self.extension) and not path.name.startswith(".") and path.is_file())

    def refresh(self) -> VdirReport:
        """Read the files other programs added, changed or removed since the last look. A file
        that is not one readable item is skipped (and named in the report), never half read."""
        read, removed, skipped = [], [], []
        with self.store.batch():
            known = self.store.vdir_files()
            present = set()
            for path in self._item_files():
                present.add(path.name)
                entry = known.get(path.name)
                etag = _etag(path)
                if entry is not None and entry.etag == etag:
                    continue
                try:
                    items = record_formats.split(path.read_bytes(), self.content_type)
                except (RecordFormatError, OSError) as exc:
                    skipped.append((path.name, str(exc)))
                    continue
                if len(items) != 1:
                    skipped.append((path.name, f"holds {len(items)} items; a vdir file holds one"))
                    continue
                item = items[0]
                # A card without UID keeps the id it was first read under, edit after edit.
                has_uid = record_formats.uid_of(item) is not None
                item_id = entry.item_id if entry is not None and not has_uid else item_id_for(item)
                if entry is not None and entry.item_id != item_id:
                    self._delete_if_live(entry.item_id)  # its UID changed: another item now
                current = self.store.meta(item_id)
                if current is None or current.deleted:
                    self.store.add(item, self.content_type, item_id=item_id)
                    read.append(item_id)
                elif current.hash != content_hash(item):
                    self.store.replace(item_id, item)
                    read.append(item_id)
                self.store.save_vdir_file(VdirFile(path.name, item_id, etag, content_hash(item)))
            for name, entry in known.items():
                if name in present:
                    continue
                current = self.store.meta(entry.item_id)
                # Only the version the file held is deleted; a newer one from a sync is written back.
                if current is not None and current.live and current.hash == entry.hash:
                    self.store.delete(entry.item_id)
                    removed.append(entry.item_id)
                self.store.forget_vdir_file(name)
        return VdirReport(read=tuple(read), removed=tuple(removed), skipped=tuple(skipped))

    def _delete_if_live(self, item_id: str) -> None:
        current = self.store.meta(item_id)
        if current is not None and current.live:
            self.store.delete(item_id)

    def _new_name(self, item_id: str, taken: set[str]) -> str:
        stem = item_id if _SAFE_NAME.match(item_id) else str(uuid.uuid5(_NAME_NAMESPACE, item_id))
        name = stem + self.extension
        if name in taken or (self.folder / name).exists():
            name = f"{uuid.uuid5(_NAME_NAMESPACE, item_id + '/' + str(len(taken)))}{self.extension}"
        return name

    def write_back(self) -> VdirReport:
        """Write each item the store changed since its file was last read or written, and remove
        the files of deleted items. A file another program changed meanwhile is left as it is:
        the next refresh reads it, and its edit wins."""
        written, deleted, skipped = [], [], []
        with self.store.batch():
            known = self.store.vdir_files()
            by_item = {entry.item_id: entry for entry in known.values()}
            taken = set(known)
            for record in self.store.items(include_deleted=True):
                if record.meta.content_type != self.content_type:
                    continue
                entry = by_item.get(record.id)
                if entry is not None and self._changed_outside(entry):
                    skipped.append((entry.name, "changed by another program since it was read"))
                    continue
                if record.content is None:
                    if entry is not None:
                        (self.folder / entry.name).unlink(missing_ok=True)
                        self.store.forget_vdir_file(entry.name)
                        deleted.append(record.id)
                    continue
                if entry is not None and entry.hash == record.meta.hash:
                    continue
                name = entry.name if entry is not None else self._new_name(record.id, taken)
                taken.add(name)
                etag = _write_atomically(self.folder / name, record.content)
                self.store.save_vdir_file(VdirFile(name, record.id, etag, record.meta.hash))
                written.append(record.id)
        return VdirReport(written=tuple(written), deleted=tuple(deleted), skipped=tuple(skipped))

    def _changed_outside(self, entry: VdirFile) -> bool:
        path = self.folder / entry.name
        try:
            return _etag(path) != entry.etag
        except FileNotFoundError:
            return False

    def sync(self) -> tuple[VdirReport, VdirReport]:
        """Both ways: the folder's changes into the store, then the store's into the folder."""
        return self.refresh(), self.write_back()


def vdir_of(store: RecordStore, dataset: Dataset) -> VdirFolder | None:
    """The vdir link of a dataset kept in that layout; None for one kept in its store alone."""
    if dataset.layout != LAYOUT:
        return None
    return VdirFolder(store, dataset.path, CONTENT_TYPES[dataset.data_type])
