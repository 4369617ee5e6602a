"""Admission decisions as tables, without a proxy or a transaction: who proves who they are
(authenticate) and which devices a proven caller may reach (authorize)."""

from __future__ import annotations

import pytest

from control_server.admission import Refusal, authenticate, authorize
from control_server.directory import Account
from control_server.location import Binding
from control_server.throttle import Throttle, ThrottlePolicy
from protocols.sip.endpoint import Endpoint

from .sip_client import answer, build

TARGET = "sip:alice@sipsync;device=phone"


def bind(location, user, device, port):
    location.put(Binding(user, device, f"sip:{user}@127.0.0.1:{port}",
                         Endpoint("udp", "127.0.0.1", port), "ua", 0.0, 0.0, 9e9, "c", 1))


def invite_with(credentials_header=None, *, caller="alice"):
    headers = [credentials_header] if credentials_header else []
    return build("INVITE", TARGET, user=caller, headers=headers, cseq=2)


def credentials(auth, now, *, user="alice", password="alice-pw"):
    challenge = auth.challenges(now)[0]
    return answer(challenge, user=user, password=password, method="INVITE", uri="sip:x",
                  header="Proxy-Authorization")


# -- authenticate ---------------------------------------------------------------------------------

def test_the_right_password_admits_the_caller(auth, directory):
    request = invite_with(credentials(auth, 0.0))
    assert authenticate(request, "alice", auth, directory, 0.0) is None


@pytest.mark.parametrize("header, status, reason", [
    (None, 407, None),
    ("Proxy-Authorization: Basic YWxpY2U6cHc=", 407, None),
    ("Proxy-Authorization: Digest garbage", 407, None),
])
def test_an_invite_without_readable_digest_credentials_is_challenged(
        auth, directory, header, status, reason):
    refusal = authenticate(invite_with(header), "alice", auth, directory, 0.0)
    assert (refusal.status, refusal.reason) == (status, reason)
    # A client naming no user agent known to choose among challenges gets the first alone.
    assert [name for name, _ in refusal.headers] == ["Proxy-Authenticate"]
    assert all("stale" not in value for _, value in refusal.headers)


def test_a_wrong_password_is_challenged_again_without_stale(auth, directory):
    refusal = authenticate(invite_with(credentials(auth, 0.0, password="bad")), "alice", auth,
                           directory, 0.0)
    assert refusal.status == 407
    assert all("stale" not in value for _, value in refusal.headers)


def test_an_expired_nonce_with_the_right_password_is_challenged_with_stale_true(auth, directory):
    request = invite_with(credentials(auth, 0.0))
    later = auth.nonces.lifetime + 1.0
    refusal = authenticate(request, "alice", auth, directory, later)
    assert refusal.status == 407
    assert refusal.headers and all(value.endswith("stale=true") for _, value in refusal.headers)


def test_credentials_of_another_user_than_the_caller_get_403(auth, directory):
    request = invite_with(credentials(auth, 0.0, user="bob", password="bob-pw"))
    assert authenticate(request, "alice", auth, directory, 0.0) == Refusal(
        403, "Credentials do not match the caller")


def test_a_disabled_account_with_the_right_password_gets_403(auth, directory):
    account = directory.accounts["alice"]
    directory.accounts["alice"] = Account(account.ha1_md5, account.ha1_sha256, True)
    request = invite_with(credentials(auth, 0.0))
    assert authenticate(request, "alice", auth, directory, 0.0) == Refusal(403, "Account disabled")


def test_an_unknown_caller_is_challenged_like_a_wrong_password(auth, directory):
    request = invite_with(credentials(auth, 0.0, user="ghost", password="pw"), caller="ghost")
    assert authenticate(request, "ghost", auth, directory, 0.0).status == 407


# -- authorize ------------------------------------------------------------------------------------

@pytest.fixture
def world(directory, location):
    """alice owns laptop, phone (online), tablet (online); bob owns desk (online), nas (offline);
    carol owns nothing."""
    directory.devices |= {("alice", "laptop"), ("alice", "phone"), ("alice", "tablet"),
                          ("bob", "desk"), ("bob", "nas")}
    bind(location, "alice", "laptop", 6000)
    bind(location, "alice", "phone", 6001)
    bind(location, "alice", "tablet", 6002)
    bind(location, "bob", "desk", 6003)
    return directory, location


def reached(outcome):
    """The devices an authorization reaches, or the refusal."""
    if isinstance(outcome, Refusal):
        return outcome
    return sorted(binding.key for binding in outcome)


ALICE_LAPTOP = ("alice", "laptop")
BOB_DESK = ("bob", "desk")


@pytest.mark.parametrize("caller, user, device, shares, disabled, expected", [
    # one device of one's own
    (ALICE_LAPTOP, "alice", "phone", {}, set(), [("alice", "phone")]),
    (ALICE_LAPTOP, "alice", "ghost", {}, set(), Refusal(404, "No such device")),
    (ALICE_LAPTOP, "nobody", "phone", {}, set(),
     Refusal(403, "Not allowed to sync with this device")),
    (ALICE_LAPTOP, "alice", "phone", {}, {("alice", "phone")}, Refusal(403, "Device disabled")),
    (ALICE_LAPTOP, "alice", "phone", {}, {ALICE_LAPTOP}, Refusal(403, "Calling device disabled")),
    # another user's device: only through a share, and a stranger does not learn it is disabled
    (ALICE_LAPTOP, "bob", "desk", {}, set(),
     Refusal(403, "Not allowed to sync with this device")),
    (ALICE_LAPTOP, "bob", "desk", {BOB_DESK: {"alice"}}, set(), [BOB_DESK]),
    (ALICE_LAPTOP, "bob", "desk", {BOB_DESK: {"carol"}}, set(),
     Refusal(403, "Not allowed to sync with this device")),
    (ALICE_LAPTOP, "bob", "desk", {}, {BOB_DESK},
     Refusal(403, "Not allowed to sync with this device")),
    (ALICE_LAPTOP, "bob", "desk", {BOB_DESK: {"alice"}}, {BOB_DESK},
     Refusal(403, "Device disabled")),
    (ALICE_LAPTOP, "bob", "nas", {("bob", "nas"): {"alice"}}, set(),
     Refusal(480, "Device offline")),
    # every device of a user: the caller itself and disabled devices left out
    (ALICE_LAPTOP, "alice", None, {}, set(), [("alice", "phone"), ("alice", "tablet")]),
    (ALICE_LAPTOP, "alice", None, {}, {("alice", "phone")}, [("alice", "tablet")]),
    (ALICE_LAPTOP, "alice", None, {}, {("alice", "phone"), ("alice", "tablet")},
     Refusal(480, "No device of this user is online")),
    (ALICE_LAPTOP, "bob", None, {}, set(), Refusal(403, "Not allowed to sync with this user")),
    (ALICE_LAPTOP, "bob", None, {BOB_DESK: {"alice"}}, set(), [BOB_DESK]),
    (ALICE_LAPTOP, "carol", None, {}, set(), Refusal(403, "Not allowed to sync with this user")),
    (BOB_DESK, "bob", None, {}, set(), Refusal(480, "No device of this user is online")),
])
def test_authorization_reaches_the_devices_the_caller_may_sync_with(
        world, caller, user, device, shares, disabled, expected):
    directory, location = world
    directory.shares.update(shares)
    directory.disabled_devices |= disabled
    assert reached(authorize(caller, user, device, directory, location)) == expected


# -- what a caller learns about others ------------------------------------------------------------

HIDDEN_DEVICE = Refusal(403, "Not allowed to sync with this device")
HIDDEN_USER = Refusal(403, "Not allowed to sync with this user")


@pytest.mark.parametrize("user, device, expected", [
    ("nobody", "phone", HIDDEN_DEVICE),  # no such user
    ("carol", "phone", HIDDEN_DEVICE),  # a user with no device at all
    ("bob", "ghost", HIDDEN_DEVICE),  # no such device of a real user
    ("bob", "desk", HIDDEN_DEVICE),  # online, not shared
    ("bob", "nas", HIDDEN_DEVICE),  # offline, not shared
    ("bob", "attic", HIDDEN_DEVICE),  # disabled, not shared
    ("nobody", None, HIDDEN_USER),
    ("carol", None, HIDDEN_USER),  # nothing online
    ("bob", None, HIDDEN_USER),  # online devices, none shared
])
def test_a_caller_gets_one_answer_for_whatever_is_not_shared_with_it(world, user, device, expected):
    directory, location = world
    directory.devices |= {("bob", "nas"), ("bob", "attic")}
    directory.disabled_devices.add(("bob", "attic"))
    directory.shares[("dave", "box")] = {"alice"}  # a share from someone else changes nothing
    assert authorize(ALICE_LAPTOP, user, device, directory, location) == expected


@pytest.mark.parametrize("device, expected", [
    ("nas", Refusal(480, "Device offline")),
    ("attic", Refusal(403, "Device disabled")),
    (None, Refusal(480, "No device of this user is online")),
])
def test_a_share_lets_the_caller_learn_about_that_user(world, device, expected):
    directory, location = world
    location.remove("bob", "desk")
    directory.devices |= {("bob", "nas"), ("bob", "attic")}
    directory.disabled_devices.add(("bob", "attic"))
    directory.shares.update({("bob", "nas"): {"alice"}, ("bob", "attic"): {"alice"}})
    assert authorize(ALICE_LAPTOP, "bob", device, directory, location) == expected


def test_a_banned_caller_from_a_stranger_address_gets_a_late_407_with_credentials_unread(
        auth, directory):
    throttle = Throttle(ThrottlePolicy(ban_after=2, max_delay=4.0))
    for now in (1.0, 2.0):
        refusal = authenticate(invite_with(credentials(auth, now, password="bad")), "alice",
                               auth, directory, now, source="192.0.2.66", throttle=throttle)
        assert refusal.status == 407
    assert refusal.penalty.delay == 4.0  # the banning guess: as late as can be
    right = invite_with(credentials(auth, 3.0))
    refusal = authenticate(right, "alice", auth, directory, 3.0, source="203.0.113.9",
                           throttle=throttle)
    assert (refusal.status, refusal.penalty.delay) == (407, 4.0)
