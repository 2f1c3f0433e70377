"""The single writer of intent statuses: serialised per intent, and silent when nothing changes.

Both the intent handlers and the CNPG observers compute an intent's status; they all hand it here.
The writer compares against the newest status it knows (the body it was given, or what its own
last write returned, whichever has the higher resourceVersion), writes only a difference, and
announces a change of the Ready condition's status or reason with one Event, created just before
the status write under a name derived from the transition (events.transition_event): a crash
between the two cannot lose it, and announcing it again after a restart only meets AlreadyExists.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from cnpg_mcp_api.conditions import ready_condition
from cnpg_mcp_operator import events, metrics
from cnpg_mcp_operator.drift import merge_patch
from cnpg_mcp_operator.k8s import Api, ApiError, Resource

log = logging.getLogger(__name__)

Json = dict[str, Any]
IntentKey = tuple[str, str, str]  # (kind, namespace, name)


def intent_key(body: Mapping[str, Any]) -> IntentKey:
    meta = body["metadata"]
    return str(body.get("kind")), str(meta["namespace"]), str(meta["name"])


def _version(body: Mapping[str, Any] | None) -> int:
    try:
        return int(((body or {}).get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:  # resourceVersion is opaque in principle; etcd makes it an integer
        return 0


class StatusWriter:
    def __init__(self, api: Api) -> None:
        self._api = api
        self._newest: dict[IntentKey, Json] = {}

    def freshest(self, body: Mapping[str, Any]) -> Json:
        """The newest body known for this intent: `body` or the one our last write returned."""
        key = intent_key(body)
        known = self._newest.get(key)
        if known is not None and _version(known) > _version(body):
            return known
        fresh = dict(body)
        self._newest[key] = fresh
        return fresh

    def forget(self, body: Mapping[str, Any]) -> None:
        self._newest.pop(intent_key(body), None)

    async def write(self, resource: Resource, body: Mapping[str, Any], desired: Mapping[str, Any]) -> Json:
        """Brings the intent's status to `desired` (only the keys given); returns the freshest body.

        Call under the intent's lock, with `body` from `freshest()`.
        """
        current = dict(body.get("status") or {})
        patch = merge_patch(desired, current)
        if not patch:
            return dict(body)
        meta = body["metadata"]
        before = ready_condition({"status": current})
        entering = ready_condition({"status": {**current, **desired}})
        if entering:
            await self._announce(events.transition_event(body, before or None, entering))
        try:
            updated = await self._api.patch_status(resource, meta["namespace"], meta["name"], patch)
        except ApiError as exc:
            if exc.not_found:  # the intent is gone: nobody is left to read its status
                return dict(body)
            raise
        self._newest[intent_key(body)] = updated
        after = ready_condition(updated)
        if after:
            metrics.ready_transition(updated, before or None, after)
        return updated

    async def _announce(self, event: Mapping[str, Any] | None) -> None:
        """Creates the transition's Event; one that exists already was announced before a restart.
        An Event is auxiliary: failing to post it never keeps the status from being written."""
        if event is None:
            return
        meta = event["metadata"]
        try:
            if await self._api.create(events.EVENTS, meta["namespace"], event) is None:
                log.debug("Event %s/%s was announced already", meta["namespace"], meta["name"])
        except ApiError as exc:
            log.warning("Event %s for %s/%s not posted: %s", event.get("reason"), meta["namespace"],
                        event["involvedObject"].get("name"), exc)
