"""Device identities and channel pairs on loopback for the channel tests."""

import asyncio

import pytest

from protocols.channel import Timeouts, connect, listen
from protocols.channel.identity import DeviceIdentity

# Short enough that a hung test fails fast, long enough for a loaded 2-core machine.
QUICK = Timeouts(connect=5.0, handshake=5.0, idle=5.0, close=2.0)


@pytest.fixture(scope="session")
def identities(tmp_path_factory):
    root = tmp_path_factory.mktemp("identities")
    return {
        name: DeviceIdentity.load_or_create(root / name, name)
        for name in ("callee", "caller", "intruder")
    }


@pytest.fixture
def callee(identities):
    return identities["callee"]


@pytest.fixture
def caller(identities):
    return identities["caller"]


@pytest.fixture
def intruder(identities):
    return identities["intruder"]


async def open_pair(callee, caller, *, token="token-1", timeouts=QUICK, **options):
    """A listening callee and a connected caller, as a session descriptor exchange would set
    them up; returns (callee channel, caller channel)."""
    listener = await listen(callee, caller.fingerprint, token, timeouts=timeouts, **options)
    async with listener:
        dialing = asyncio.create_task(
            connect(
                caller,
                "127.0.0.1",
                listener.port,
                callee.fingerprint,
                token,
                timeouts=timeouts,
                **options,
            )
        )
        server_side = await listener.accept(timeout=10)
        return server_side, await dialing
