"""The pipelined exchange without sockets: requests and deltas as records, cut anywhere."""

import os
import random
from pathlib import Path

import pytest

from protocols.rsync.errors import ExchangeError, LimitExceeded, WireFormatError
from protocols.rsync.exchange import prepare
from protocols.rsync.manifest import scan
from protocols.rsync.plan import Direction
from protocols.rsync.receiving import FileReceiver
from protocols.rsync.records import (
    CODEC_STREAM,
    MAX_BATCH,
    BatchDecoder,
    BatchEncoder,
    Record,
    Tag,
    decode_records,
    encode,
    encode_request,
)
from protocols.rsync.serving import FileServer, delta_records
from protocols.rsync.tree import TreeChanges

import zstandard


class Versions:
    """Stands in for peer/versions.py: remembers what a sync replaced or deleted, and its bytes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.kept: dict[str, bytes] = {}

    def keep(self, relative: str, now=None):
        path = self.root / relative
        if path.is_file() and not path.is_symlink():
            self.kept[relative] = path.read_bytes()
            return path
        return None


def batched(records: list[bytes]) -> list[Record]:
    """Records through batches and back, as they cross the channel (one stream for them all)."""
    out, batch, inbox = [], BatchEncoder(), BatchDecoder()
    for record in records:
        if not batch.fits(record):
            out += decode_records(inbox.decode(batch.take()))
        batch.add(record)
    if len(batch):
        out += decode_records(inbox.decode(batch.take()))
    return out


def exchange_files(receiver: FileReceiver, server: FileServer, *, cut: int | None = None) -> bool:
    """The receiver's requests to the server and its answers back, in rounds, until the
    receiver's last request; False when `cut` records of answers were fed and the rest never came."""
    requests, fed = list(receiver.requests()), 0
    while True:
        requests += receiver.follow_ups()
        for record in batched(requests):
            server.feed(record)
        if not receiver.asking:
            assert server.idle and receiver.done
            return True
        answers: list[bytes] = []
        while server.jobs:
            answers += delta_records(server.jobs.popleft())
        for record in batched(answers):
            if fed == cut:
                return False
            receiver.feed(record)
            fed += 1
        requests = []


def sync(src: Path, dst: Path, direction=Direction.PUSH, *, cut: int | None = None,
         versions: Versions | None = None, base=None) -> dict:
    """One push from `src` to `dst`; with `cut`, the delta stream stops after that many records.
    Returns what the receiving side reports."""
    mine, theirs = scan(src), scan(dst)
    sending = prepare(mine, theirs, direction, base, local_name="a", remote_name="b")
    receiving = prepare(theirs, mine, direction.opposite, base, local_name="b", remote_name="a")
    keep = versions.keep if versions else (lambda relative: None)
    server = FileServer(sending, src)
    receiver = FileReceiver(receiving, dst, keep_version=keep)
    tree = TreeChanges(receiving, dst, keep)
    tree.before_transfer()
    if not exchange_files(receiver, server, cut=cut):
        receiver.abort()
        return {"cut": True}
    tree.after_transfer(receiving.synced())
    return {"cut": False, "literal": receiver.literal, "received": len(receiver.received),
            "applied": tree.applied, "skipped": receiver.skipped + tree.skipped,
            "summary": receiving.summary()}


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def snapshot(root: Path) -> dict:
    """Every entry with what `rsync -a` keeps: bytes, mode, mtime, link target, empty folders."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if name.startswith(".sipsync-"):
                continue
            st = os.lstat(path)
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path), st.st_mtime_ns)
            elif path.is_dir():
                out[rel] = ("dir", st.st_mode & 0o7777, st.st_mtime_ns)
            else:
                out[rel] = ("file", path.read_bytes(), st.st_mode & 0o7777, st.st_mtime_ns)
    return out


@pytest.fixture
def tree(tmp_path):
    rng = random.Random(7)
    src, dst = tmp_path / "src", tmp_path / "dst"
    files = {f"d{i % 4}/f{i}.txt": b"line %d\n" % i * rng.randrange(1, 400) for i in range(40)}
    files["big/video.bin"] = rng.randbytes(3 << 20)
    write_tree(src, files)
    (src / "empty").mkdir()
    (src / "d1" / "link").symlink_to("../d0/f0.txt")
    os.chmod(src / "d2", 0o750)
    os.chmod(src / "d0" / "f0.txt", 0o755)
    dst.mkdir()
    return src, dst, rng


def test_a_first_sync_is_a_faithful_copy_modes_times_links_and_empty_folders(tree):
    src, dst, _ = tree
    report = sync(src, dst)
    assert snapshot(dst) == snapshot(src)
    assert report["received"] == 41 and report["skipped"] == []


def test_a_mode_only_and_an_mtime_only_change_travel_without_content_bytes(tree):
    src, dst, _ = tree
    sync(src, dst)
    os.chmod(src / "d1" / "f1.txt", 0o700)
    os.utime(src / "d3" / "f3.txt", ns=(1_500_000_000_123_456_789,) * 2)
    report = sync(src, dst)
    assert snapshot(dst) == snapshot(src)
    assert (report["received"], report["literal"], report["applied"]) == (0, 0, 2)
    assert report["summary"].startswith("2 metadata only;")


@pytest.mark.parametrize("seed", range(6))
def test_a_transfer_cut_at_a_random_record_leaves_every_file_old_or_new_and_the_retry_finishes(tree, seed):
    src, dst, rng = tree
    sync(src, dst)
    old = snapshot(dst)
    for i in range(0, 40, 3):
        (src / f"d{i % 4}/f{i}.txt").write_bytes(b"edited %d\n" % i * rng.randrange(50, 300))
    video = bytearray((src / "big/video.bin").read_bytes())
    video[1 << 20:(1 << 20) + 4096] = rng.randbytes(4096)
    (src / "big/video.bin").write_bytes(video)
    new = snapshot(src)
    answers = random.Random(seed)
    assert sync(src, dst, cut=answers.randrange(1, 30))["cut"]
    for rel, entry in snapshot(dst).items():
        if entry[0] == "file":
            assert entry[1] in (old[rel][1], new[rel][1]), f"{rel} is neither old nor new"
    sync(src, dst)
    assert snapshot(dst) == new


def test_a_mirror_deletes_what_the_source_lacks_into_versions_but_never_an_ignored_file(tree):
    src, dst, _ = tree
    write_tree(dst, {"stale.txt": b"only here", "old/deep.txt": b"deep", "build/a.o": b"obj",
                     "d0/f0.txt": b"another version"})
    (dst / ".sipsyncignore").write_text("build/\n")
    (src / ".sipsyncignore").write_text("build/\n")
    versions = Versions(dst)
    sync(src, dst, Direction.MIRROR, versions=versions)
    want = {k: v for k, v in snapshot(src).items()}
    got = snapshot(dst)
    assert got.pop("build") and got.pop("build/a.o")[1] == b"obj"
    assert got == want
    assert versions.kept == {"stale.txt": b"only here", "old/deep.txt": b"deep",
                             "d0/f0.txt": b"another version"}


def test_a_push_without_history_leaves_the_target_s_own_files_alone(tree):
    src, dst, _ = tree
    write_tree(dst, {"mine.txt": b"target's own"})
    sync(src, dst, Direction.PUSH)
    assert (dst / "mine.txt").read_bytes() == b"target's own"


def test_an_ignored_file_is_never_sent(tree):
    src, dst, _ = tree
    write_tree(src, {"build/out.o": b"object", "notes.swp": b"swap"})
    (src / ".sipsyncignore").write_text("build/\n")
    sync(src, dst)
    assert not (dst / "build").exists() and not (dst / "notes.swp").exists()
    assert (dst / ".sipsyncignore").read_text() == "build/\n"  # the rules travel with the data


def test_a_link_leading_out_of_the_dataset_is_refused_with_the_reason_by_the_receiver(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir(), dst.mkdir()
    (src / "out").symlink_to("/etc/passwd")
    mine = scan(src, allow_external_links=True)  # a sender that allows it, or lies
    receiving = prepare(scan(dst), mine, Direction.PULL, None, local_name="b", remote_name="a")
    tree = TreeChanges(receiving, dst, lambda relative: None)
    tree.before_transfer()
    tree.after_transfer(receiving.synced())
    assert not os.path.lexists(dst / "out")
    assert [s.path for s in tree.skipped] == ["out"] and "leads out" in tree.skipped[0].reason


def test_a_file_changed_at_the_source_after_the_scan_is_skipped_with_the_reason(tree):
    src, dst, _ = tree
    mine, theirs = scan(src), scan(dst)
    sending = prepare(mine, theirs, Direction.PUSH, None, local_name="a", remote_name="b")
    receiving = prepare(theirs, mine, Direction.PULL, None, local_name="b", remote_name="a")
    (src / "d0" / "f0.txt").write_bytes(b"changed after the scan, and longer than before" * 50)
    server, receiver = FileServer(sending, src), FileReceiver(receiving, dst)
    TreeChanges(receiving, dst, lambda relative: None).before_transfer()
    assert exchange_files(receiver, server)
    assert receiver.done and [s.path for s in receiver.skipped] == ["d0/f0.txt"]
    assert "changed at the source" in receiver.skipped[0].reason
    assert not (dst / "d0" / "f0.txt").exists() and (dst / "d0" / "f4.txt").exists()


def test_a_compressed_batch_that_expands_past_the_cap_is_refused_as_it_expands():
    inbox = BatchDecoder()
    assert inbox.decode(BatchEncoder().encode(bytes(MAX_BATCH))) == bytes(MAX_BATCH)
    bomb = bytes([CODEC_STREAM]) + zstandard.ZstdCompressor().compress(bytes(1 << 30))
    with pytest.raises(LimitExceeded, match="expands past"):
        BatchDecoder().decode(bomb)


def test_a_stream_asking_for_a_window_above_the_limit_is_refused():
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=27)
    stream = zstandard.ZstdCompressor(compression_params=params).compressobj()
    piece = stream.compress(b"x" * 1000) + stream.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
    with pytest.raises(WireFormatError, match="corrupt compressed batch"):
        BatchDecoder().decode(bytes([CODEC_STREAM]) + piece)


def test_batches_share_one_stream_so_a_repeat_in_a_later_batch_costs_almost_nothing():
    text = random.Random(3).randbytes(50_000)  # incompressible on its own
    batch = BatchEncoder()
    first, again = batch.encode(text), batch.encode(text)
    assert len(first) > 50_000 and len(again) < 1_000
    inbox = BatchDecoder()
    assert inbox.decode(first) == text and inbox.decode(again) == text
    with pytest.raises(WireFormatError):  # read alone, the second piece misses its context
        BatchDecoder().decode(again)


def test_every_batch_is_whole_on_arrival_whatever_its_size():
    rng = random.Random(5)
    batch, inbox = BatchEncoder(), BatchDecoder()
    for size in (1, 130_000, MAX_BATCH, 17, MAX_BATCH - 1, 256 << 10):
        body = rng.randbytes(size // 2) + bytes(size - size // 2)
        assert inbox.decode(batch.encode(body)) == body


@pytest.mark.parametrize("payload", [b"", b"\x07abc", b"\x01abc", b"\x00\x09\x00\x00\x00\x00",
                                     b"\x00\x05\xff\x00\x00\x00", b"\x02not zstd at all"])
def test_a_malformed_batch_is_a_wire_format_error(payload):
    with pytest.raises(WireFormatError):
        decode_records(BatchDecoder().decode(payload))


def test_a_request_outside_the_plan_or_after_the_last_one_is_refused(tree):
    src, dst, _ = tree
    sending = prepare(scan(src), scan(dst), Direction.PUSH, None, local_name="a", remote_name="b")
    server = FileServer(sending, src)
    with pytest.raises(ExchangeError, match="'nope.txt'"):
        server.feed(decode_records(encode_request("nope.txt", 0))[0])
    server = FileServer(sending, src)
    server.feed(decode_records(encode(Tag.REQUESTS_DONE))[0])
    with pytest.raises(ExchangeError, match="after the peer's last request"):
        server.feed(decode_records(encode_request("d0/f0.txt", 0))[0])


def test_a_delta_nobody_asked_for_is_refused(tree):
    src, dst, _ = tree
    receiving = prepare(scan(dst), scan(src), Direction.PULL, None, local_name="b", remote_name="a")
    receiver = FileReceiver(receiving, dst)
    with pytest.raises(ExchangeError, match="did not ask for"):
        receiver.feed(Record(Tag.DELTA, b"x"))


def test_the_losing_side_of_a_conflict_sends_its_version_even_after_the_winners_arrived(tmp_path):
    """Both versions cross at once: the loser's file may be replaced by the winner's before the
    winner's request for the loser's version is answered; the kept copy still serves it."""
    laptop, phone = tmp_path / "laptop", tmp_path / "phone"
    for root, text, mtime in ((laptop, b"laptop edit", 1_700_000_000),
                              (phone, b"phone edit, newer", 1_700_000_100)):
        root.mkdir()
        (root / "shared.txt").write_bytes(text)
        os.utime(root / "shared.txt", (mtime, mtime))
    mine, theirs = scan(laptop), scan(phone)
    losing = prepare(mine, theirs, Direction.TWO_WAY, None, local_name="laptop", remote_name="phone")
    winning = prepare(theirs, mine, Direction.TWO_WAY, None, local_name="phone", remote_name="laptop")
    assert losing.keep_copies
    TreeChanges(losing, laptop, lambda relative: None).before_transfer()
    # The phone's version lands on the laptop first, replacing shared.txt as a rename does.
    replacement = laptop / "incoming.tmp"
    replacement.write_bytes(b"phone edit, newer")
    os.replace(replacement, laptop / "shared.txt")

    server = FileServer(losing, laptop)
    receiver = FileReceiver(winning, phone, keep_version=lambda relative: None)
    TreeChanges(winning, phone, lambda relative: None).before_transfer()
    assert exchange_files(receiver, server)
    (copy,) = [item.target for item in winning.incoming]
    assert (phone / copy).read_bytes() == b"laptop edit"


@pytest.mark.parametrize("size", [0, 1, 200_000, 300_000])
def test_a_new_file_up_to_256_kib_is_answered_with_one_delta_record_and_lands_whole(tmp_path, size):
    src, dst = tmp_path / "src", tmp_path / "dst"
    data = random.Random(size).randbytes(size)
    write_tree(src, {"f.bin": data})
    dst.mkdir()
    sending = prepare(scan(src), scan(dst), Direction.PUSH, None, local_name="a", remote_name="b")
    receiving = prepare(scan(dst), scan(src), Direction.PULL, None, local_name="b", remote_name="a")
    server, receiver = FileServer(sending, src), FileReceiver(receiving, dst)
    for record in batched(list(receiver.requests()) + list(receiver.follow_ups())):
        server.feed(record)
    answers = batched(list(delta_records(server.jobs.popleft())))
    tags = [record.tag for record in answers]
    whole = size <= 256 * 1024 - 64
    assert (tags.count(Tag.DELTA) == 1) is whole and tags[-1] is Tag.DELTA_END
    for record in answers:
        receiver.feed(record)
    assert receiver.done and (dst / "f.bin").read_bytes() == data
