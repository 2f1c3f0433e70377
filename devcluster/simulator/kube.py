"""Kubernetes API I/O shared by every handler: reads, status and finalizer patches, idempotent creates,
and the memory of the simulator's own writes (so their watch echoes do not trigger work again)."""

from __future__ import annotations

import base64
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from devcluster.simulator.common import (
    GROUP,
    VERSION,
    Json,
    finalizers_with,
    is_namespace_terminating,
    status_patch,
)

log = logging.getLogger("cnpg-simulator")
OWN_WRITES_KEPT = 4  # resourceVersions remembered per object


def to_dict(api_client: Any, obj: Any) -> Json:
    if isinstance(obj, dict):
        return obj
    result: Json = api_client.sanitize_for_serialization(obj)
    return result


def _version(obj: Mapping[str, Any]) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class Kube:
    """One ApiClient for the worker (watches open their own)."""

    def __init__(self, kubeconfig: Path) -> None:
        self._kubeconfig = kubeconfig
        self.api = self.new_api_client()
        self._own_writes: dict[tuple[str, str, str], deque[str]] = {}
        self._own_lock = threading.Lock()
        # The newest object each watch has shown (an informer's store): a burst of DatabaseRoles then costs
        # no GET of the role, its Cluster and its Secret each (issue #14). Misses fall back to the API.
        self._seen: dict[tuple[str, str, str], Json] = {}
        self._seen_lock = threading.Lock()

    def new_api_client(self) -> Any:
        return config.new_client_from_config(config_file=str(self._kubeconfig))

    def remember_write(self, plural: str, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        with self._own_lock:
            kept = self._own_writes.setdefault((plural, meta.get("namespace", ""), meta.get("name", "")),
                                               deque(maxlen=OWN_WRITES_KEPT))
            kept.append(str(meta.get("resourceVersion")))

    def is_own_write(self, plural: str, obj: Mapping[str, Any]) -> bool:
        """Whether this watch event only echoes a write the simulator made itself."""
        meta = obj.get("metadata") or {}
        with self._own_lock:
            kept = self._own_writes.get((plural, meta.get("namespace", ""), meta.get("name", "")))
            return kept is not None and str(meta.get("resourceVersion")) in kept

    def observe(self, plural: str, event_type: str, obj: Json) -> None:
        """A watch event: keep the object (never an older version over a newer one), forget it on DELETED."""
        meta = obj.get("metadata") or {}
        key = (plural, str(meta.get("namespace", "")), str(meta.get("name", "")))
        with self._seen_lock:
            if event_type == "DELETED":
                self._seen.pop(key, None)
                return
            known = self._seen.get(key)
            if known is None or _version(obj) >= _version(known):
                self._seen[key] = obj

    def _observed(self, plural: str, namespace: str, name: str) -> Json | None:
        with self._seen_lock:
            return self._seen.get((plural, namespace, name))

    def get_observed(self, plural: str, namespace: str, name: str) -> Json | None:
        """The object as its watch last showed it (the simulator's own patches update it in place),
        else from the API. The caller may patch it (kube.patch_status, set_finalizer)."""
        return self._observed(plural, namespace, name) or self.get(plural, namespace, name)

    def custom(self) -> Any:
        return client.CustomObjectsApi(self.api)

    def core(self) -> Any:
        return client.CoreV1Api(self.api)

    def get(self, plural: str, namespace: str, name: str) -> Json | None:
        try:
            obj: Json = self.custom().get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
            return obj
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def read_secret(self, namespace: str, name: str) -> Json | None:
        try:
            return to_dict(self.api, self.core().read_namespaced_secret(name, namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def secret_password(self, namespace: str, name: str) -> tuple[str, str]:
        """(password, resourceVersion) of a basic-auth Secret; LookupError with a CNPG-like message.
        Labelled Secrets (cnpg.io/reload) come from the secrets watch when it has shown them."""
        secret = self._observed("secrets", namespace, name) or self.read_secret(namespace, name)
        if secret is None:
            raise LookupError(f'secrets "{name}" not found')
        encoded = (secret.get("data") or {}).get("password")
        if not encoded:
            raise LookupError(f'secret "{name}" has no "password" key')
        return base64.b64decode(encoded).decode(), str(secret["metadata"]["resourceVersion"])

    def patch_status(self, plural: str, obj: Json, owned: Json) -> None:
        patch = status_patch(obj.get("status") or {}, owned)
        if not patch:
            return
        meta = obj["metadata"]
        try:
            updated = self.custom().patch_namespaced_custom_object_status(
                GROUP, VERSION, meta["namespace"], plural, meta["name"], {"status": patch},
                _content_type="application/merge-patch+json")
        except ApiException as exc:
            if exc.status != 404:
                raise
            return
        self.remember_write(plural, updated)
        obj["status"] = updated.get("status") or {}
        obj["metadata"] = updated["metadata"]

    def set_finalizer(self, plural: str, obj: Json, finalizer: str, present: bool) -> None:
        """Optimistic (resourceVersion) merge patch of metadata.finalizers; 409 → retried by the caller."""
        wanted = finalizers_with(obj, finalizer, present)
        if wanted is None:
            return
        meta = obj["metadata"]
        body = {"metadata": {"finalizers": wanted, "resourceVersion": meta["resourceVersion"]}}
        try:
            updated: Json = self.custom().patch_namespaced_custom_object(
                GROUP, VERSION, meta["namespace"], plural, meta["name"], body,
                _content_type="application/merge-patch+json")
        except ApiException as exc:
            if exc.status == 404 and not present:
                return
            raise
        self.remember_write(plural, updated)
        obj["metadata"] = updated["metadata"]

    def create_if_missing(self, create: Callable[[], Any], what: str, plural: str | None = None) -> None:
        """Creates; already there is fine. With `plural`, the creation's watch echo is ignored."""
        try:
            created = create()
            log.info("created %s", what)
            if plural is not None:
                self.remember_write(plural, to_dict(self.api, created))
        except ApiException as exc:
            # 409: already there; a terminating namespace accepts nothing new (and needs nothing).
            if exc.status != 409 and not is_namespace_terminating(exc):
                raise

