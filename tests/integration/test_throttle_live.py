"""The throttle in the real server, with short settings: a guessing attack from one address is
slowed and then refused while a device that registered before keeps working, the ban ends,
floods are cut off except from an allowed balancer, and INVITEs tell nothing about strangers."""

from __future__ import annotations

import pytest

from control_server.store import DirectoryStore

from ..waiting import wait_until
from .conftest import ServerProcess
from .sip_phone import SipPhone

ATTACKER, PHONE, NEW_DEVICE, BYSTANDER = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"
SHORT = ("--ban-after-failures", "6", "--slow-after-failures", "2", "--failure-window", "30",
         "--ban-seconds", "4")


@pytest.fixture
def throttled(data_dir):
    store = DirectoryStore.open(data_dir)
    for name in ("alice", "bob", "carol"):
        store.add_user(name, f"{name}-pw")
    store.add_device("bob", "desk")
    store.add_device("carol", "nas")
    store.add_share("carol", "nas", "alice")
    store.close()
    started = []

    def start(*options: str) -> ServerProcess:
        started.append(ServerProcess(data_dir, *options).start())
        return started[-1]

    yield start
    for process in started:
        process.stop()


def test_a_guessing_attack_is_slowed_then_refused_while_a_registered_device_keeps_working(
        throttled):
    server = throttled(*SHORT)
    with SipPhone(PHONE, server.port) as phone, SipPhone(ATTACKER, server.port) as attacker:
        assert phone.register("alice", "alice-pw").status == 200

        guesses = [attacker.register("alice", f"guess{i}", timeout=6.0) for i in range(5)]
        assert [g.status for g in guesses] == [401] * 5
        assert all(g.seconds < 0.5 for g in guesses[:2])  # the first answers come at once
        # Then each comes later, held 0.5, 1 and 2 s: never sooner, however loaded the machine.
        assert [g.seconds >= delay for g, delay in zip(guesses[2:], (0.5, 1.0, 2.0))] == [True] * 3
        # The sixth starts the ban: from then on there are no answers.
        assert attacker.register("alice", "guess5", timeout=1.0).status is None

        # Banned: not even the right password gets an answer from the attacker's address.
        assert attacker.register("alice", "alice-pw", timeout=1.0).status is None
        assert attacker.options().status is None
        # The device that authenticated before still registers; a new address for alice does
        # not (the user is banned too), while another user is untouched.
        assert phone.register("alice", "alice-pw").status == 200
        with SipPhone(NEW_DEVICE, server.port) as newcomer:
            assert newcomer.register("alice", "alice-pw", timeout=1.0).status is None
            assert newcomer.register("bob", "bob-pw").status == 200

    logs = server.logs()
    assert "banned address 127.0.0.2 for 4 s: 6 failed authentications in 30 s" in logs
    assert "banned user alice for 4 s" in logs
    # One line for the run of guesses, not one per guess.
    assert logs.count("REGISTER alice from udp:127.0.0.2") == 1


def test_a_ban_ends_after_its_period(throttled):
    server = throttled(*SHORT)
    with SipPhone(ATTACKER, server.port) as attacker:
        for i in range(5):
            attacker.register("alice", f"guess{i}", timeout=6.0)
        assert attacker.register("alice", "guess5", timeout=0.5).status is None
        assert attacker.options().status is None
        # Polled, not slept: answered again once the 4 s are over.
        wait_until(lambda: attacker.options().status == 200, what="the ban to end", timeout=10)
        assert attacker.register("alice", "alice-pw").status == 200


def test_a_flood_from_one_address_is_cut_off_and_others_still_get_answers(throttled):
    server = throttled("--flood-requests", "40", "--flood-window", "5")
    with SipPhone(ATTACKER, server.port) as flooder, SipPhone(BYSTANDER, server.port) as other:
        for _ in range(100):
            flooder.send_options()
        assert flooder.answers_waiting() == 40
        assert flooder.options().status is None
        assert other.options().status == 200
    assert "banned address 127.0.0.2 for 300 s: 41 requests in 5 s" in server.logs()


def test_an_allowed_load_balancer_is_never_cut_off(throttled):
    server = throttled("--flood-requests", "40", "--throttle-allow", ATTACKER)
    with SipPhone(ATTACKER, server.port) as balancer:
        for _ in range(100):
            balancer.send_options()
        assert balancer.answers_waiting() == 100


def test_an_invite_answers_alike_for_unknown_and_unshared_users(throttled):
    server = throttled()
    with SipPhone(PHONE, server.port) as phone:
        answers = {target: phone.invite("alice", "alice-pw", target)
                   for target in ("nobody", "bob", "nobody;device=desk", "bob;device=desk",
                                  "bob;device=ghost", "carol;device=nas", "alice;device=ghost")}
    seen = {target: (a.status, a.reason) for target, a in answers.items()}
    assert seen == {
        "nobody": (403, "Not allowed to sync with this user"),
        "bob": (403, "Not allowed to sync with this user"),
        "nobody;device=desk": (403, "Not allowed to sync with this device"),
        "bob;device=desk": (403, "Not allowed to sync with this device"),
        "bob;device=ghost": (403, "Not allowed to sync with this device"),
        # Where a share exists, or the device is one's own, the answer says what is wrong.
        "carol;device=nas": (480, "Device offline"),
        "alice;device=ghost": (404, "No such device"),
    }
