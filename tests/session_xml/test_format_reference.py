import re
from pathlib import Path

import session_xml
from session_xml import check_answer, parse_descriptor, parse_progress

REFERENCE = Path(session_xml.__file__).with_name("FORMAT.md").read_text()
EXAMPLES = [block.encode() for block in re.findall(r"```xml\n(.*?)```", REFERENCE, re.DOTALL)]


def test_the_reference_shows_an_offer_its_answer_and_a_progress_report():
    offer_body, answer_body, progress_body = EXAMPLES
    offer, answer = parse_descriptor(offer_body), parse_descriptor(answer_body)
    check_answer(offer, answer)
    assert parse_progress(progress_body).records_done == 212


def test_the_reference_examples_are_what_the_builder_writes():
    offer_body, answer_body, progress_body = EXAMPLES
    assert session_xml.build_descriptor(parse_descriptor(offer_body)) == offer_body
    assert session_xml.build_descriptor(parse_descriptor(answer_body)) == answer_body
    assert session_xml.build_progress(parse_progress(progress_body)) == progress_body
