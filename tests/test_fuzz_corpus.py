"""Every input the fuzzing campaign keeps (valid seeds, and minimized inputs that once crashed a
parser or were its slowest) still gets a value or the parser's typed error: a crash fixed once
stays fixed. Times are the campaign's to report (bench/fuzz.py), not this test's."""

from __future__ import annotations

import pytest

from bench.fuzz_targets import CORPUS, TARGETS


def _cases():
    for target in TARGETS.values():
        directory = CORPUS / target.name
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            yield pytest.param(target.name, path.name, id=f"{target.name}/{path.name}")


_HARNESSES: dict = {}


def _harness(name: str):
    if name not in _HARNESSES:
        _HARNESSES[name] = TARGETS[name].harness()
    return _HARNESSES[name]


@pytest.mark.parametrize("target, filename", list(_cases()))
def test_a_kept_input_gets_a_value_or_the_typed_error(target, filename):
    if reason := TARGETS[target].skip():
        pytest.skip(reason)
    harness = _harness(target)
    try:
        harness.run((CORPUS / target / filename).read_bytes())
    except harness.typed:
        pass


def test_every_target_that_runs_has_seeds_to_start_from():
    for target in TARGETS.values():
        if target.skip():
            continue
        seeds = list((CORPUS / target.name).glob("seed-*"))
        assert seeds, f"{target.name} has no seeds in {CORPUS / target.name}"
        harness = _harness(target.name)
        # A seed is a valid input: the fuzzer starts from what the parser accepts.
        for seed in seeds:
            harness.run(seed.read_bytes())


def test_the_presence_body_target_waits_for_its_parser_with_a_reason():
    reginfo = TARGETS["sip-reginfo"]
    try:
        import protocols.sip.reginfo  # noqa: F401
    except ImportError:
        assert "does not exist yet" in reginfo.skip()
    else:
        assert reginfo.skip() is None
