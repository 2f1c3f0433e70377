"""Password Secrets labelled `cnpg.io/reload: "true"`: a change re-enqueues the Clusters and
DatabaseRoles that use them (as CNPG reloads them). Secrets without the label are re-read only when
their user is reconciled for another reason (as in CNPG)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from kubernetes import client

from devcluster.simulator.common import RELOAD_LABEL, Json
from devcluster.simulator.context import Context, WatchSpec


class SecretHandler:
    kind: ClassVar[str] = "secret"

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def watches(self) -> Sequence[WatchSpec]:
        def factory(api: Any) -> tuple[Callable[..., Any], Json]:
            return (client.CoreV1Api(api).list_secret_for_all_namespaces,
                    {"label_selector": f"{RELOAD_LABEL}=true"})
        return [WatchSpec("secrets", factory, self._event, replay=False)]

    def _event(self, event_type: str, obj: Json) -> None:
        self._ctx.kube.observe("secrets", event_type, obj)
        if event_type == "DELETED" or self._ctx.kube.is_own_write("secrets", obj):
            return  # the Secret the simulator just created is already in use by its creator
        meta = obj["metadata"]
        for user in self._ctx.secret_users.users_of(meta["namespace"], meta["name"]):
            self._ctx.enqueue(user)

    def reconcile(self, namespace: str, name: str) -> bool:
        return True  # nothing to do for the Secret itself
