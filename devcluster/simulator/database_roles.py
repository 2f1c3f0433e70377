"""DatabaseRole (postgresql.cnpg.io/v1): one PostgreSQL role, CNPG's finalizer and reclaim policy."""

from __future__ import annotations

import logging
from typing import ClassVar

import psycopg

from devcluster.simulator.clusters import managed_inline
from devcluster.simulator.common import (
    ERR_MANAGED_BY_CLUSTER,
    ROLE_FINALIZER,
    Json,
    Key,
    crd_status,
    pg_error_text,
)
from devcluster.simulator.context import OwnKindHandler
from devcluster.simulator.roles import DesiredRole, apply_role, desired_role, drop_role

log = logging.getLogger("cnpg-simulator")
PLURAL = "databaseroles"
DATABASE_ROLE_WORKERS = 4


class DatabaseRoleHandler(OwnKindHandler):
    kind: ClassVar[str] = "databaserole"
    plural: ClassVar[str] = PLURAL
    # Its own queue and workers: a burst of role intents is applied in parallel (issue #14), not behind
    # Clusters and Databases. Each worker has its own PostgreSQL connection (pg.py).
    worker_group: ClassVar[str] = "databaseroles"
    workers: ClassVar[int] = DATABASE_ROLE_WORKERS

    def reconcile(self, namespace: str, name: str) -> bool:
        key: Key = (self.kind, namespace, name)
        role = self._ctx.kube.get_observed("databaseroles", namespace, name)
        if role is None:
            self._ctx.secret_users.remember(key, [])
            self._ctx.cluster_users.remember(key, [])
            return True
        spec = role.get("spec") or {}
        desired = desired_role(spec)
        cluster_name = (spec.get("cluster") or {}).get("name", "")
        self._ctx.cluster_users.remember(key, [cluster_name])
        self._ctx.secret_users.remember(key, [desired.password_secret] if desired.password_secret else [])
        cluster = self._ctx.kube.get_observed("clusters", namespace, cluster_name)
        if role["metadata"].get("deletionTimestamp"):
            return self._release_databaserole(role, desired, cluster)
        self._ctx.kube.set_finalizer("databaseroles", role, ROLE_FINALIZER, present=True)
        generation = int(role["metadata"].get("generation", 1))
        status = role.get("status") or {}
        version: str | None = None
        try:
            if cluster is None:
                raise LookupError(f'cluster "{cluster_name}" not found')
            if desired.ensure == "absent":
                raise LookupError("ensure: absent is not supported for DatabaseRole;"
                                  " delete the resource with databaseRoleReclaimPolicy: delete instead")
            if managed_inline(cluster, desired.name):
                raise LookupError(ERR_MANAGED_BY_CLUSTER)
            password = None
            if desired.password_secret and not desired.disable_password:
                password, version = self._ctx.kube.secret_password(namespace, desired.password_secret)
            apply_role(self._ctx.pg, desired, password, version, status.get("secretResourceVersion"))
            error = None
        except (psycopg.Error, LookupError) as exc:
            error = pg_error_text(exc)
            log.warning("DatabaseRole %s/%s: %s", namespace, name, error)
        extra = {"secretResourceVersion": version} if error is None else None
        self._ctx.kube.patch_status("databaseroles", role, crd_status(generation, error, extra))
        return error is None

    def _release_databaserole(self, role: Json, desired: DesiredRole, cluster: Json | None) -> bool:
        """Deletion: with reclaim policy delete, DROP ROLE (as CNPG: only a role this object applied,
        not one the Cluster manages inline); then remove our finalizer. A failed DROP keeps it."""
        if ROLE_FINALIZER not in (role["metadata"].get("finalizers") or []):
            return True
        spec = role.get("spec") or {}
        was_applied = int((role.get("status") or {}).get("observedGeneration") or 0) > 0
        inline = cluster is not None and managed_inline(cluster, desired.name)
        if spec.get("databaseRoleReclaimPolicy") == "delete" and was_applied and not inline:
            try:
                drop_role(self._ctx.pg, desired.name)
            except psycopg.Error as exc:
                error = pg_error_text(exc)
                log.warning("DatabaseRole %s/%s: cannot drop role: %s", role["metadata"]["namespace"],
                            role["metadata"]["name"], error)
                self._ctx.kube.patch_status("databaseroles", role, {"applied": False, "message": error})
                return False
        self._ctx.kube.set_finalizer("databaseroles", role, ROLE_FINALIZER, present=False)
        return True

