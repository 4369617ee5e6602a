"""The import path the data channel's asyncio side had before it was split by concern; it still
names the same things. New code imports them from `protocols.channel`.
"""

from protocols.channel.channel import Channel
from protocols.channel.connecting import connect
from protocols.channel.listening import Listener, listen
from protocols.channel.timeouts import Timeouts

__all__ = ["Channel", "Listener", "Timeouts", "connect", "listen"]
