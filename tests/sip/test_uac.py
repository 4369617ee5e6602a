"""Out-of-dialog requests from a device: the common headers, and a challenge answered once with
the next CSeq, against a scripted agent (no sockets)."""

from protocols.sip.digest import Algorithm, expected_response, ha1
from protocols.sip.digest_server import parse_credentials
from protocols.sip.endpoint import Endpoint, bracketed
from protocols.sip.message import parse_message, response_to
from protocols.sip.uac import Account, OutOfDialogClient

import pytest

SERVER = Endpoint("udp", "127.0.0.1", 5060)
CHALLENGE = 'Digest realm="sipsync", nonce="n0nce", qop="auth", algorithm=SHA-256'


class ScriptedAgent:
    """Answers each request with the next status in the script, as a server would."""

    def __init__(self, *statuses: int, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, 5070
        self.hostport = f"{bracketed(host)}:5070"
        self.statuses = list(statuses)
        self.sent = []

    async def request(self, request, destination, *, timeout):
        # Through bytes and back, as the wire would carry it.
        self.sent.append(parse_message(bytes(request)))
        status = self.statuses.pop(0)
        headers = []
        if status == 401:
            headers = [("WWW-Authenticate", CHALLENGE)]
        elif status == 407:
            headers = [("Proxy-Authenticate", CHALLENGE)]
        return parse_message(bytes(response_to(self.sent[-1], status, headers=headers)))


def client(agent, password="secret"):
    return OutOfDialogClient(agent, Account("alice", lambda: password, "sipsync-test/1"), "udp",
                             call_id="c1@phone", from_address="<sip:alice@sipsync>")


def assert_answers_the_challenge(credentials_header: str, method: str, uri: str, password: str):
    credentials = parse_credentials(credentials_header)
    secret = ha1("alice", "sipsync", password, Algorithm.SHA256)
    assert credentials.algorithm == "SHA-256" and credentials.uri == uri
    assert credentials.response == expected_response(
        Algorithm.SHA256, secret, method, uri, credentials.nonce, credentials.nc,
        credentials.cnonce)


async def test_a_request_carries_the_common_headers_once():
    agent = ScriptedAgent(200)
    sent, response = await client(agent).send("REGISTER", "sip:sipsync", "<sip:alice@sipsync>",
                                              SERVER, timeout=1.0, headers=[("Expires", "60")])
    assert response.status_code == 200 and len(agent.sent) == 1
    request = agent.sent[0]
    for name in ("via", "from", "to", "call-id", "cseq", "contact", "user-agent", "expires"):
        assert len(request.headers.get(name)) == 1, name
    assert request.headers.get_first("user-agent") == "sipsync-test/1"
    assert request.headers.get_first("contact") == "<sip:alice@127.0.0.1:5070;transport=udp>"
    assert request.via[0].branch.startswith("z9hG4bK")


@pytest.mark.parametrize("status, header", [(401, "authorization"),
                                            (407, "proxy-authorization")])
async def test_a_challenge_is_answered_once_with_the_next_cseq(status, header):
    agent = ScriptedAgent(status, 200)
    sent, response = await client(agent).send("INVITE", "sip:bob@sipsync", "<sip:bob@sipsync>",
                                              SERVER, timeout=1.0, digest_uri="sip:127.0.0.1:5060",
                                              body=b"<offer/>", content_type="application/x")
    first, second = agent.sent
    assert response.status_code == 200 and sent.cseq.seq == 2
    assert [first.cseq.seq, second.cseq.seq] == [1, 2]
    assert first.call_id == second.call_id == "c1@phone"
    assert first.headers.get_first("from") == second.headers.get_first("from")
    assert first.via[0].branch != second.via[0].branch
    assert not first.headers.get(header) and second.body == b"<offer/>"
    assert_answers_the_challenge(second.headers.get_first(header), "INVITE", "sip:127.0.0.1:5060",
                                 "secret")


async def test_a_second_challenge_is_the_answer_the_caller_gets():
    agent = ScriptedAgent(401, 401)
    _, response = await client(agent).send("REGISTER", "sip:sipsync", "<sip:alice@sipsync>",
                                           SERVER, timeout=1.0)
    assert response.status_code == 401 and len(agent.sent) == 2


async def test_an_ipv6_host_is_bracketed_in_via_and_contact():
    agent = ScriptedAgent(200, host="::1")
    await client(agent).send("OPTIONS", "sip:sipsync", "<sip:sipsync>", SERVER, timeout=1.0)
    request = agent.sent[0]
    assert request.headers.get_first("contact").startswith("<sip:alice@[::1]:5070;")
    assert "SIP/2.0/UDP [::1]:5070;" in request.headers.get_first("via")
