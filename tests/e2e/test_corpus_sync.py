"""The public corpus through the real server: each vCard and iCalendar file imported on one
device, synced two-way to the other by real daemons over the pinned channel, exported there: the
same items (PRODID, folding and line ends aside), recurrence sets whole, the calendar kept."""

from __future__ import annotations

import json

from peer import config as peer_config
from peer import record_formats
from peer.config import Dataset
from peer.record_store import RecordStore, store_path
from session_xml import DataType, SyncProtocol

from ..peer.test_record_corpus import FILES, calendar_lines, components, items_by_uid
from ..waiting import wait_until


def test_every_corpus_file_arrives_whole_on_the_other_device(deployment, tmp_path):
    deployment.user("alice", "alice-pw")
    deployment.start_server()
    laptop = deployment.device("alice", "alice-pw", "laptop")
    phone = deployment.device("alice", "alice-pw", "phone")
    names = {}
    for number, path in enumerate(FILES):
        kind = "contacts" if path.suffix == ".vcf" else "calendar"
        name = f"{kind}-{number:02d}"  # one dataset a file: UIDs may repeat between files
        names[path] = name
        for device in (laptop, phone):
            # What `dataset add` writes, without a process per dataset.
            folder = tmp_path / device.name / name
            folder.mkdir(parents=True)
            config = peer_config.load(device.data_dir)
            peer_config.save(peer_config.with_dataset(config, Dataset(
                name, DataType(kind), folder, (SyncProtocol.SYNCML,))))
        # Straight into the store (as `records import` does), to spare a process per file.
        with RecordStore(store_path(tmp_path / "laptop" / name)) as store:
            store.import_bytes(path.read_bytes())
    laptop.start(), phone.start()
    wait_until(lambda: len(deployment.online()) == 2, what="both devices online")
    for path, name in names.items():
        result = laptop.invite("alice/phone", "--dataset", name, "--json")
        outcome = json.loads(result.stdout)
        assert outcome["ok"], (path.name, outcome)
        original = path.read_bytes()
        with RecordStore(store_path(tmp_path / "phone" / name)) as store:
            arrived = store.export_bytes(record_formats.parse(original).content_type)
        before, after = items_by_uid(original), items_by_uid(arrived)
        assert set(after) == set(before), path.name
        for uid, item in before.items():
            assert components(after[uid]) == components(item), (path.name, uid)
        assert all(line in calendar_lines(arrived) for line in calendar_lines(original)), path.name
