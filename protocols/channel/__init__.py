"""The peer-to-peer data channel: TLS 1.3 pinned to descriptor fingerprints, typed frames.

The callee `listen()`s, the caller `connect()`s; both get a `Channel`. README.md maps the modules.
"""

from protocols.channel.channel import Channel
from protocols.channel.connecting import connect
from protocols.channel.errors import ChannelError, ErrorCode
from protocols.channel.framing import DATA_CHUNK_SIZE, DEFAULT_MAX_FRAME_SIZE, Frame, FrameType
from protocols.channel.identity import DeviceIdentity, IdentityError
from protocols.channel.listening import Listener, listen
from protocols.channel.timeouts import Timeouts

__all__ = [
    "DATA_CHUNK_SIZE",
    "DEFAULT_MAX_FRAME_SIZE",
    "Channel",
    "ChannelError",
    "DeviceIdentity",
    "ErrorCode",
    "Frame",
    "FrameType",
    "IdentityError",
    "Listener",
    "Timeouts",
    "connect",
    "listen",
]
