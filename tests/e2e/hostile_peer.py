"""A peer daemon whose rsync side lies: its manifest names a file outside the dataset.

Run as `python -m tests.e2e.hostile_peer --data-dir DIR daemon` (the arguments of sipsync-peer).
"""

from peer import transfer_registry
from peer.folder_sync import FolderSync
from protocols.channel.framing import FrameType
from protocols.rsync.manifest import FileEntry, Manifest
from protocols.rsync.messages import EXCHANGE_VERSION, Hello, changes_pieces, manifest_changes
from session_xml import SyncProtocol

ESCAPE = "../escape.txt"


class ClimbingOut(FolderSync):
    async def as_caller(self, channel, context):
        manifest = Manifest({ESCAPE: FileEntry(ESCAPE, 7, 0, 0o644, bytes(16))})
        await channel.send(FrameType.RSYNC_HELLO, Hello(EXCHANGE_VERSION, "").encode())
        for piece in changes_pieces(manifest_changes(manifest, None)):
            await channel.send(FrameType.RSYNC_MANIFEST, piece)
        await channel.send(FrameType.RSYNC_MANIFEST_END)
        while True:  # until the callee's refusal arrives as a ChannelError
            await channel.receive()


if __name__ == "__main__":
    transfer_registry.TRANSFERS[SyncProtocol.RSYNC] = ClimbingOut()
    from peer.cli import main

    main()
