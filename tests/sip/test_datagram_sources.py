"""The UDP transport hands each datagram to the driver with its source: one Endpoint per
address it hears from, kept for the next datagram, within a bound."""

from __future__ import annotations

from protocols.sip import transport
from protocols.sip.endpoint import Endpoint


def received_sources(addresses: list[tuple]) -> list[Endpoint]:
    heard: list[Endpoint] = []
    datagrams = transport._Datagrams(lambda data, source: heard.append(source))
    for address in addresses:
        datagrams.datagram_received(b"x", address)
    return heard


def test_datagrams_from_one_address_share_its_endpoint():
    first, second, other = received_sources([("192.0.2.7", 5071), ("192.0.2.7", 5071),
                                             ("192.0.2.7", 5072)])
    assert first == Endpoint("udp", "192.0.2.7", 5071)
    assert second is first
    assert other == Endpoint("udp", "192.0.2.7", 5072)


def test_an_ipv6_source_keeps_its_host_and_port():
    (source,) = received_sources([("2001:db8::1", 5060, 0, 0)])
    assert source == Endpoint("udp", "2001:db8::1", 5060)


def test_a_flood_of_addresses_does_not_grow_the_table_past_its_bound(monkeypatch):
    monkeypatch.setattr(transport, "SOURCES_REMEMBERED", 8)
    heard: list[Endpoint] = []
    datagrams = transport._Datagrams(lambda data, source: heard.append(source))
    for port in range(1, 100):
        datagrams.datagram_received(b"x", ("192.0.2.9", port))
        assert len(datagrams._sources) <= 8
    assert [source.port for source in heard] == list(range(1, 100))
