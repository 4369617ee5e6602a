"""A tool a test drives is there, or the test says which package is missing: skipped on a
developer's machine, failed where CI is set."""

from __future__ import annotations

import pytest

from .tools import require_tool

MISSING = "sipsync-no-such-tool"


def test_a_tool_that_is_installed_gives_its_path():
    assert require_tool("sh", "dash").endswith("/sh")


def test_a_missing_tool_fails_the_test_where_ci_is_set(monkeypatch):
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="apt-get install no-such-package.*CI must"):
        require_tool(MISSING, "no-such-package")


def test_a_missing_tool_skips_the_test_on_a_developer_machine(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install no-such-package"):
        require_tool(MISSING, "no-such-package")
