"""The live schedule, on a fake clock: which triggers start which sessions, and when."""

import random

import pytest

from peer.live_schedule import LinkKey, LiveSchedule, PartnerDirection, Timing, Trigger

TIMING = Timing(quiet=0.1, max_delay=0.5, retry_first=1.0, retry_max=300.0,
                glare_short=0.3, glare_long=2.1)
PHOTOS = LinkKey("photos", "alice/phone")


def schedule(direction=PartnerDirection.TWO_WAY, online=True, me="alice/laptop"):
    live = LiveSchedule(me, TIMING, random.Random(7))
    live.add("photos", "alice/phone", direction, online=online, now=0.0)
    return live


def test_a_local_change_starts_one_session_once_writes_pause():
    live = schedule()
    live.local_change("photos", 1.0)
    assert live.due(1.05) == []
    assert live.next_deadline() == pytest.approx(1.1)
    starts = live.due(1.1)
    assert [(s.key, s.trigger) for s in starts] == [(PHOTOS, Trigger.LOCAL_CHANGE)]
    assert live.due(5.0) == []  # running: nothing more until it ends


def test_a_burst_of_a_thousand_writes_becomes_one_session():
    live = schedule()
    sessions = 0
    for i in range(1000):
        now = 1.0 + i * 0.0004  # 1,000 files written in 0.4 s
        live.local_change("photos", now)
        sessions += len(live.due(now))
    sessions += len(live.due(1.4 + TIMING.quiet))
    assert sessions == 1


def test_writes_that_never_pause_still_sync_within_the_maximum_delay():
    live = schedule()
    started_at = None
    for i in range(100):
        now = 1.0 + i * 0.05  # a write every 50 ms for 5 s: never quiet for 100 ms
        live.local_change("photos", now)
        if live.due(now):
            started_at = now
            break
    assert started_at == pytest.approx(1.5)


def test_a_change_during_a_session_starts_another_after_it():
    live = schedule()
    live.local_change("photos", 1.0)
    assert live.due(1.2)
    live.local_change("photos", 1.3)
    assert live.due(2.0) == []
    live.ended(PHOTOS, ok=True, now=2.5)
    assert [s.trigger for s in live.due(2.5)] == [Trigger.AFTER_SESSION]


def test_nothing_starts_while_the_partner_is_offline_and_the_change_waits_for_it():
    live = schedule(online=False)
    live.local_change("photos", 1.0)
    assert live.due(100.0) == []
    assert live.next_deadline() is None  # no polling while there is nothing to do
    live.partner_presence("alice/phone", True, 200.0)
    assert [s.key for s in live.due(200.0)] == [PHOTOS]


def test_a_partner_coming_online_and_the_daemon_start_each_ask_for_a_check():
    live = schedule(online=False)
    live.partner_presence("alice/phone", True, 5.0)
    assert [s.trigger for s in live.due(5.0)] == [Trigger.PARTNER_ONLINE]
    live.nothing_to_do(PHOTOS, 5.0)
    live.started(6.0)
    assert [s.trigger for s in live.due(6.0)] == [Trigger.START]


def test_nothing_to_do_ends_the_link_quietly():
    live = schedule()
    live.started(0.0)
    assert live.due(0.0)
    live.nothing_to_do(PHOTOS, 0.1)
    assert live.due(100.0) == [] and live.next_deadline() is None
    assert live.links[PHOTOS].last_synced_at == 0.1


def test_a_failed_session_is_retried_with_growing_back_off_for_ever():
    live = schedule()
    live.started(0.0)
    now, waits = 0.0, []
    for _ in range(12):
        assert live.due(now)
        live.ended(PHOTOS, ok=False, now=now, reason="connection refused")
        deadline = live.next_deadline()
        waits.append(deadline - now)
        assert live.due(deadline - 0.001) == []
        now = deadline
    assert waits[0] <= 1.0 and waits[1] <= 2.0 and waits[2] <= 4.0
    assert waits[-1] <= 300.0 and waits[-1] >= 150.0  # capped at 5 min, with jitter
    assert live.links[PHOTOS].last_error == "connection refused"
    assert live.due(now)
    live.ended(PHOTOS, ok=True, now=now)
    assert live.links[PHOTOS].last_error is None and live.links[PHOTOS].failures == 0


def test_a_partner_coming_back_resets_the_back_off():
    live = schedule()
    live.started(0.0)
    for now in (0.0, 1.0, 3.0, 7.0, 15.0):
        live.due(now)
        live.ended(PHOTOS, ok=False, now=now, reason="gone")
    live.partner_presence("alice/phone", False, 16.0)
    live.partner_presence("alice/phone", True, 17.0)
    assert live.due(17.0)


def test_glare_makes_the_lower_name_retry_first():
    lower = schedule(me="alice/laptop")   # "alice/laptop" < "alice/phone"
    higher = LiveSchedule("alice/phone", TIMING, random.Random(7))
    higher.add("photos", "alice/laptop", PartnerDirection.TWO_WAY, online=True)
    for side, partner in ((lower, "alice/phone"), (higher, "alice/laptop")):
        side.local_change("photos", 1.0)
        assert side.due(1.2)
        side.ended(LinkKey("photos", partner), ok=False, now=1.2, glare=True)
    assert lower.next_deadline() < 1.2 + 0.61 < 1.2 + 2.1 <= higher.next_deadline()
    assert lower.links[PHOTOS].failures == 0  # glare is not a failure


def test_a_session_the_partner_starts_holds_ours_back_and_a_check_follows():
    live = schedule()
    live.local_change("photos", 1.0)
    live.answering(PHOTOS, busy=True, now=1.05)
    assert live.due(5.0) == []
    live.answering(PHOTOS, busy=False, now=5.0)
    # The daemon's pending check then finds the two-way session carried our change.
    starts = live.due(5.0)
    assert [s.trigger for s in starts] == [Trigger.AFTER_SESSION]
    live.nothing_to_do(PHOTOS, 5.0)
    assert live.due(50.0) == []


def test_applying_the_partners_changes_starts_nothing_back():
    live = schedule()
    live.answering(PHOTOS, busy=True, now=1.0)
    live.answering(PHOTOS, busy=False, now=2.0)
    assert live.due(10.0) == [] and live.next_deadline() is None


def test_receive_only_never_starts_a_session_and_send_only_does():
    receive = schedule(PartnerDirection.RECEIVE_ONLY)
    receive.started(0.0)
    receive.local_change("photos", 1.0)
    receive.partner_presence("alice/phone", False, 2.0)
    receive.partner_presence("alice/phone", True, 3.0)
    assert receive.due(100.0) == []
    send = schedule(PartnerDirection.SEND_ONLY)
    send.local_change("photos", 1.0)
    assert send.due(2.0)


def test_changes_to_one_dataset_leave_the_others_alone():
    live = schedule()
    live.add("contacts", "alice/phone", PartnerDirection.TWO_WAY, online=True)
    live.local_change("contacts", 1.0)
    assert [s.key.dataset for s in live.due(2.0)] == ["contacts"]


def test_one_change_reaches_every_partner_of_the_dataset():
    live = schedule()
    live.add("photos", "bob/tablet", PartnerDirection.TWO_WAY, online=True)
    live.local_change("photos", 1.0)
    assert sorted(s.key.partner for s in live.due(2.0)) == ["alice/phone", "bob/tablet"]
