"""TTL cleanup of one-shot intents (a finished backup, a finished operation): the request deletes
itself `ttl` seconds after it finished. The timer lives in this process; after a restart the resume
handler schedules it again from the status's finish time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from cnpg_mcp_operator.k8s import Resource
from cnpg_mcp_operator.runtime import Runtime
from cnpg_mcp_operator.status_writer import IntentKey, intent_key

log = logging.getLogger(__name__)

_timers: dict[IntentKey, asyncio.TimerHandle] = {}
_running: set[asyncio.Task[None]] = set()  # strong references: the loop keeps only weak ones


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def schedule(rt: Runtime, resource: Resource, body: Mapping[str, Any], finished_at: str, ttl_seconds: int, *,
             propagation: str = "Background", note: str = "") -> None:
    """Delete the intent (only while it is still this one, by uid) ttl_seconds after finished_at."""
    key, uid = intent_key(body), str(body["metadata"]["uid"])
    due = parse(finished_at) + timedelta(seconds=ttl_seconds)
    delay = max(0.0, (due - datetime.now(UTC)).total_seconds())
    cancel(key)
    loop = asyncio.get_running_loop()

    def start() -> None:
        task = loop.create_task(_expire(rt, resource, key, uid, propagation=propagation, note=note))
        _running.add(task)
        task.add_done_callback(_running.discard)

    _timers[key] = loop.call_later(delay, start)


def cancel(key: IntentKey) -> None:
    timer = _timers.pop(key, None)
    if timer is not None:
        timer.cancel()


async def _expire(rt: Runtime, resource: Resource, key: IntentKey, uid: str, *, propagation: str,
                  note: str) -> None:
    _timers.pop(key, None)
    _, namespace, name = key
    try:
        current = await rt.api.get(resource, namespace, name)
        if current is None or current["metadata"]["uid"] != uid or current["metadata"].get("deletionTimestamp"):
            return
        log.info("%s %s/%s finished its TTL; deleting it%s", resource.kind, namespace, name, note)
        await rt.api.delete(resource, namespace, name, propagation=propagation)
    except Exception as exc:  # a timer task has nobody to report to but the log
        log.warning("TTL cleanup of %s %s/%s failed: %s", resource.kind, namespace, name, exc)
