"""The one way tests wait for something to happen: poll a condition until it holds, and fail
naming what was awaited when it does not hold in time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], *, what: str, timeout: float = 20.0,
               interval: float = 0.05, ignoring: tuple[type[BaseException], ...] = ()) -> T:
    """Call `predicate` until it gives something true and return that. After `timeout` seconds
    raise AssertionError naming `what`. Exceptions of the `ignoring` types count as "not yet"
    (a page element not rendered yet); any other exception fails the test at once."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except ignoring as exc:
            last: object = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} "
                                 f"(last seen: {last!r})")
        time.sleep(interval)


async def wait_until_async(predicate: Callable[[], Awaitable[T] | T], *, what: str,
                           timeout: float = 20.0, interval: float = 0.05) -> T:
    """`wait_until` inside an event loop: the loop keeps running while we wait, and `predicate`
    may be a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} "
                                 f"(last seen: {value!r})")
        await asyncio.sleep(interval)
