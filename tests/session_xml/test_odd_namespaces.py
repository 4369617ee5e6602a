"""A namespace URI holding "}" on the root or on an extension element is refused or skipped like
any other foreign namespace, never a crash (found by bench/fuzz.py). libxml2 reports such a URI as
a warning, and lxml raises it only when no later warning (here: a relative namespace URI such as
"0") replaced it, so the bodies below carry both, as the fuzzer's input did."""

import pytest

from session_xml import (NAMESPACE, MalformedBody, build_descriptor, build_progress, parse_descriptor,
                         parse_progress)
from tests.session_xml.examples import OFFER, PROGRESS

RELATIVE_NAMESPACE = b'<more xmlns="0"/>'


@pytest.mark.parametrize("namespace", ["}", "urn:x}y", "}}"])
def test_a_root_in_a_namespace_holding_a_brace_is_refused_as_malformed(namespace):
    body = build_descriptor(OFFER).replace(NAMESPACE.encode(), namespace.encode(), 1)
    body = body.replace(b"</offer>", RELATIVE_NAMESPACE + b"</offer>")
    with pytest.raises(MalformedBody, match="expected <offer> or <answer> in namespace"):
        parse_descriptor(body)


def test_an_extension_in_a_namespace_holding_a_brace_is_skipped():
    extension = b'<x:extra xmlns:x="urn:new}1">1</x:extra>' + RELATIVE_NAMESPACE
    body = build_progress(PROGRESS).replace(b"</progress>", extension + b"</progress>")
    assert parse_progress(body) == PROGRESS
