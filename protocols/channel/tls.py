"""TLS 1.3 contexts for the data channel: our certificate presented, no CA anywhere.

Certificate checking is left to pinning (see authentication.py): a CA check would reject every
self-signed device certificate, and a name check means nothing for a device.
"""

from __future__ import annotations

import functools
import ssl

from protocols.channel.identity import DeviceIdentity


# One context per identity: loading the key and certificate costs more than the rest of a
# session's set-up, and a context serves any number of listeners.
@functools.lru_cache(maxsize=64)
def server_context(identity: DeviceIdentity) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(identity.cert_path, identity.key_path)
    # No client certificate request: OpenSSL would fail the handshake on a self-signed one.
    context.verify_mode = ssl.CERT_NONE
    # Every channel is a fresh, pinned session; a resumed one would skip the certificate.
    context.num_tickets = 0
    return context


@functools.lru_cache(maxsize=1)
def client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    # CERT_NONE still receives the server certificate; it is checked against the pin right
    # after the handshake, before a single frame is read.
    context.verify_mode = ssl.CERT_NONE
    return context
