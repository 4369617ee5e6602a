"""The registrar's decisions, without sockets."""

from __future__ import annotations

import pytest

from control_server.location import Binding
from control_server.registrar import Registrar
from control_server.throttle import Throttle, ThrottlePolicy
from control_server.device_names import unnamed_device
from protocols.sip.endpoint import Endpoint
from protocols.sip.message import parse_uri

from .sip_client import answer, build

SOURCE = Endpoint("udp", "127.0.0.1", 5071)
# The device a REGISTER from a plain phone at <sip:alice@127.0.0.1:5071> binds: it names none.
PHONE = unnamed_device("<sip:alice@127.0.0.1:5071>", parse_uri("sip:alice@127.0.0.1:5071"))


def register(registrar, user="alice", password="alice-pw", *, expires="60", device=None,
             contact=None, now=1000.0, cseq=2, call_id="reg1", algorithm_index=0,
             user_agent=None, source=SOURCE):
    to = f"<sip:{user}@sipsync{';device=' + device if device else ''}>"
    contact = contact or f"<sip:{user}@127.0.0.1:5071>"
    headers = [f"Contact: {contact}"] + ([f"Expires: {expires}"] if expires is not None else [])
    headers += [f"User-Agent: {user_agent}"] if user_agent else []
    first = build("REGISTER", "sip:sipsync", user=user, to=to, headers=headers, cseq=cseq - 1,
                  call_id=call_id)
    challenge = registrar.register(first, source, now)
    assert challenge.response.status_code == 401
    value = challenge.response.headers.get("www-authenticate")[algorithm_index]
    credentials = answer(value, user=user, password=password, method="REGISTER", uri="sip:sipsync")
    second = build("REGISTER", "sip:sipsync", user=user, to=to, headers=headers + [credentials],
                   cseq=cseq, call_id=call_id)
    return registrar.register(second, source, now)


def challenged_with(registrar, *headers):
    first = build("REGISTER", "sip:sipsync", user="alice", headers=["Contact: <sip:a@h>", *headers])
    result = registrar.register(first, SOURCE, 0.0)
    assert result.response.status_code == 401
    return [c.rsplit("algorithm=", 1)[1] for c in result.response.headers.get("www-authenticate")]


def test_a_register_from_an_agent_known_to_choose_is_challenged_with_md5_then_sha256(registrar):
    assert challenged_with(registrar, "User-Agent: sipsync-peer/0.1") == ["MD5", "SHA-256"]


@pytest.mark.parametrize("agent", [None, "baresip v1.0.0 (x86_64/linux)", "sipp-test"])
def test_a_register_from_any_other_agent_is_challenged_with_md5_alone(registrar, agent):
    assert challenged_with(registrar, *([f"User-Agent: {agent}"] if agent else [])) == ["MD5"]


def test_the_right_password_binds_the_device_of_the_contact_for_60_seconds(registrar, location):
    result = register(registrar, expires=None)
    assert result.response.status_code == 200
    binding = location.get("alice", PHONE)
    assert binding is result.bound and binding.expires_at == 1060.0
    assert binding.source == SOURCE
    assert result.response.headers.get_first("contact").endswith(";expires=60")


def test_bindings_hold_one_copy_of_the_user_agent_and_source_they_repeat(registrar,
                                                                         directory):
    # Each request brings its own equal objects, as the transport and the parser make them.
    bound = [register(registrar, user, f"{user}-pw", user_agent="phone/1.0",
                      source=Endpoint("udp", "".join(["127.0.0.", "1"]), int("5071"))).bound
             for user in ("alice", "bob")]
    assert bound[0].user_agent == "phone/1.0" and bound[0].source == SOURCE
    assert bound[0].user_agent is bound[1].user_agent and bound[0].source is bound[1].source
    assert bound[0].user is directory.accounts["alice"].name


def test_the_throttles_trust_holds_the_bindings_own_name_and_address(auth, directory,
                                                                      location):
    throttle = Throttle(ThrottlePolicy())
    registrar = Registrar(auth, directory, location, throttle=throttle)
    binding = register(registrar, source=Endpoint("udp", "".join(["192.0.2.", "7"]), 5060)).bound
    ((host, user),) = throttle.trusted
    assert host is binding.source.host and user is binding.user
    assert user is directory.accounts["alice"].name


def test_a_refresh_keeps_the_strings_of_the_binding_it_replaces(registrar):
    first = register(registrar, call_id="reg1", cseq=2).bound
    again = register(registrar, call_id="reg1", cseq=4, now=1030.0).bound
    assert again is not first and again.expires_at == 1090.0
    for field in ("user", "device", "contact", "call_id"):
        assert getattr(again, field) is getattr(first, field)


def test_sha256_credentials_work_too(registrar):
    result = register(registrar, algorithm_index=1, user_agent="sipsync-peer/0.1")
    assert result.response.status_code == 200


def test_register_with_wrong_password_gets_401_again(registrar, location):
    result = register(registrar, password="wrong")
    assert result.response.status_code == 401 and result.auth_failed
    assert len(location) == 0


def test_a_named_device_binds_beside_the_others(registrar, location):
    register(registrar, device="laptop")
    register(registrar, device="phone", call_id="reg2")
    assert {b.device for b in location.devices_of("alice")} == {"laptop", "phone"}


def test_a_device_can_be_named_by_sip_instance(registrar, location):
    register(registrar, contact='<sip:alice@127.0.0.1:5071>;+sip.instance="<urn:sipsync:device:tab>"')
    assert location.get("alice", "tab") is not None


def test_a_new_device_is_created_on_its_first_registration(registrar, directory):
    result = register(registrar, device="watch")
    assert result.new_device and ("alice", "watch") in directory.devices
    assert not register(registrar, device="watch", call_id="r9").new_device


def test_too_short_an_expiry_gets_423_with_min_expires(registrar):
    result = register(registrar, expires="5")
    assert result.response.status_code == 423
    assert result.response.headers.get_first("min-expires") == "20"


def test_too_long_an_expiry_is_cut_to_the_maximum(registrar, location):
    register(registrar, expires="999999")
    assert location.get("alice", PHONE).expires_at == 1000.0 + 3600


def test_expires_zero_unregisters(registrar, location):
    register(registrar)
    result = register(registrar, expires="0", cseq=4)
    assert result.response.status_code == 200 and len(location) == 0
    assert [b.device for b in result.unbound] == [PHONE]


def test_an_unknown_user_gets_the_same_401_as_a_wrong_password(registrar):
    result = register(registrar, user="mallory", password="x")
    assert result.response.status_code == 401 and result.auth_failed


def test_credentials_for_another_user_are_forbidden(registrar):
    first = build("REGISTER", "sip:sipsync", user="alice", headers=["Contact: <sip:a@h>"])
    challenge = registrar.register(first, SOURCE, 0.0).response.headers.get("www-authenticate")[0]
    creds = answer(challenge, user="bob", password="bob-pw", method="REGISTER", uri="sip:sipsync")
    second = build("REGISTER", "sip:sipsync", user="alice", headers=["Contact: <sip:a@h>", creds])
    assert registrar.register(second, SOURCE, 0.0).response.status_code == 403


def test_a_disabled_user_is_forbidden(registrar, directory):
    from control_server.directory import Account
    old = directory.accounts["alice"]
    directory.accounts["alice"] = Account(old.ha1_md5, old.ha1_sha256, True)
    assert register(registrar).response.status_code == 403


def test_a_binding_not_refreshed_is_dropped_after_the_grace(registrar, location):
    register(registrar)
    assert location.expire(1069.0) == []
    gone = location.expire(1071.0)
    assert [b.key for b in gone] == [("alice", PHONE)] and len(location) == 0


def test_a_refreshed_binding_is_not_dropped_at_its_old_expiry(registrar, location):
    register(registrar)
    register(registrar, now=1050.0, cseq=4)
    assert location.expire(1075.0) == []
    assert location.get("alice", PHONE).registered_at == 1000.0


def test_an_out_of_order_register_is_refused(registrar):
    register(registrar, cseq=10)
    assert register(registrar, cseq=5).response.status_code == 500


def test_a_disabled_device_is_forbidden_after_authentication(registrar, directory, location):
    directory.disabled_devices.add(("alice", "laptop"))
    result = register(registrar, device="laptop")
    assert (result.response.status_code, result.response.reason_phrase) == (403, "Device disabled")
    assert location.get("alice", "laptop") is None and not result.auth_failed


def test_a_disabled_device_with_a_wrong_password_is_challenged_not_told_it_is_disabled(
        registrar, directory):
    directory.disabled_devices.add(("alice", "laptop"))
    assert register(registrar, device="laptop", password="wrong").response.status_code == 401


def test_other_devices_of_the_user_still_register_beside_a_disabled_one(registrar, directory,
                                                                         location):
    directory.disabled_devices.add(("alice", "laptop"))
    assert register(registrar, device="phone").response.status_code == 200
    assert location.get("alice", "phone") is not None


# -- with the throttle ----------------------------------------------------------------------------

def throttled_registrar(auth, directory, location):
    policy = ThrottlePolicy(ban_after=4, slow_after=1, max_delay=4.0, ban_seconds=300.0)
    return Registrar(auth, directory, location, throttle=Throttle(policy))


def register_from(registrar, host, password, now, call_id):
    source = Endpoint("udp", host, 5071)
    first = build("REGISTER", "sip:sipsync", user="alice", headers=["Contact: <sip:a@h>"],
                  call_id=call_id)
    value = registrar.register(first, source, now).response.headers.get("www-authenticate")[0]
    credentials = answer(value, user="alice", password=password, method="REGISTER",
                         uri="sip:sipsync")
    second = build("REGISTER", "sip:sipsync", user="alice", headers=["Contact: <sip:a@h>",
                                                                     credentials],
                   cseq=2, call_id=call_id)
    return registrar.register(second, source, now)


def test_wrong_passwords_past_the_slow_point_carry_a_growing_delay(auth, directory, location):
    registrar = throttled_registrar(auth, directory, location)
    results = [register_from(registrar, "192.0.2.66", "bad", 1.0 + i, f"g{i}") for i in range(3)]
    assert [r.response.status_code for r in results] == [401, 401, 401]
    assert [r.penalty.delay for r in results] == [0.0, 0.5, 1.0]


def test_the_banning_guess_and_later_strangers_get_no_answer_while_a_known_device_binds(
        auth, directory, location):
    registrar = throttled_registrar(auth, directory, location)
    assert register_from(registrar, "198.51.100.7", "alice-pw", 0.0, "d1").bound is not None
    results = [register_from(registrar, "192.0.2.66", "bad", 1.0 + i, f"g{i}") for i in range(4)]
    assert results[-1].response is None and results[-1].auth_failed
    stranger = register_from(registrar, "203.0.113.9", "alice-pw", 10.0, "s1")
    assert stranger.response is None and stranger.bound is None
    known = register_from(registrar, "198.51.100.7", "alice-pw", 10.0, "d2")
    assert known.response.status_code == 200


def test_plain_phones_of_one_user_get_a_binding_each_named_stably_from_their_contact(
        registrar, location):
    register(registrar, contact="<sip:alice@192.0.2.1:5060>")
    register(registrar, contact="<sip:alice@192.0.2.2:5060>", call_id="reg2")
    register(registrar, contact="<sip:alice@192.0.2.1:5060>", call_id="reg3", now=1030.0)
    devices = sorted(b.device for b in location.devices_of("alice"))
    assert len(devices) == 2 and all(d.startswith("contact-") for d in devices)
    assert {b.contact for b in location.devices_of("alice")} == {
        "sip:alice@192.0.2.1:5060", "sip:alice@192.0.2.2:5060"}


def test_a_phone_with_an_instance_id_keeps_its_device_when_its_address_changes(
        registrar, location):
    instance = ';+sip.instance="<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"'
    register(registrar, contact="<sip:alice@192.0.2.1:5060>" + instance)
    register(registrar, contact="<sip:alice@192.0.2.9:5062>" + instance, call_id="reg2")
    [binding] = location.devices_of("alice")
    assert binding.device.startswith("instance-") and binding.contact == "sip:alice@192.0.2.9:5062"


def test_unregistering_one_plain_phone_leaves_the_other_bound(registrar, location):
    register(registrar, contact="<sip:alice@192.0.2.1:5060>")
    register(registrar, contact="<sip:alice@192.0.2.2:5060>", call_id="reg2")
    register(registrar, contact="<sip:alice@192.0.2.1:5060>", expires="0", cseq=4)
    assert [b.contact for b in location.devices_of("alice")] == ["sip:alice@192.0.2.2:5060"]


def test_a_register_for_an_address_of_record_that_is_not_sip_gets_400(registrar):
    request = build("REGISTER", "sip:sipsync", user="alice", to="<tel:+15550100>",
                    headers=["Contact: <sip:a@h>"])
    assert registrar.register(request, SOURCE, 0.0).response.status_code == 400


def test_a_binding_from_the_store_holds_the_objects_the_registrars_own_bindings_share(
        registrar, directory, location):
    """Read back from a store (or heard from another server), every field is a fresh object;
    adopted, the binding keeps the directory's names and the shared source and User-Agent."""
    register(registrar, user_agent="phone-ua/1.0")
    own = location.get("alice", PHONE)
    directory.devices.add(("alice", "tablet"))

    def fresh(text: str) -> str:
        return "".join(list(text))  # equal, another object

    loaded = Binding(fresh("alice"), fresh("tablet"), "sip:alice@192.0.2.7:5060",
                     Endpoint(fresh("udp"), fresh("127.0.0.1"), 5071), fresh("phone-ua/1.0"),
                     1.0, 2.0, 62.0, "c9", 3, node=fresh("server-b"))
    heard = Binding(fresh("alice"), fresh("tablet"), "sip:alice@192.0.2.7:5060",
                    Endpoint(fresh("udp"), fresh("127.0.0.1"), 5071), fresh("phone-ua/1.0"),
                    1.0, 2.0, 62.0, "c9", 3, node=fresh("server-b"))
    adopted, again = registrar.adopt(loaded), registrar.adopt(heard)
    assert adopted == loaded
    assert adopted.user is own.user is directory.accounts["alice"].name
    assert adopted.device is next(n for n in directory.devices.names_of("alice") if n == "tablet")
    assert adopted.source is own.source and adopted.user_agent is own.user_agent
    assert again.node is adopted.node and again.source is adopted.source
