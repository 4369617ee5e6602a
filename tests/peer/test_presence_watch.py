"""The presence watch wakes whoever waits for it when its subscription starts or ends, not only
when a NOTIFY changes its table: the first NOTIFY may overtake the answer to the SUBSCRIBE."""

from __future__ import annotations

import asyncio

from peer.presence_watch import PresenceWatch


async def test_a_waiter_for_the_subscription_is_woken_when_it_starts_after_its_first_notify():
    watch = PresenceWatch(agent=None, config=None, registration=None)  # nothing sent here
    waiter = asyncio.create_task(watch.changed())
    await asyncio.sleep(0)
    watch.subscribed = True
    await asyncio.wait_for(waiter, 1.0)
    again = asyncio.create_task(watch.changed())
    await asyncio.sleep(0)
    watch.subscribed = True  # no change: nobody woken
    await asyncio.sleep(0.05)
    assert not again.done()
    watch.subscribed = False
    await asyncio.wait_for(again, 1.0)
