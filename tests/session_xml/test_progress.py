import pytest

from session_xml import (
    InvalidValue,
    MalformedBody,
    Phase,
    ProgressReport,
    build_progress,
    parse_descriptor,
    parse_progress,
)
from tests.session_xml.examples import PROGRESS, with_text, without

PROGRESS_BODY = build_progress(PROGRESS)


@pytest.mark.parametrize(
    "report",
    [
        PROGRESS,
        ProgressReport("s1", Phase.CONNECTING),
        ProgressReport("s1", Phase.APPLYING, records_done=7, records_total=120),
        ProgressReport("s1", Phase.DONE, bytes_done=2**64 - 1, bytes_total=2**64 - 1),
        ProgressReport("s1", Phase.FAILED, bytes_done=5, error="fingerprint mismatch\n  (pinned AB:CD)\r"),
    ],
    ids=["delta", "connecting", "applying", "done-huge", "failed"],
)
def test_a_progress_report_parses_back_from_its_body_equal(report):
    body = build_progress(report)
    assert parse_progress(body) == report
    assert build_progress(parse_progress(body)) == body


def test_an_unknown_total_is_left_out_of_the_body():
    body = build_progress(ProgressReport("s1", Phase.CONNECTING))
    assert b"Total" not in body
    assert b"<bytesDone>0</bytesDone>" in body


def test_a_failed_report_needs_a_reason():
    with pytest.raises(InvalidValue, match="error"):
        ProgressReport("s1", Phase.FAILED)


def test_only_a_failed_report_has_an_error():
    with pytest.raises(InvalidValue, match="only a failed session"):
        ProgressReport("s1", Phase.DONE, error="all good")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"bytes_done": -1}, "bytesDone"),
        ({"bytes_done": 2**64}, "bytesDone"),
        ({"records_total": 1.5}, "recordsTotal"),
        ({"bytes_done": 5000}, "bytesDone"),  # more than the total of 4096
        ({"phase": "paused"}, "phase"),
        ({"session_id": "a b"}, "sessionId"),
        ({"phase": "failed", "error": "x" * 1025}, "error"),
        ({"phase": "failed", "error": "bell \x07"}, "error"),
    ],
)
def test_a_bad_progress_value_is_refused_naming_the_field(changes, field):
    with pytest.raises(InvalidValue) as refused:
        ProgressReport(**{**PROGRESS.__dict__, **changes})
    assert refused.value.field == field


@pytest.mark.parametrize(
    ("element", "text"),
    [("bytesDone", "-1"), ("bytesDone", "18446744073709551616"), ("bytesTotal", "4k"), ("phase", "paused")],
)
def test_a_bad_number_or_phase_in_a_progress_body_is_refused(element, text):
    with pytest.raises(MalformedBody, match=element):
        parse_progress(with_text(PROGRESS_BODY, element, text))


def test_a_progress_body_where_done_exceeds_total_is_refused():
    with pytest.raises(InvalidValue, match="more than the total"):
        parse_progress(with_text(PROGRESS_BODY, "bytesDone", "4097"))


def test_a_progress_body_without_its_phase_is_refused():
    with pytest.raises(MalformedBody, match="phase"):
        parse_progress(without(PROGRESS_BODY, "phase"))


def test_a_progress_body_is_not_a_descriptor_and_a_descriptor_is_not_progress():
    with pytest.raises(MalformedBody, match="expected <offer> or <answer>, got <progress>"):
        parse_descriptor(PROGRESS_BODY)


def test_counters_travel_with_a_progress_report():
    from session_xml import Phase, ProgressReport, build_progress, parse_progress

    report = ProgressReport("s-1", Phase.DELTA, 10, 20,
                            counters=(("bytesLiteral", 4), ("bytesMatched", 6)))
    assert parse_progress(build_progress(report)) == report


@pytest.mark.parametrize("counters", [
    (("bytesLiteral", 1), ("bytesLiteral", 2)),
    (("Bad-Name", 1),),
    (("bytesLiteral", -1),),
    tuple((f"c{i}", i) for i in range(17)),
])
def test_bad_counters_are_refused(counters):
    from session_xml import DescriptorError, Phase, ProgressReport

    with pytest.raises(DescriptorError):
        ProgressReport("s-1", Phase.DELTA, counters=counters)
