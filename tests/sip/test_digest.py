"""Server-side digest: RFC vectors, nonces, replays, staleness."""

from protocols.sip.digest import Algorithm, DigestError, expected_response, ha1
from protocols.sip.digest_server import (
    Credentials,
    DigestAuthenticator,
    Verdict,
    parse_credentials,
)

import pytest

# RFC 7616 section 3.9.1: the same request answered with MD5 and with SHA-256.
RFC = dict(username="Mufasa", realm="http-auth@example.org", password="Circle of Life",
           method="GET", uri="/dir/index.html",
           nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc="00000001",
           cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")


@pytest.mark.parametrize("algorithm, response", [
    (Algorithm.MD5, "8ca523f5e9506fed4657c9700eebdbec"),
    (Algorithm.SHA256, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_responses_match_the_rfc_7616_examples(algorithm, response):
    secret = ha1(RFC["username"], RFC["realm"], RFC["password"], algorithm)
    assert expected_response(algorithm, secret, RFC["method"], RFC["uri"], RFC["nonce"],
                             RFC["nc"], RFC["cnonce"]) == response


def test_sipp_shaped_credentials_parse():
    value = ('Digest username="user1",realm="sipsync",cnonce="6b8b4567",nc=00000001,qop=auth,'
             'uri="sip:127.0.0.1:5080",nonce="abc",response="0f",algorithm=MD5')
    c = parse_credentials(value)
    assert (c.username, c.nc, c.qop, c.uri, c.algorithm) == (
        "user1", "00000001", "auth", "sip:127.0.0.1:5080", "MD5")


def test_credentials_missing_a_field_are_refused():
    with pytest.raises(DigestError, match="response"):
        parse_credentials('Digest username="a", realm="r", nonce="n", uri="u"')
    with pytest.raises(DigestError):
        parse_credentials('Basic dXNlcjpwYXNz')


class Client:
    """A digest client, as a device computes its answer."""

    def __init__(self, auth, user="alice", password="secret"):
        self.auth, self.user, self.password = auth, user, password

    def answer(self, nonce, algorithm=Algorithm.MD5, nc="00000001", cnonce="c1", method="REGISTER",
               uri="sip:127.0.0.1:5060", password=None):
        secret = ha1(self.user, self.auth.realm, password or self.password, algorithm)
        return Credentials(
            username=self.user, realm=self.auth.realm, nonce=nonce, uri=uri,
            response=expected_response(algorithm, secret, method, uri, nonce, nc, cnonce),
            algorithm=algorithm.value, qop="auth", nc=nc, cnonce=cnonce)


def make_auth(**kwargs):
    auth = DigestAuthenticator("sipsync", b"k" * 32, **kwargs)
    store = {a: ha1("alice", "sipsync", "secret", a) for a in Algorithm}
    return auth, (lambda user, algorithm: store[algorithm] if user == "alice" else None)


def nonce_of(challenge):
    return challenge.split('nonce="')[1].split('"')[0]


def test_challenges_offer_md5_first_then_sha256_with_qop_auth():
    auth, _ = make_auth()
    first, second = auth.challenges(now=1000.0)
    assert "algorithm=MD5" in first and "algorithm=SHA-256" in second
    assert 'qop="auth"' in first and "stale" not in first
    assert nonce_of(first) == nonce_of(second)


def test_every_challenge_has_a_fresh_nonce():
    auth, _ = make_auth()
    assert nonce_of(auth.challenges(1.0)[0]) != nonce_of(auth.challenges(1.0)[0])


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_right_password_is_accepted_with_either_algorithm(algorithm):
    auth, lookup = make_auth()
    nonce = nonce_of(auth.challenges(1000.0)[0])
    outcome = auth.verify(Client(auth).answer(nonce, algorithm), "REGISTER", lookup,
                          branch="z9hG4bK1", now=1001.0)
    assert outcome.verdict is Verdict.OK


def test_wrong_password_fails():
    auth, lookup = make_auth()
    nonce = nonce_of(auth.challenges(1000.0)[0])
    outcome = auth.verify(Client(auth).answer(nonce, password="nope"), "REGISTER", lookup,
                          branch="b", now=1000.0)
    assert outcome.verdict is Verdict.FAILED and outcome.reason == "wrong credentials"


def test_unknown_user_fails_like_a_wrong_password():
    auth, lookup = make_auth()
    nonce = nonce_of(auth.challenges(1000.0)[0])
    client = Client(auth, user="mallory")
    outcome = auth.verify(client.answer(nonce), "REGISTER", lookup, branch="b", now=1000.0)
    assert outcome.verdict is Verdict.FAILED and outcome.reason == "wrong credentials"


def test_a_nonce_we_did_not_issue_fails():
    auth, lookup = make_auth()
    other = DigestAuthenticator("sipsync", b"x" * 32)  # another server's secret
    nonce = nonce_of(other.challenges(1000.0)[0])
    outcome = auth.verify(Client(auth).answer(nonce), "REGISTER", lookup, branch="b", now=1000.0)
    assert outcome.verdict is Verdict.FAILED and "not issued" in outcome.reason


def test_an_expired_nonce_with_the_right_password_is_stale():
    auth, lookup = make_auth(nonce_lifetime=30.0)
    nonce = nonce_of(auth.challenges(1000.0)[0])
    outcome = auth.verify(Client(auth).answer(nonce), "REGISTER", lookup, branch="b", now=1031.0)
    assert outcome.verdict is Verdict.STALE
    assert "stale=true" in auth.challenges(1031.0, stale=True)[0]


def test_a_replayed_nonce_count_fails_but_a_retransmission_passes():
    auth, lookup = make_auth()
    nonce = nonce_of(auth.challenges(1000.0)[0])
    credentials = Client(auth).answer(nonce)
    assert auth.verify(credentials, "REGISTER", lookup, branch="b1", now=1000.0).ok
    # The same request again on the same branch: a UDP retransmission.
    assert auth.verify(credentials, "REGISTER", lookup, branch="b1", now=1000.5).ok
    # The same count on a new request: a replay.
    replay = auth.verify(credentials, "REGISTER", lookup, branch="b2", now=1001.0)
    assert replay.verdict is Verdict.FAILED and "replayed" in replay.reason
    # A higher count is fine.
    assert auth.verify(Client(auth).answer(nonce, nc="00000002"), "REGISTER", lookup,
                       branch="b3", now=1002.0).ok


def test_a_count_lower_than_one_already_seen_fails_and_other_cnonces_count_apart():
    auth, lookup = make_auth()
    nonce = nonce_of(auth.challenges(1000.0)[0])
    client = Client(auth)
    assert auth.verify(client.answer(nonce, nc="00000003"), "REGISTER", lookup, branch="b1",
                       now=1000.0).ok
    lower = auth.verify(client.answer(nonce, nc="00000002"), "REGISTER", lookup, branch="b2",
                        now=1000.5)
    assert lower.verdict is Verdict.FAILED and "replayed" in lower.reason
    # Another cnonce on the same nonce has counts of its own.
    assert auth.verify(client.answer(nonce, nc="00000001", cnonce="0badcafe"), "REGISTER",
                       lookup, branch="b3", now=1001.0).ok


def test_users_sharing_a_nonce_with_count_one_do_not_collide():
    auth, _ = make_auth()
    table = {(u, a): ha1(u, "sipsync", "pw", a) for u in ("u1", "u2") for a in Algorithm}
    lookup = lambda user, algorithm: table.get((user, algorithm))  # noqa: E731
    nonce = nonce_of(auth.challenges(1000.0)[0])
    for user in ("u1", "u2"):
        credentials = Client(auth, user=user, password="pw").answer(nonce, cnonce="6b8b4567")
        assert auth.verify(credentials, "REGISTER", lookup, branch=user, now=1000.0).ok


def test_replay_memory_is_forgotten_when_nonces_expire():
    auth, lookup = make_auth(nonce_lifetime=10.0)
    nonce = nonce_of(auth.challenges(1000.0)[0])
    auth.verify(Client(auth).answer(nonce), "REGISTER", lookup, branch="b", now=1000.0)
    assert len(auth.replays) == 1
    auth.replays.forget_expired(1012.0)
    assert len(auth.replays) == 0


def test_credentials_for_another_realm_or_algorithm_fail():
    auth, lookup = make_auth(algorithms=(Algorithm.SHA256,))
    nonce = nonce_of(auth.challenges(1000.0)[0])
    outcome = auth.verify(Client(auth).answer(nonce, Algorithm.MD5), "REGISTER", lookup,
                          branch="b", now=1000.0)
    assert outcome.verdict is Verdict.FAILED and "not offered" in outcome.reason


CREDENTIAL_SHAPES = [
    'username="alice", realm="sipsync", nonce="n1", uri="sip:sipsync", response="r", '
    'algorithm=MD5, qop=auth, nc=00000001, cnonce="cn"',
    'username="user7",realm="sipsync.test",cnonce="6b8b4567",nc=00000001,qop=auth,'
    'uri="sip:127.0.0.1:5070",nonce="0123",response="0f1e",algorithm=MD5',
    'username = "a" ,realm= "r", nonce ="n", uri="u", response="x",',
    'username="a, b", realm="r", nonce="n", uri="u", response="x"',
    'username="a\\"b", realm="r", nonce="n", uri="u", response="x"',
    'username="a\\"b\\"", realm="r", nonce="n", uri="u", response="x"',
    'username="a" realm="r", nonce="n", uri="u", response="x"',
    'username=a b, realm="r", nonce="n", uri="u", response="x"',
    'user_name="z", username="a", realm="r", nonce="n", uri="u", response="x", nc=',
    'junk, username="a", realm="r", nonce="n", uri="u", response="x", =x, "q"=1',
    'username="a", username="b", realm="r", nonce="n", uri="u", response="x"',
    'username="", realm="r", nonce="n", uri="u", response="x", opaque="o=p;q"',
]


@pytest.mark.parametrize("shape", CREDENTIAL_SHAPES)
def test_credentials_read_by_splitting_equal_those_the_parameter_scan_reads(shape):
    from protocols.sip.digest import PARAMETER
    from protocols.sip.digest_server import Credentials, parse_credentials

    params = {key.lower(): quoted.replace('\\"', '"') if quoted else plain
              for key, quoted, plain in PARAMETER.findall(shape)}
    try:
        reference = Credentials(
            params["username"], params["realm"], params["nonce"], params["uri"],
            params["response"], params.get("algorithm", "MD5"), params.get("qop"),
            params.get("nc"), params.get("cnonce"), params.get("opaque"))
    except KeyError:
        reference = None
    if shape.count('"') % 2:
        reference = None  # an unterminated quote is refused before any reading
    try:
        read = parse_credentials("Digest " + shape)
    except DigestError:
        read = None
    assert read == reference


def test_a_nonce_is_good_only_at_the_node_that_issued_it():
    # Two workers of one server share the secret; each keeps the counts of its own nonces.
    first, lookup = make_auth(node=1)
    second, _ = make_auth(node=2)
    nonce = nonce_of(first.challenges(1000.0)[0])
    credentials = Client(first).answer(nonce)
    elsewhere = second.verify(credentials, "REGISTER", lookup, branch="b1", now=1000.0)
    assert elsewhere.verdict is Verdict.STALE and "another node" in elsewhere.reason
    assert first.verify(credentials, "REGISTER", lookup, branch="b1", now=1000.0).ok


def test_a_foreign_nonce_with_a_wrong_password_fails_rather_than_going_stale():
    first, lookup = make_auth(node=1)
    second, _ = make_auth(node=2)
    nonce = nonce_of(first.challenges(1000.0)[0])
    outcome = second.verify(Client(first).answer(nonce, password="nope"), "REGISTER", lookup,
                            branch="b", now=1000.0)
    assert outcome.verdict is Verdict.FAILED


@pytest.mark.parametrize("secret_size", [0, 1, 32, 63, 64, 65, 200])
def test_nonces_are_signed_with_hmac_sha256_of_the_secret_whatever_its_length(secret_size):
    """The nonce's signature is the standard HMAC-SHA256, as the hmac module computes it, so
    nonces handed out by an earlier version, or by another node, check alike."""
    import hashlib
    import hmac
    import os

    from protocols.sip.digest_server import NonceIssuer

    secret = os.urandom(secret_size)
    issuer = NonceIssuer(secret, lifetime=300.0)
    for payload in (b"", b"x", os.urandom(20), os.urandom(150)):
        assert issuer._sign(payload) == hmac.new(secret, payload, hashlib.sha256).hexdigest()[:32]
    nonce = issuer.issue(1000.0)
    assert NonceIssuer(secret, lifetime=300.0).read(nonce) == (1000.0, 0)


def test_credentials_with_made_up_parameter_names_are_read_alike_and_kept_within_a_bound():
    from protocols.sip import digest_server

    for n in range(digest_server.PARAMETER_NAMES_REMEMBERED * 3):
        credentials = digest_server.parse_credentials(
            f'Digest username="a", realm="r", nonce="n", uri="u", response="x", X-{n}="{n}"')
        assert credentials.username == "a" and credentials.response == "x"
    assert len(digest_server._PARAMETER_NAMES) <= digest_server.PARAMETER_NAMES_REMEMBERED
