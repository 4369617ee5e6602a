"""The tests' waiting helper: it hands back what the condition gave, and fails naming what it
waited for."""

from __future__ import annotations

import pytest

from .waiting import wait_until


def answers(*values):
    """A condition that gives these values one call after another (an exception is raised)."""
    remaining = iter(values)

    def condition():
        value = next(remaining)
        if isinstance(value, Exception):
            raise value
        return value

    return condition


def test_waiting_returns_the_first_true_value_the_condition_gives():
    assert wait_until(answers(None, [], ["row"]), what="a row", interval=0) == ["row"]


def test_waiting_past_the_timeout_fails_naming_what_it_waited_for():
    with pytest.raises(AssertionError, match="waiting for the phone online"):
        wait_until(lambda: False, what="the phone online", timeout=0)


def test_an_ignored_exception_counts_as_not_yet():
    condition = answers(KeyError("not rendered"), KeyError("not rendered"), "ready")
    assert wait_until(condition, what="the element", interval=0, ignoring=(KeyError,)) == "ready"
    with pytest.raises(AssertionError, match="not rendered"):
        wait_until(answers(KeyError("not rendered")), what="the element", timeout=0,
                   ignoring=(KeyError,))


def test_an_exception_not_ignored_fails_the_wait_at_once():
    with pytest.raises(ValueError, match="bad row"):
        wait_until(answers(ValueError("bad row")), what="the element", timeout=1,
                   ignoring=(KeyError,))
