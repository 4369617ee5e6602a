"""How a host is written in a URI, a Via or a log line."""

from protocols.sip.endpoint import Endpoint, bracketed


def test_an_ipv6_host_is_bracketed_and_others_are_left_alone():
    assert bracketed("::1") == "[::1]"
    assert bracketed("127.0.0.1") == "127.0.0.1"
    assert bracketed("sip.example.org") == "sip.example.org"


def test_an_endpoint_writes_its_host_and_port_as_a_uri_does():
    assert Endpoint("udp", "fe80::1", 5060).hostport == "[fe80::1]:5060"
    assert str(Endpoint("tcp", "::1", 5070)) == "tcp:[::1]:5070"
    assert str(Endpoint("udp", "127.0.0.1", 5060)) == "udp:127.0.0.1:5060"
