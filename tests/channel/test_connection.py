"""The channel on real TLS over loopback: pinning, authentication, frames, timeouts, failures."""

import asyncio

import pytest

from protocols.channel import Timeouts, connect, listen
from protocols.channel.errors import ChannelError, ErrorCode, decode_error
from protocols.channel.framing import Frame, FrameDecoder, FrameType, encode_frame
from protocols.channel.authentication import Challenge, sign_hello
from protocols.channel.tls import client_context

from .conftest import QUICK, open_pair


async def outcome(awaitable, timeout=10):
    """The ChannelError an awaitable ends with (the test fails if it ends any other way)."""
    with pytest.raises(ChannelError) as caught:
        await asyncio.wait_for(awaitable, timeout)
    return caught.value


async def raw_tls_peer(identity, port, server_fingerprint, token="token-1"):
    """A hand-made client that authenticates properly and then lets the test write any bytes."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_context(), server_hostname=None
    )
    decoder = FrameDecoder()
    frames = []
    while not frames:
        frames = decoder.feed(await reader.read(4096))
    hello = sign_hello(
        identity.private_key(),
        identity.certificate_der,
        Challenge.decode(frames[0].payload),
        server_fingerprint,
        token,
    )
    writer.write(encode_frame(FrameType.HELLO, hello.encode()))
    assert decoder.feed(await reader.read(4096)) == [Frame(FrameType.ACCEPT)]
    return reader, writer, decoder


async def read_error_frame(reader, decoder):
    frames = []
    while not frames:
        data = await asyncio.wait_for(reader.read(4096), 5)
        assert data, "the channel closed without telling the peer why"
        frames = decoder.feed(data)
    assert frames[-1].kind is FrameType.ERROR
    return decode_error(frames[-1].payload)


async def test_frames_travel_both_ways_and_an_orderly_close_reaches_the_other_side(callee, caller):
    server, client = await open_pair(callee, caller)
    await client.send(FrameType.DATA, b"from the caller")
    await server.send(FrameType.DATA, b"from the callee")
    assert await server.receive() == Frame(FrameType.DATA, b"from the caller")
    assert await client.receive() == Frame(FrameType.DATA, b"from the callee")
    assert client.cipher.startswith("TLS_")
    await client.close()
    closed = await outcome(server.receive())
    assert (closed.code, str(closed)) == (ErrorCode.CLOSED, "the peer closed the channel")
    await server.close()


async def test_many_large_frames_arrive_whole_and_in_order(callee, caller):
    server, client = await open_pair(callee, caller)
    chunks = [bytes([n]) * (256 * 1024) for n in range(24)]

    async def send_all():
        for chunk in chunks:
            await client.send(FrameType.DATA, chunk)

    sending = asyncio.create_task(send_all())
    received = [(await server.receive()).payload for _ in chunks]
    await sending
    assert received == chunks
    await client.close()
    await server.close()


async def test_a_server_presenting_another_certificate_is_refused_by_the_client(
    callee, caller, intruder
):
    # The caller pinned the callee, but the intruder answers on the port.
    listener = await listen(intruder, caller.fingerprint, "token-1", timeouts=QUICK)
    async with listener:
        refused = await outcome(
            connect(
                caller, "127.0.0.1", listener.port, callee.fingerprint, "token-1", timeouts=QUICK
            )
        )
        assert refused.code is ErrorCode.PINNING and not refused.remote
        assert "server's certificate" in refused.reason and intruder.fingerprint in refused.reason
        told = await outcome(listener.accept())
        assert told.remote and told.code is ErrorCode.PINNING


async def test_a_client_presenting_another_certificate_is_refused_by_the_server(
    callee, caller, intruder
):
    listener = await listen(callee, caller.fingerprint, "token-1", timeouts=QUICK)
    async with listener:
        dialing = connect(
            intruder, "127.0.0.1", listener.port, callee.fingerprint, "token-1", timeouts=QUICK
        )
        told = await outcome(dialing)
        refused = await outcome(listener.accept())
    assert refused.code is ErrorCode.PINNING and "client's certificate" in refused.reason
    assert told.remote and told.reason == refused.reason


async def test_a_wrong_token_is_refused_and_both_sides_say_so(callee, caller):
    listener = await listen(callee, caller.fingerprint, "token-1", timeouts=QUICK)
    async with listener:
        told = await outcome(
            connect(caller, "127.0.0.1", listener.port, callee.fingerprint, "stale", timeouts=QUICK)
        )
        refused = await outcome(listener.accept())
    assert (refused.code, refused.reason) == (ErrorCode.AUTHENTICATION, "wrong session token")
    assert str(told) == "the peer reports: wrong session token"


async def test_garbage_instead_of_tls_ends_the_attempt_with_a_tls_error(callee, caller):
    listener = await listen(callee, caller.fingerprint, "token-1", timeouts=QUICK)
    async with listener:
        _, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        refused = await outcome(listener.accept())
        writer.close()
    assert refused.code is ErrorCode.PROTOCOL and refused.reason.startswith("TLS handshake failed")


async def test_a_server_answering_garbage_instead_of_tls_is_refused_by_the_client(callee, caller):
    async def babble(reader, writer):
        writer.write(b"SIP/2.0 200 OK\r\n\r\n" * 10)
        await reader.read(1)
        writer.close()

    server = await asyncio.start_server(babble, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        refused = await outcome(
            connect(caller, "127.0.0.1", port, callee.fingerprint, "token-1", timeouts=QUICK)
        )
    assert refused.reason.startswith("TLS handshake failed")


async def test_garbage_instead_of_frames_is_refused_and_the_peer_told_why(callee, caller):
    listener = await listen(callee, caller.fingerprint, "token-1", timeouts=QUICK)
    async with listener:
        accepting = asyncio.create_task(listener.accept())
        reader, writer, decoder = await raw_tls_peer(caller, listener.port, callee.fingerprint)
        server = await accepting
        writer.write(b"\x06\x00\x00\x00\x00\x02ok" + b"this is not a frame")
        assert await server.receive() == Frame(
            FrameType.DATA, b"ok"
        )  # what came before still counts
        refused = await outcome(server.receive())
        told = await read_error_frame(reader, decoder)
        writer.close()
    assert refused.code is ErrorCode.PROTOCOL and "unknown frame type 0x74" in refused.reason
    assert told.reason == refused.reason


async def test_garbage_instead_of_the_hello_ends_the_handshake(callee, caller):
    listener = await listen(callee, caller.fingerprint, "token-1", timeouts=QUICK)
    async with listener:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", listener.port, ssl=client_context(), server_hostname=None
        )
        writer.write(encode_frame(FrameType.DATA, b"let me in"))
        refused = await outcome(listener.accept())
        writer.close()
    assert refused.reason == "expected a HELLO frame, got DATA"


async def test_a_frame_over_the_cap_is_refused_and_the_sender_hears_why(callee, caller):
    listener = await listen(
        callee, caller.fingerprint, "token-1", timeouts=QUICK, max_frame_size=64 * 1024
    )
    async with listener:
        dialing = asyncio.create_task(
            connect(
                caller, "127.0.0.1", listener.port, callee.fingerprint, "token-1", timeouts=QUICK
            )
        )
        server = await listener.accept()
        client = await dialing
    await client.send(FrameType.DATA, bytes(64 * 1024 + 1))
    refused = await outcome(server.receive())
    told = await outcome(client.receive())
    assert refused.reason == "a DATA frame of 65537 bytes exceeds the cap of 65536 bytes"
    assert told.remote and told.reason == refused.reason


async def test_the_channel_will_not_send_a_frame_over_its_own_cap(callee, caller):
    server, client = await open_pair(callee, caller, max_frame_size=1024)
    with pytest.raises(ValueError, match="exceeds the frame cap"):
        await client.send(FrameType.DATA, bytes(1025))
    await client.close()
    await server.close()


async def test_a_peer_that_vanishes_ends_the_channel_as_gone(callee, caller):
    server, client = await open_pair(callee, caller)
    client.abort()
    gone = await outcome(server.receive())
    assert gone.code is ErrorCode.GONE and "vanished" in str(gone)
    await server.close()


async def test_a_silent_peer_hits_the_idle_timeout_and_hears_about_it(callee, caller):
    impatient = Timeouts(connect=5, handshake=5, idle=0.2, close=2)
    listener = await listen(callee, caller.fingerprint, "token-1", timeouts=QUICK)
    async with listener:
        dialing = asyncio.create_task(
            connect(
                caller,
                "127.0.0.1",
                listener.port,
                callee.fingerprint,
                "token-1",
                timeouts=impatient,
            )
        )
        server = await listener.accept()
        client = await dialing
    timed_out = await outcome(client.receive())
    told = await outcome(server.receive())
    assert (timed_out.code, timed_out.reason) == (
        ErrorCode.TIMEOUT,
        "no frame from the peer for 0.2 s",
    )
    assert told.remote and told.code is ErrorCode.TIMEOUT


async def test_a_peer_that_stops_reading_makes_the_sender_wait_then_time_out(callee, caller):
    impatient = Timeouts(connect=5, handshake=5, idle=0.3, close=1)
    server, client = await open_pair(callee, caller, timeouts=impatient)
    chunk = bytes(256 * 1024)
    with pytest.raises(ChannelError) as caught:
        for _ in range(400):  # 100 MiB: far beyond every buffer on the way
            await asyncio.wait_for(client.send(FrameType.DATA, chunk), 5)
    assert (caught.value.code, caught.value.reason) == (
        ErrorCode.TIMEOUT,
        "the peer read nothing for 0.3 s",
    )
    server.abort()


async def test_a_peer_that_connects_and_says_nothing_hits_the_handshake_timeout(callee, caller):
    listener = await listen(callee, caller.fingerprint, "token-1", timeouts=Timeouts(handshake=0.2))
    async with listener:
        _, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        refused = await outcome(listener.accept())
        writer.close()
    assert (refused.code, refused.reason) == (
        ErrorCode.TIMEOUT,
        "the channel handshake did not finish within 0.2 s",
    )


async def test_an_unreachable_peer_is_a_connect_error(callee, caller):
    listener = await listen(callee, caller.fingerprint, "token-1")
    port = listener.port
    await listener.close()
    refused = await outcome(
        connect(caller, "127.0.0.1", port, callee.fingerprint, "token-1", timeouts=QUICK)
    )
    assert refused.code is ErrorCode.CONNECT and f"127.0.0.1:{port}" in refused.reason


async def test_the_listener_serves_one_connection_and_turns_the_next_away(callee, caller):
    listener = await listen(callee, caller.fingerprint, "token-1", timeouts=QUICK)
    async with listener:
        dialing = asyncio.create_task(
            connect(
                caller, "127.0.0.1", listener.port, callee.fingerprint, "token-1", timeouts=QUICK
            )
        )
        server = await listener.accept()
        client = await dialing
        second = await outcome(
            connect(
                caller, "127.0.0.1", listener.port, callee.fingerprint, "token-1", timeouts=QUICK
            )
        )
    assert second.code in (ErrorCode.CONNECT, ErrorCode.GONE, ErrorCode.PROTOCOL)
    await client.send(FrameType.DATA, b"still fine")
    assert (await server.receive()).payload == b"still fine"
    await client.close()
    await server.close()


async def test_a_pin_that_is_not_a_fingerprint_is_refused_before_any_connection(callee, caller):
    refused = await outcome(connect(caller, "127.0.0.1", 9, "AB:CD", "token-1"))
    assert (
        refused.code is ErrorCode.PINNING
        and "not a SHA-256 certificate fingerprint" in refused.reason
    )


async def test_the_channels_own_frames_cannot_be_sent_by_hand(callee, caller):
    server, client = await open_pair(callee, caller)
    with pytest.raises(ValueError, match="ACCEPT frames are the channel's own"):
        await client.send(FrameType.ACCEPT)
    await client.close()
    await server.close()


async def test_a_sender_that_only_sends_hears_why_the_receiver_gave_up(callee, caller):
    server, client = await open_pair(callee, caller)
    chunk = b"x" * 60_000

    async def stream_forever():
        while True:
            await client.send(FrameType.DATA, chunk)

    sending = asyncio.ensure_future(stream_forever())
    await server.receive()
    # The receiver fails with data of the sender's still unread: its reason must not be lost
    # to a reset connection.
    await server.close("file system: No space left on device", ErrorCode.TRANSFER)
    told = await outcome(sending)
    assert told.remote and told.reason == "file system: No space left on device"
