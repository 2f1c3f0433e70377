"""deploy/'s operator RBAC for backups, on the real API server: exactly the new rights, and the backup
flows work with the operator running as its ServiceAccount."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes import client

from devcluster.controlplane import ControlPlane
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.test_deploy_rbac import NAMESPACE, PEERING, deployed, rbac_denials, token_kubeconfig
from tests.integration.test_operator_backups import (
    BACKUP_KIND,
    CNPG,
    SCHEDULE_KIND,
    STORE_KIND,
    get,
    store_spec,
)
from tests.integration.test_operator_roles import make_cluster, unique, wait_until

__all__ = ["deployed"]  # the module fixture, shared with test_deploy_rbac
OPERATOR_USER = f"system:serviceaccount:{NAMESPACE}:cnpg-mcp-operator"


def allowed(k8s: Any, group: str, resource: str, verb: str, subresource: str = "") -> bool:
    review = client.AuthorizationV1Api(k8s).create_subject_access_review({
        "spec": {"user": OPERATOR_USER, "groups": ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}"],
                 "resourceAttributes": {"group": group, "resource": resource, "verb": verb,
                                        "subresource": subresource, "namespace": "any"}}})
    return bool(review.status.allowed)


GRANTED = [
    *[("cnpg-mcp.io", plural, verb, "") for plural in ("pgbackupstorerequests", "pgbackuprequests",
                                                        "pgbackupschedulerequests")
      for verb in ("get", "list", "watch", "patch")],
    *[("cnpg-mcp.io", plural, verb, sub) for plural in ("pgbackupstorerequests", "pgbackuprequests",
                                                         "pgbackupschedulerequests")
      for verb, sub in (("patch", "status"), ("update", "finalizers"))],
    ("cnpg-mcp.io", "pgbackuprequests", "delete", ""),
    *[("postgresql.cnpg.io", "backups", verb, "") for verb in ("get", "list", "watch", "create")],
    *[("postgresql.cnpg.io", "scheduledbackups", verb, "") for verb in ("get", "list", "watch", "create", "patch")],
    *[("barmancloud.cnpg.io", "objectstores", verb, "") for verb in ("get", "list", "watch", "create", "patch")],
]
NOT_GRANTED = [
    ("cnpg-mcp.io", "pgbackupstorerequests", "delete", ""),  # only a finished backup request deletes itself
    ("cnpg-mcp.io", "pgbackupschedulerequests", "create", ""),
    ("postgresql.cnpg.io", "backups", "patch", ""),  # immutable
    ("postgresql.cnpg.io", "backups", "delete", ""),  # deleting backups is the user's call
    ("postgresql.cnpg.io", "scheduledbackups", "delete", ""),  # garbage-collected with the request
    ("barmancloud.cnpg.io", "objectstores", "delete", ""),
    ("barmancloud.cnpg.io", "objectstores", "patch", "status"),  # the plugin's to write
    ("postgresql.cnpg.io", "backups", "patch", "status"),
]


def test_operator_has_exactly_the_backup_rights(deployed: str, k8s: Any) -> None:
    missing = [r for r in GRANTED if not allowed(k8s, *r[:3], subresource=r[3])]
    extra = [r for r in NOT_GRANTED if allowed(k8s, *r[:3], subresource=r[3])]
    assert not missing and not extra, f"missing {missing}; not wanted {extra}"


def test_backup_flows_as_the_operator_service_account(deployed: str, control_plane: ControlPlane, k8s: Any,
                                                      namespace: str, operator: OperatorProcess, intents: Intents,
                                                      tmp_path: Path) -> None:
    operator_config = token_kubeconfig(control_plane, k8s, NAMESPACE, "cnpg-mcp-operator", tmp_path / "op")
    operator.stop()  # one operator at a time
    least = OperatorProcess(operator_config, tmp_path / "operator-sa.log", ["--all-namespaces", f"--peering={PEERING}"])
    try:
        least.start()
        cluster = make_cluster(intents, namespace)
        intents.create(STORE_KIND, namespace, "store", store_spec(cluster))
        intents.wait_for(STORE_KIND, namespace, "store", lambda o: (o.get("status") or {}).get("archiving") is True,
                         "archiving")
        intents.wait_ready(STORE_KIND, namespace, "store")

        name = unique("b-")
        intents.create(BACKUP_KIND, namespace, name, {"cluster": cluster, "ttlSecondsAfterFinished": 1})
        wait_until(lambda: get(k8s, CNPG, namespace, "backups", name) is not None, "Backup created")
        intents.wait_gone(BACKUP_KIND, namespace, name, timeout=30)
        assert get(k8s, CNPG, namespace, "backups", name) is not None

        intents.create(SCHEDULE_KIND, namespace, "daily", {"cluster": cluster, "schedule": "0 0 2 * * *"})
        wait_until(lambda: get(k8s, CNPG, namespace, "scheduledbackups", "daily") is not None, "scheduled")
        intents.patch_spec(SCHEDULE_KIND, namespace, "daily", {"suspend": True})
        wait_until(lambda: (get(k8s, CNPG, namespace, "scheduledbackups", "daily") or {})["spec"]["suspend"] is True,
                   "suspended")
        for kind, obj in ((SCHEDULE_KIND, "daily"), (STORE_KIND, "store")):
            intents.delete(kind, namespace, obj)
            intents.wait_gone(kind, namespace, obj)
        log = least.log_since_start()
        assert not rbac_denials(log), log[-3000:]
    finally:
        least.stop()
        operator.start()
