"""What the server refuses before the registrar or the proxy sees a request, without sockets."""

from __future__ import annotations

from control_server.inspection import ALLOW, inspect, method_rejection

from .sip_client import build


def test_an_unknown_method_gets_501_and_a_known_one_not_served_405():
    assert method_rejection(build("FROBNICATE", "sip:sipsync", user="a")).status == 501
    rejection = method_rejection(build("MESSAGE", "sip:sipsync", user="a"))
    assert rejection.status == 405 and dict(rejection.headers)["Allow"] == ALLOW


def test_a_405_toward_a_user_does_not_offer_options():
    rejection = method_rejection(build("OPTIONS", "sip:bob@sipsync", user="a"))
    assert rejection.status == 405 and "OPTIONS" not in dict(rejection.headers)["Allow"]


def test_a_request_uri_that_is_not_sip_gets_416():
    assert inspect(build("OPTIONS", "tel:+15550100", user="a"), answered_here=True).status == 416
    assert inspect(build("INVITE", "sips:bob@sipsync", user="a"), answered_here=False) is None


def test_an_unsupported_require_gets_420_naming_it_where_the_server_answers():
    request = build("REGISTER", "sip:sipsync", user="a", headers=["Require: foo, bar"])
    rejection = inspect(request, answered_here=True)
    assert rejection.status == 420 and rejection.headers == (("Unsupported", "foo, bar"),)


def test_require_of_a_proxied_request_is_for_the_device_but_proxy_require_is_for_us():
    invite = build("INVITE", "sip:bob@sipsync", user="a", headers=["Require: 100rel"])
    assert inspect(invite, answered_here=False) is None
    invite = build("INVITE", "sip:bob@sipsync", user="a", headers=["Proxy-Require: sec-agree"])
    assert inspect(invite, answered_here=False).headers == (("Unsupported", "sec-agree"),)


def test_ack_and_cancel_are_never_refused_for_extensions():
    for method in ("ACK", "CANCEL"):
        request = build(method, "sip:bob@sipsync", user="a", headers=["Proxy-Require: x"])
        assert inspect(request, answered_here=False) is None
