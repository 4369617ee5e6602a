"""The command-line tools some tests drive (sipp, Chromium and its driver). A missing tool skips
those tests on a developer's machine, and fails them where `CI` is set: CI must install it."""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(name: str, package: str) -> str:
    """The path of the command `name`, which the Debian package `package` provides."""
    found = shutil.which(name)
    if found is None:
        message = f"{name} is not installed (apt-get install {package})"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must install it")
        pytest.skip(message)
    return found
