"""Kopf's startup toggle set must not wake every waiting worker for every listed object (issue #14).

The operator spent 45 s and more at startup over 5,000 Clusters and 4,000 intents before running a
handler: each object's "indexed" toggle added to the shared set woke every worker already waiting.
"""

from __future__ import annotations

import asyncio

from kopf._cogs.aiokits import aiotoggles

from cnpg_mcp_operator import kopf_toggles


async def _startup(objects: int) -> int:
    """Kopf's startup shape: a blocker, then per object a toggle made (listed) and dropped (indexed) while
    the workers of the objects before it wait for the whole set. Returns how often waiters were woken."""
    toggles = aiotoggles.ToggleSet(all)
    blocker = await toggles.make_toggle(name="orchestration blocker")
    wakeups = 0
    original = toggles._condition.notify_all

    def counting_notify_all() -> None:
        nonlocal wakeups
        wakeups += len(toggles._condition._waiters)
        original()

    toggles._condition.notify_all = counting_notify_all  # type: ignore[method-assign]
    workers = []
    for index in range(objects):
        toggle = await toggles.make_toggle(name=str(index))

        async def worker(own: aiotoggles.Toggle = toggle) -> None:
            await toggles.drop_toggle(own)
            await toggles.wait_for(True)

        workers.append(asyncio.create_task(worker()))
        await asyncio.sleep(0)  # the worker drops its toggle and waits before the next object is listed
    await toggles.drop_toggle(blocker)
    await asyncio.wait_for(asyncio.gather(*workers), 10)
    assert toggles.is_on()
    return wakeups


def test_listed_objects_do_not_wake_every_waiting_worker() -> None:
    assert kopf_toggles.install()
    assert asyncio.run(_startup(400)) <= 400  # everyone once, when the set turns on (was ~400²/2)


def test_the_set_still_wakes_waiters_when_its_state_changes() -> None:
    kopf_toggles.install()

    async def scenario() -> None:
        toggles = aiotoggles.ToggleSet(all)
        gate = await toggles.make_toggle(name="gate")
        waiter = asyncio.create_task(toggles.wait_for(True))
        await asyncio.sleep(0)
        assert not waiter.done()
        await toggles.drop_toggle(gate)  # off → on: wakes
        await asyncio.wait_for(waiter, 1)
        off = asyncio.create_task(toggles.wait_for(False))
        await asyncio.sleep(0)
        late = await toggles.make_toggle(False, name="late")  # on → off: wakes
        await asyncio.wait_for(off, 1)
        turned = asyncio.create_task(toggles.wait_for(True))
        await asyncio.sleep(0)
        await late.turn_to(True)  # a toggle turning still wakes the set's waiters
        await asyncio.wait_for(turned, 1)

    asyncio.run(scenario())
