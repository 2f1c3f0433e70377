"""PgRoleRequest → a password Secret plus a DatabaseRole (CNPG ≥ 1.30) or a managed.roles entry.

Reconcile: policy → Secret (generated once) → DatabaseRole or managed.roles entry → status.
Deletion: ask CNPG to drop (or release) the role, wait until CNPG confirms, then remove what we
produced. Ready is what CNPG reports; the observers in cnpg_observers.py keep the status current.

Ownership is by UID only: the Secret and the DatabaseRole carry our ownerReference, a managed.roles
entry is recorded under our UID on the Cluster (managed_roles.py). A request that produced nothing
removes nothing.

A deleted password Secret is not re-invented: the password exists nowhere else (PostgreSQL keeps
only a verifier), so the request reports SecretMissing until spec.password.rotation asks for a new
one. status.passwordRotation records the rotation token the current Secret was issued for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from cnpg_mcp_api.conditions import ready_reason
from cnpg_mcp_api.models import PgRoleRequestSpec
from cnpg_mcp_api.naming import role_secret_name
from cnpg_mcp_operator.backend import RoleBackend, backend_of
from cnpg_mcp_operator.builders.readonly import is_operator_readonly_request
from cnpg_mcp_operator.builders.role import (
    build_database_role,
    build_managed_role_entry,
    build_role_secret,
    generate_password,
    merge_managed_roles,
    remove_managed_role,
    rotation_token,
    secret_needs_update,
)
from cnpg_mcp_operator.deletion import ReleaseWording, release_plan
from cnpg_mcp_operator.drift import merge_patch, owned_by
from cnpg_mcp_operator.handlers.common import (
    ROLE_REQUESTS,
    apply_release,
    bootstrap_database,
    policy_denial,
    run_deletion,
    spec_problem,
    verdict_status,
)
from cnpg_mcp_operator.k8s import DATABASE_ROLES, SECRETS
from cnpg_mcp_operator.managed_roles import CLUSTER_MISSING, Edit, ManagedRoles, role_owners
from cnpg_mcp_operator.readiness import (
    Verdict,
    crd_applied_verdict,
    managed_role_blocker,
    managed_role_dropped,
    managed_role_entry,
    managed_role_verdict,
)
from cnpg_mcp_operator.runtime import Runtime
from cnpg_mcp_operator.status_writer import intent_key
from cnpg_mcp_operator.views import CnpgViews

log = logging.getLogger(__name__)

Json = dict[str, Any]
# Optional RoleConfiguration keys: when the request drops one, the patch must remove it too.
OPTIONAL_ROLE_KEYS = ("validUntil", "comment", "inRoles", "passwordSecret")
PENDING_MEMBERSHIP_RECHECK_S = 5.0
# Ready reasons under which the observers must not overwrite the status with CNPG's view.
OWN_VERDICTS = ("PolicyDenied", "Conflict", "Invalid", "SecretMissing")


# ------------------------------------------------------------------------------------ reconcile


def _names(body: Mapping[str, Any]) -> tuple[str, str, str, str]:
    meta, spec = body["metadata"], body.get("spec") or {}
    return meta["namespace"], meta["name"], str(spec.get("cluster") or ""), str(spec.get("roleName") or "")


def secret_name_of(body: Mapping[str, Any]) -> str:
    """The password Secret's name for this request (a name, not a claim of ownership)."""
    _, _, cluster_name, role = _names(body)
    return role_secret_name(cluster_name, role)


async def reconcile(rt: Runtime, body: Json, views: CnpgViews) -> None:
    """Idempotent: a converged request costs no API write.

    The first production writes the status once: when what it produced is not applied yet, the status
    is held back (outside the intent's lock, woken by the observers) for at most APPLY_GRACE_S, so a
    request CNPG applies quickly goes from no status to Ready in one write and one Event, instead of
    Pending then Ready. Ready is still only what CNPG reports; a slower apply gets its Pending status
    after the grace, and the observers bring Ready later as before.
    """
    key = intent_key(body)
    try:
        async with rt.locks(key):
            rt.wakeups.arm(key)  # a CNPG change seen from here on ends the grace below at once
            body = rt.status.freshest(body)
            if body["metadata"].get("deletionTimestamp"):
                return
            try:
                produced = await _reconcile_locked(rt, body, views)
            except RequestGone:
                log.info("PgRoleRequest %s/%s: deleted meanwhile, nothing produced", body["metadata"]["namespace"],
                         body["metadata"]["name"])
                return
            if produced is None:
                return  # its status is written already
            if not _hold_status_back(body, produced.verdict(body, views)):
                await _write_produced(rt, body, views, produced)
                return
        await _await_applied(rt, key, lambda: produced.verdict(body, views).reason == PENDING)
        async with rt.locks(key):
            body = rt.status.freshest(body)
            await _write_produced(rt, body, views, produced)
    finally:
        rt.wakeups.disarm(key)


# How long the first production holds its status back for CNPG to apply what it produced (see reconcile).
# CNPG applies a DatabaseRole within a second or so; under a burst the wait ends at the grace, with a
# Pending status written as before. Bounded and lock-free: other intents and the observers go on.
APPLY_GRACE_S = 5.0
PENDING = "Pending"


@dataclass(frozen=True)
class Produced:
    """What a reconcile produced, from which the status is computed (now, or after the grace)."""

    backend: RoleBackend
    secret_name: str
    conflict: str | None
    created: Json | None  # the DatabaseRole this reconcile created: the index gets it only with its event

    def verdict(self, body: Json, views: CnpgViews) -> Verdict:
        if self.conflict:
            return Verdict(False, "Conflict", self.conflict)
        return _verdict(body, views, self.backend, self.secret_name, self.created)


def _hold_status_back(body: Json, verdict: Verdict) -> bool:
    """Only the first production waits: later ones have a status the observers keep current anyway
    (refresh_status mirrors CNPG only once status.backend is recorded)."""
    return verdict.reason == PENDING and not (body.get("status") or {}).get("backend")


async def _await_applied(rt: Runtime, key: Hashable, pending: Callable[[], bool]) -> None:
    """Waits (armed by the caller) until an observer's wake-up finds `pending()` false, or the grace ends."""
    deadline = time.monotonic() + APPLY_GRACE_S
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not await rt.wakeups.wait(key, remaining):
            return
        rt.wakeups.arm(key)  # before looking: a change landing after the look ends the next wait
        if not pending():
            return


async def _write_produced(rt: Runtime, body: Json, views: CnpgViews, produced: Produced) -> None:
    verdict = produced.verdict(body, views)
    extra: Json = {"secretName": produced.secret_name, "backend": produced.backend.value,
                   "applied": verdict.ready, "passwordRotation": rotation_token(body)}
    if produced.backend is RoleBackend.DATABASE_ROLE:
        extra["databaseRole"] = body["metadata"]["name"]
    await rt.status.write(ROLE_REQUESTS, body, verdict_status(body, verdict, **extra))


class RequestGone(Exception):
    """The request was deleted, or its deletion began, after the body we hold was read."""


async def _require_live(rt: Runtime, body: Json) -> None:
    """Before creating anything for the request, make sure it still wants it. Observers hand us bodies
    from Kopf's index, which lags a deletion: a reconcile queued behind the finalizer would otherwise
    issue a Secret (and a DatabaseRole) after the finalizer cleaned up, for a request that is gone."""
    meta = body["metadata"]
    live = await rt.api.get(ROLE_REQUESTS, meta["namespace"], meta["name"])
    if live is None or live["metadata"].get("uid") != meta["uid"] or live["metadata"].get("deletionTimestamp"):
        raise RequestGone


class LiveCheck:
    """_require_live once per reconcile: the reconcile holds the intent's lock, so a finalizer that
    starts after the check cleans up only once we release it, and removes what we created (by UID)."""

    def __init__(self, rt: Runtime, body: Json) -> None:
        self._rt, self._body, self._checked = rt, body, False

    async def require(self) -> None:
        if not self._checked:
            await _require_live(self._rt, self._body)
            self._checked = True


async def _reconcile_locked(rt: Runtime, body: Json, views: CnpgViews) -> Produced | None:
    """Produces what the request asks; None when it wrote the request's (refusal) status itself."""
    invalid = spec_problem(PgRoleRequestSpec, body)
    if invalid is not None:
        await rt.status.write(ROLE_REQUESTS, body, verdict_status(body, invalid))
        return None
    namespace, _, cluster_name, role = _names(body)
    cluster = views.cluster(namespace, cluster_name)
    # The Ready roles of the cluster matter only to a request that joins roles: collecting them walks every
    # request of the cluster (quadratic over a burst: 8% of the operator's CPU for 1,000 roles, py-spy).
    joins = bool((body.get("spec") or {}).get("inRoles"))
    joinable = views.requested_roles(namespace, cluster_name, ready=True) if joins else set[str]()
    denial = policy_denial(rt, body, cluster, joinable)
    if denial is not None and is_operator_readonly_request(body, views.cluster_request(namespace, cluster_name)):
        denial = None  # the read-only role the operator itself provisions (builders/readonly.py)
    if denial is not None:
        refused = Verdict(False, "PolicyDenied", denial)
        await rt.status.write(ROLE_REQUESTS, body, verdict_status(body, refused))
        _retry_if_joining_pending_roles(body, views)
        return None
    if cluster is None:  # never produce anything for a cluster we cannot check the policy against
        verdict = Verdict(False, "ClusterNotFound", f'Cluster "{cluster_name}" not found in {namespace}')
        await rt.status.write(ROLE_REQUESTS, body, verdict_status(body, verdict))
        return None
    secret_name = role_secret_name(cluster_name, role)
    backend = backend_of(body.get("status") or {}, rt.role_backend)
    live = LiveCheck(rt, body)
    refusal = await _ensure_secret(rt, body, secret_name, bootstrap_database(cluster), live)
    if refusal is not None:
        await rt.status.write(ROLE_REQUESTS, body, verdict_status(body, refusal, applied=False))
        return None
    created: Json | None = None
    if backend is RoleBackend.DATABASE_ROLE:
        conflict, created = await _ensure_database_role(rt, body, views, secret_name, live)
    else:
        conflict = await _ensure_managed_entry(rt, body, views, secret_name)
    return Produced(backend, secret_name, conflict, created)


def _retry_if_joining_pending_roles(body: Json, views: CnpgViews) -> None:
    """A role may join a role whose request is not Ready yet (both applied at once): decide again later."""
    namespace, _, cluster_name, _ = _names(body)
    pending = views.requested_roles(namespace, cluster_name, ready=False)
    waiting_for = sorted(pending & {str(r) for r in (body.get("spec") or {}).get("inRoles") or []})
    if waiting_for:
        raise kopf.TemporaryError(f"waiting for the requests of {', '.join(waiting_for)} to be Ready",
                                  delay=PENDING_MEMBERSHIP_RECHECK_S)


def _secret_missing(body: Json, secret_name: str) -> Verdict | None:
    """SecretMissing when the Secret we issued for the current rotation token was deleted."""
    status = body.get("status") or {}
    if "passwordRotation" not in status or status["passwordRotation"] != rotation_token(body):
        return None  # never issued, or a rotation asks for a new password: create it
    return Verdict(False, "SecretMissing",
                   f"Secret {secret_name} was deleted and its password is kept nowhere else; the role is "
                   "unchanged. Set spec.password.rotation to a new value (e.g. the current time) to issue "
                   "a new password")


async def _ensure_secret(rt: Runtime, body: Json, secret_name: str, dbname: str, live: LiveCheck) -> Verdict | None:
    """The password Secret exists, is ours, and rotates only when spec.password.rotation changes.

    Returns Conflict when a Secret of that name belongs to someone else, SecretMissing when ours
    was deleted and no rotation asks for a new one. The first production creates first and reads only
    on AlreadyExists (one round trip less per new request).
    """
    namespace = body["metadata"]["namespace"]
    first = not (body.get("status") or {}).get("secretName")
    existing = None if first else await rt.api.get(SECRETS, namespace, secret_name)
    if existing is None:
        missing = _secret_missing(body, secret_name)
        if missing is not None:
            return missing
        await live.require()
        created = await rt.api.create(SECRETS, namespace, build_role_secret(body, generate_password(), dbname=dbname))
        if created is not None:
            return None
        existing = await rt.api.get(SECRETS, namespace, secret_name)  # created meanwhile, or before: check it
        if existing is None:
            raise kopf.TemporaryError(f"Secret {secret_name} vanished while being created", delay=1)
    if not owned_by(existing, body["metadata"]["uid"]):
        return Verdict(False, "Conflict", f"Secret {secret_name} exists and does not belong to this request")
    if secret_needs_update(existing, body):
        rotated = build_role_secret(body, generate_password(), dbname=dbname)
        await rt.api.patch(SECRETS, namespace, secret_name, {
            "metadata": {"annotations": rotated["metadata"].get("annotations") or {},
                         "resourceVersion": existing["metadata"]["resourceVersion"]},
            "stringData": rotated.get("stringData") or {},
        })
        log.info("PgRoleRequest %s/%s: password rotated", namespace, body["metadata"]["name"])
    return None


async def _ensure_database_role(rt: Runtime, body: Json, views: CnpgViews, secret_name: str,
                                live: LiveCheck) -> tuple[str | None, Json | None]:
    """The conflict, if any, and the DatabaseRole this call created (None if it existed): the index
    gets it only with its watch event, and the status written now must not say it is yet to be created
    (that costs a second status write, with a new Ready message, once the event arrives)."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    desired = build_database_role(body, secret_name)
    existing = views.database_role(namespace, name)
    if existing is None:
        await live.require()
        created = await rt.api.create(DATABASE_ROLES, namespace, desired)
        if created is not None:
            return None, created
        existing = await rt.api.get(DATABASE_ROLES, namespace, name)
        if existing is None:
            raise kopf.TemporaryError(f"DatabaseRole {name} vanished while being created", delay=1)
    if not owned_by(existing, body["metadata"]["uid"]):
        return f"DatabaseRole {name} exists and does not belong to this request", None
    patch = merge_patch(desired.get("spec") or {}, existing.get("spec") or {}, OPTIONAL_ROLE_KEYS)
    if patch:
        await rt.api.patch(DATABASE_ROLES, namespace, name, {"spec": patch})
    return None, None


def _upsert(entry: Json, uid: str, secret_name: str) -> Edit:
    """Write our entry and record it as ours; refuse an entry someone else produced."""
    def edit(state: ManagedRoles) -> tuple[ManagedRoles, str]:
        role = entry["name"]
        current, owner = state.entry(role), state.owners.get(role)
        if current is not None and owner != uid and not _adoptable(current, owner, secret_name):
            return state, "conflict"
        updated = ManagedRoles(merge_managed_roles(state.roles, entry), {**state.owners, role: uid})
        return updated, "written" if updated != state else "unchanged"
    return edit


def _adoptable(entry: Mapping[str, Any], owner: str | None, secret_name: str) -> bool:
    """An entry written before ownership was recorded (no record at all) that uses our Secret.

    Only reached after _ensure_secret found that Secret owned by this request's UID, so the
    entry was produced by this request; recording it keeps upgrades from orphaning roles.
    """
    return owner is None and (entry.get("passwordSecret") or {}).get("name") == secret_name


def _mark_absent(role: str, uid: str) -> Edit:
    """Ask CNPG to drop our entry's role (ensure: absent); nothing if the entry is not ours."""
    def edit(state: ManagedRoles) -> tuple[ManagedRoles, str]:
        current = state.entry(role)
        if current is None or state.owners.get(role) != uid:
            return state, "not-ours"
        return ManagedRoles(merge_managed_roles(state.roles, {**current, "ensure": "absent"}), state.owners), "marked"
    return edit


def _remove(role: str, uid: str) -> Edit:
    """Remove our entry and its ownership record; nothing if the entry is not ours."""
    def edit(state: ManagedRoles) -> tuple[ManagedRoles, str]:
        if state.owners.get(role) != uid:
            return state, "not-ours"
        owners = {r: u for r, u in state.owners.items() if r != role}
        return ManagedRoles(remove_managed_role(state.roles, role), owners), "removed"
    return edit


async def _ensure_managed_entry(rt: Runtime, body: Json, views: CnpgViews, secret_name: str) -> str | None:
    namespace, _, cluster_name, role = _names(body)
    uid = body["metadata"]["uid"]
    entry = build_managed_role_entry(body, secret_name)
    cluster = views.cluster(namespace, cluster_name)
    if managed_role_entry(cluster, role) == entry and role_owners(cluster).get(role) == uid:
        return None  # converged, seen in the watch cache: no read, no write
    outcome = await rt.managed_roles.edit(namespace, cluster_name, _upsert(entry, uid, secret_name))
    if outcome == "conflict":
        return f"Cluster {cluster_name} already manages a role {role} that this request did not create"
    if outcome == CLUSTER_MISSING:
        return None  # the verdict reports ClusterNotFound from the cache soon enough
    return None


def _verdict(body: Json, views: CnpgViews, backend: RoleBackend, secret_name: str,
             just_created: Json | None = None) -> Verdict:
    namespace, name, cluster_name, role = _names(body)
    cluster = views.cluster(namespace, cluster_name)
    if backend is RoleBackend.DATABASE_ROLE:
        database_role = views.database_role(namespace, name) or just_created
        return crd_applied_verdict("DatabaseRole", database_role, cluster is not None, cluster_name)
    return managed_role_verdict(cluster, role, cluster_name, build_managed_role_entry(body, secret_name))


async def refresh_status(rt: Runtime, body: Json, views: CnpgViews) -> None:
    """Status only, from what CNPG reports now (called by the observers)."""
    async with rt.locks(intent_key(body)):
        body = rt.status.freshest(body)
        status = body.get("status") or {}
        if body["metadata"].get("deletionTimestamp") or not status.get("backend"):
            return  # deletion reports its own progress; unproduced requests have nothing to mirror
        if ready_reason(body) in OWN_VERDICTS:
            return
        backend = backend_of(status, rt.role_backend)
        verdict = _verdict(body, views, backend, str(status.get("secretName") or ""))
        await rt.status.write(ROLE_REQUESTS, body,
                              verdict_status(body, verdict, keep_generation=True, applied=verdict.ready))


def needs_reconcile(rt: Runtime, body: Json, views: CnpgViews) -> bool:
    """After a Cluster event: must this request (re)produce, or is a status refresh enough?"""
    status = body.get("status") or {}
    if body["metadata"].get("deletionTimestamp"):
        return False
    if status.get("observedGeneration") != body["metadata"].get("generation"):
        return True
    if ready_reason(body) in ("ClusterNotFound", "PolicyDenied"):
        return True  # the cluster appeared (or its bootstrap owner changed): decide again
    if backend_of(status, rt.role_backend) is RoleBackend.MANAGED_ROLES:
        namespace, _, cluster_name, role = _names(body)
        return managed_role_entry(views.cluster(namespace, cluster_name), role) is None
    return False


# ------------------------------------------------------------------------------------- deletion

RETAIN_HINT = "set spec.reclaimPolicy: retain to keep the role in PostgreSQL and finish the deletion"


async def finalize(rt: Runtime, body: Json, views: CnpgViews) -> None:
    """Drop (or release) the role, wait for CNPG to confirm, then remove the entry and the Secret.

    Waiting is event-driven (the observers wake us on every change of the DatabaseRole or Cluster)
    and bounded (run_deletion hands back to Kopf's retry, which brings the current spec: switching
    spec.reclaimPolicy to retain releases a drop that PostgreSQL refuses).
    """
    async def step(current: Json) -> Verdict | None:
        return await _finalize_step(rt, current, views)

    async def done(current: Json) -> None:
        await _delete_secret(rt, current)
        log.info("PgRoleRequest %s/%s: cleanup complete", current["metadata"]["namespace"],
                 current["metadata"]["name"])

    await run_deletion(rt, ROLE_REQUESTS, body, step, done)


async def _finalize_step(rt: Runtime, body: Json, views: CnpgViews) -> Verdict | None:
    """One step of the deletion; None when nothing of ours is left but the Secret.

    Only what this request produced (by UID) is dropped or released; a request refused as
    Conflict, PolicyDenied, Invalid or ClusterNotFound produced nothing and finishes at once.
    """
    namespace, name, cluster_name, role = _names(body)
    uid = body["metadata"]["uid"]
    drop = str((body.get("spec") or {}).get("reclaimPolicy") or "delete") == "delete"
    cluster = views.cluster(namespace, cluster_name)
    # The index may not show a DatabaseRole produced a moment ago (a request deleted right after its first
    # reconcile): ask the API before concluding that nothing of ours is left to release.
    database_role = views.database_role(namespace, name) or await rt.api.get(DATABASE_ROLES, namespace, name)
    if database_role is not None and owned_by(database_role, uid):
        return await _release_database_role(rt, database_role, drop, cluster is not None, role)
    edit, verdict = managed_entry_release_plan(cluster, role, uid, drop)
    if edit is not None:
        await rt.managed_roles.edit(namespace, cluster_name, edit)
    return verdict


def managed_entry_release_plan(cluster: Mapping[str, Any] | None, role: str, uid: str,
                               drop: bool) -> tuple[Edit | None, Verdict | None]:
    """Pure: the next edit of our managed.roles entry during deletion, and the verdict after it
    (None: nothing of ours is left). An entry recorded under another UID is never touched."""
    entry = managed_role_entry(cluster, role)
    if cluster is None or entry is None or role_owners(cluster).get(role) != uid:
        return None, None
    if not drop or managed_role_dropped(cluster, role):
        return _remove(role, uid), None
    if entry.get("ensure") != "absent":
        return _mark_absent(role, uid), Verdict(False, "Deleting", f"asked CNPG to drop role {role}")
    blocker = managed_role_blocker(cluster, role)
    if blocker:
        return None, Verdict(False, "Blocked", f"CNPG cannot drop role {role}: {blocker}; {RETAIN_HINT}")
    return None, Verdict(False, "Deleting", f"waiting for CNPG to drop role {role}")


def release_wording(role: str, drop: bool) -> ReleaseWording:
    verb = "drop" if drop else "release"
    return ReleaseWording(asked=f"asked CNPG to {verb} role {role}", cannot=f"CNPG cannot drop role {role}",
                          waiting=f"waiting for CNPG to {verb} role {role}", hint=RETAIN_HINT)


async def _release_database_role(rt: Runtime, database_role: Json, drop: bool, cluster_exists: bool,
                                 role: str) -> Verdict | None:
    # also while CNPG is already deleting it: a switch to retain releases a blocked drop
    plan = release_plan(database_role, policy_field="databaseRoleReclaimPolicy",
                        policy="delete" if drop else "retain", cluster_exists=cluster_exists,
                        wording=release_wording(role, drop))
    return await apply_release(rt, DATABASE_ROLES, database_role, plan)


async def _delete_secret(rt: Runtime, body: Json) -> None:
    namespace, _, cluster_name, role = _names(body)
    secret_name = role_secret_name(cluster_name, role)
    secret = await rt.api.get(SECRETS, namespace, secret_name)
    if secret is not None and owned_by(secret, body["metadata"]["uid"]):
        await rt.api.delete(SECRETS, namespace, secret_name)
