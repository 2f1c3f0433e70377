"""Readers and invariant checks shared by the fault and load tests."""

from __future__ import annotations

import base64
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from cnpg_mcp_api import constants
from tests.integration.conftest import PLURALS, Intents

MANAGED_BY = "app.kubernetes.io/managed-by=cnpg-mcp"
CLUSTER, ROLE, DB = "PgClusterRequest", "PgRoleRequest", "PgDatabaseRequest"
TRANSIENT_REASONS = frozenset({"Pending", "Deleting"})


# The MCP SDK frames every tool failure as "Error executing tool <name>: <message>"; the gateway's own
# message must start with a stable code. A crash is only "Error executing tool <name>" (no message).
SDK_PREFIX = re.compile(r"^Error executing tool [a-z_]+: ")
CODED = re.compile(r"^\[([A-Z_]+)\] \S")


def tool_error_code(text: str) -> str | None:
    """The stable code a tool error carries ("UNAVAILABLE"), or None when it has none."""
    found = CODED.match(SDK_PREFIX.sub("", text, count=1))
    return found.group(1) if found else None


def our_secrets(k8s: Any, namespace: str) -> list[Any]:
    return list(client.CoreV1Api(k8s).list_namespaced_secret(namespace, label_selector=MANAGED_BY).items)


def cnpg_objects(k8s: Any, namespace: str, plural: str) -> list[dict[str, Any]]:
    listing = client.CustomObjectsApi(k8s).list_namespaced_custom_object(
        constants.CNPG_GROUP, constants.CNPG_VERSION, namespace, plural)
    return list(listing.get("items") or [])


def owner_uids(obj: Any) -> set[str]:
    if isinstance(obj, dict):
        refs = obj["metadata"].get("ownerReferences") or []
        return {ref["uid"] for ref in refs}
    return {ref.uid for ref in (obj.metadata.owner_references or [])}


def ready_condition(obj: dict[str, Any]) -> dict[str, Any] | None:
    return Intents.ready(obj)


def is_ready(obj: dict[str, Any]) -> bool:
    condition = ready_condition(obj) or {}
    return (condition.get("status") == "True"
            and (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"])


def is_terminal(obj: dict[str, Any]) -> bool:
    """Ready True, or Ready False with a reason that needs a human (Invalid, PolicyDenied, Conflict, ...)."""
    condition = ready_condition(obj) or {}
    if condition.get("status") == "True":
        return is_ready(obj)
    return condition.get("status") == "False" and condition.get("reason") not in TRANSIENT_REASONS \
        and (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"]


def wait_all(intents: Intents, namespace: str, kinds: Iterable[str], predicate: Callable[[dict[str, Any]], bool],
             timeout: float, what: str = "Ready") -> float:
    """Wait until every intent of these kinds in the namespace satisfies predicate; return the seconds taken."""
    started = time.monotonic()
    deadline = started + timeout
    pending: list[str] = []
    while time.monotonic() < deadline:
        pending = [f"{kind}/{obj['metadata']['name']}: {(ready_condition(obj) or {}).get('reason')}"
                   for kind in kinds for obj in intents.list_all(kind, namespace) if not predicate(obj)]
        if not pending:
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"{len(pending)} intent(s) not {what} after {timeout:.0f}s: {pending[:10]}")


def ready_cluster_and_client(intents: Intents, mcp_clients: Any, namespace: str, cluster: str) -> Any:
    """A Ready one-instance cluster and an MCP session that has already listed it (the outage tests' start)."""
    intents.create(CLUSTER, namespace, cluster, {"instances": 1})
    intents.wait_ready(CLUSTER, namespace, cluster)
    mcp = mcp_clients.open()
    assert not mcp_clients.call(mcp, "list_postgres_clusters", {"namespace": namespace}).is_error
    return mcp


def wait_gone_all(intents: Intents, namespace: str, kind: str, names: Iterable[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    left = set(names)
    while left and time.monotonic() < deadline:
        present = {obj["metadata"]["name"] for obj in intents.list_all(kind, namespace)}
        left &= present
        if left:
            time.sleep(0.5)
    assert not left, f"{kind} still present after {timeout:.0f}s: {sorted(left)[:10]}"


def retrying(action: Callable[[], Any], timeout: float = 120.0, *, missing_ok: bool = False) -> Any:
    """Call action until the API answers (as a client that keeps trying while the API server is away).

    A 409 "already exists" (or with missing_ok a 404) means an earlier attempt landed before its answer was lost.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except ApiException as exc:
            if exc.status == 409 and "already exists" in str(exc.body):
                return None
            if exc.status == 404 and missing_ok:
                return None
            if exc.status not in (0, 429, 500, 502, 503, 504) or time.monotonic() > deadline:
                raise
        except Exception:  # connection refused/reset while the API server is down
            if time.monotonic() > deadline:
                raise
        time.sleep(0.3)


class PasswordWatch:
    """Polls the operator's Secrets and records every password value each one ever had (by Secret UID)."""

    def __init__(self, k8s: Any, namespace: str, interval: float = 0.3) -> None:
        self.k8s, self.namespace, self.interval = k8s, namespace, interval
        self.seen: dict[str, set[str]] = defaultdict(set)  # "name/uid" → passwords
        self.first: dict[str, str] = {}  # secret name → first password seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PasswordWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception:  # the API server may be down on purpose
                continue

    def sample(self) -> None:
        for secret in our_secrets(self.k8s, self.namespace):
            if not secret.data or "password" not in secret.data:
                continue
            password = base64.b64decode(secret.data["password"]).decode()
            self.seen[f"{secret.metadata.name}/{secret.metadata.uid}"].add(password)
            self.first.setdefault(secret.metadata.name, password)

    def recreated(self) -> list[str]:
        """Secret names that existed under more than one UID (deleted and made again)."""
        names = Counter(key.partition("/")[0] for key in self.seen)
        return [name for name, uids in names.items() if uids > 1]

    def changed(self) -> dict[str, int]:
        """Secrets whose password changed, or which were re-created with another password."""
        by_name: dict[str, set[str]] = defaultdict(set)
        for key, values in self.seen.items():
            by_name[key.partition("/")[0]] |= values
        return {name: len(values) for name, values in by_name.items() if len(values) > 1}


def check_produced(k8s: Any, intents: Intents, namespace: str) -> dict[str, int]:
    """Exactly one Secret and DatabaseRole per live role request, one Database per database request, no orphan.

    Returns counts; raises AssertionError naming what is duplicated or orphaned.
    """
    roles = intents.list_all(ROLE, namespace)
    databases = intents.list_all(DB, namespace)
    role_uids = {r["metadata"]["uid"] for r in roles}
    database_uids = {d["metadata"]["uid"] for d in databases}
    secrets = our_secrets(k8s, namespace)
    database_roles = cnpg_objects(k8s, namespace, "databaseroles")
    cnpg_databases = cnpg_objects(k8s, namespace, "databases")

    orphans = [f"Secret/{s.metadata.name}" for s in secrets if not owner_uids(s) & role_uids]
    orphans += [f"DatabaseRole/{r['metadata']['name']}" for r in database_roles if not owner_uids(r) & role_uids]
    orphans += [f"Database/{d['metadata']['name']}" for d in cnpg_databases if not owner_uids(d) & database_uids]
    assert not orphans, f"orphans: {orphans}"

    def per_owner(objs: list[Any]) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for obj in objs:
            for uid in owner_uids(obj):
                counts[uid] += 1
        return counts

    for what, objs, uids in (("Secret", secrets, role_uids), ("DatabaseRole", database_roles, role_uids),
                             ("Database", cnpg_databases, database_uids)):
        counts = per_owner(objs)
        duplicated = {uid: n for uid, n in counts.items() if n > 1}
        missing = uids - set(counts)
        assert not duplicated, f"duplicate {what}s for owners {duplicated}"
        assert not missing, f"{len(missing)} request(s) without a {what}"
    return {"roles": len(roles), "databases": len(databases), "secrets": len(secrets)}


def events_by_reason(intents: Intents, namespace: str) -> dict[tuple[str, str], int]:
    """(object name, reason) → how many times that Event was posted (counting aggregated repeats)."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for event in intents.core.list_namespaced_event(namespace).items:
        counts[(event.involved_object.name, event.reason)] += event.count or 1
    return counts


__all__ = ["CLUSTER", "DB", "PLURALS", "ROLE"]
