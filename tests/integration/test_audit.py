"""The API server's audit log, with deploy/audit/policy.yaml, on the real control plane.

Intent writes are recorded at RequestResponse (who, what, the stored object), Secret access at Metadata
(who touched which Secret, never its content). Through the impersonating gateway an event names both the
gateway's ServiceAccount (`user`) and the human (`impersonatedUser`); the automation example's Job is
recorded under its own ServiceAccount.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from cnpg_mcp_api import constants
from devcluster.controlplane import ControlPlane, free_port
from mcp_gateway.config import GatewayConfig
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.gateway_helpers import ok
from tests.integration.test_deploy_rbac import NAMESPACE, deployed, kubectl, token_kubeconfig

__all__ = ["deployed"]  # fixture shared with test_deploy_rbac
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "examples" / "automation"
GATEWAY_USER = f"system:serviceaccount:{NAMESPACE}:cnpg-mcp-gateway"
INTENT_RESOURCES = {constants.CLUSTER_REQUEST_PLURAL, constants.ROLE_REQUEST_PLURAL,
                    constants.DATABASE_REQUEST_PLURAL}


def audit_events(control_plane: ControlPlane, needle: str, match: Callable[[dict[str, Any]], bool],
                 *, expect: int = 1, timeout: float = 15.0) -> list[dict[str, Any]]:
    """Audit events (JSON lines holding `needle`) that `match`, once at least `expect` are written."""
    deadline = time.monotonic() + timeout
    while True:
        found = [event for line in control_plane.audit_log.read_text().splitlines() if needle in line
                 for event in [json.loads(line)] if match(event)]
        if len(found) >= expect or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def on(event: dict[str, Any], resource: str, namespace: str, name: str | None = None) -> bool:
    ref = event.get("objectRef") or {}
    return (ref.get("resource"), ref.get("namespace")) == (resource, namespace) and (
        name is None or ref.get("name") == name)


def test_secret_access_is_audited_without_its_content(control_plane: ControlPlane, k8s: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    core.create_namespaced_secret(namespace, {"metadata": {"name": "db-password"},
                                              "stringData": {"password": "s3cr3t-in-audit-test"}})
    core.read_namespaced_secret("db-password", namespace)
    events = audit_events(control_plane, "db-password", lambda e: on(e, "secrets", namespace, "db-password"),
                          expect=2)
    assert {e["verb"] for e in events} == {"create", "get"}
    assert {e["level"] for e in events} == {"Metadata"}
    assert all(e["user"]["username"] == "admin" for e in events)
    written = "\n".join(json.dumps(e) for e in events)
    assert "requestObject" not in written and "responseObject" not in written
    assert "s3cr3t" not in control_plane.audit_log.read_text()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_impersonating_gateway_is_audited_with_both_identities(
    deployed: str, control_plane: ControlPlane, k8s: Any, namespace: str, tmp_path: Path, intents: Intents,
    operator: OperatorProcess, anyio_backend: str,
) -> None:
    """The operator runs too: create_postgres_cluster waits (up to 20 s) for its first answer."""
    from tests.integration.test_gateway_http import serve, session  # noqa: PLC0415

    kubectl(control_plane, "apply", "--server-side", "-k", str(REPO / "deploy" / "overlays" / "impersonating-gateway"))
    client.RbacAuthorizationV1Api(k8s).create_namespaced_role_binding(namespace, {
        "metadata": {"name": "alice-edits-intents"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cnpg-mcp-gateway"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "token:alice"}]})
    tokens = tmp_path / "tokens"
    tokens.write_text("alice-token,alice,dba\n")
    gateway_identity = token_kubeconfig(control_plane, k8s, NAMESPACE, "cnpg-mcp-gateway", tmp_path / "gw")
    config = GatewayConfig(transport="http", port=free_port(), token_file=tokens, impersonate=True,
                           kubeconfig=str(gateway_identity))
    async for url in serve(config, control_plane):
        async with session(url, "alice-token") as mcp:
            ok(await mcp.call_tool("create_postgres_cluster", {"name": "audited-db", "instances": 1,
                                                               "namespace": namespace}))
    # On the intent: the human, as the API server saw the impersonated request.
    created = intents.get(constants.CLUSTER_REQUEST_KIND, namespace, "audited-db")
    assert created is not None
    annotations = created["metadata"]["annotations"]
    assert annotations[constants.REQUESTER_ANNOTATION] == "token:alice"
    assert set(annotations[constants.REQUESTER_GROUPS_ANNOTATION].split(",")) == {"token:dba", "system:authenticated"}
    assert annotations[constants.REQUESTED_BY_ANNOTATION] == "token:alice"
    # In the audit log: the gateway's own identity, and the human it acted for.
    [event] = audit_events(control_plane, "audited-db", lambda e: on(
        e, constants.CLUSTER_REQUEST_PLURAL, namespace, "audited-db") and e["verb"] == "create")
    assert event["user"]["username"] == GATEWAY_USER
    assert event["impersonatedUser"]["username"] == "token:alice"
    assert set(event["impersonatedUser"]["groups"]) == {"token:dba", "system:authenticated"}
    assert event["level"] == "RequestResponse" and event["responseStatus"]["code"] == 201
    assert event["responseObject"]["metadata"]["annotations"][constants.REQUESTER_ANNOTATION] == "token:alice"


def test_automation_example_applies_intents_as_its_own_service_account(
    control_plane: ControlPlane, k8s: Any, namespace: str, tmp_path: Path, intents: Intents
) -> None:
    rendered = yaml.safe_load_all(kubectl(control_plane, "kustomize", str(EXAMPLE)))
    objects = [o for o in rendered if o]
    for obj in objects:
        obj["metadata"]["namespace"] = namespace
        for subject in obj.get("subjects") or []:
            subject["namespace"] = namespace
    manifests = tmp_path / "example.yaml"
    manifests.write_text(yaml.safe_dump_all(objects))
    kubectl(control_plane, "apply", "--server-side", "-f", str(manifests))  # the admin installs the example
    # No pods run here (no kubelet): run the Job's own command with its ServiceAccount's token instead.
    job = next(o for o in objects if o["kind"] == "Job")
    pod = job["spec"]["template"]["spec"]
    account = pod["serviceAccountName"]
    [container] = pod["containers"]
    config_maps = {v["name"]: v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
    mounts = {m["mountPath"]: config_maps[m["name"]] for m in container["volumeMounts"] if m["name"] in config_maps}
    args = list(container["command"][1:])
    applied: list[dict[str, Any]] = []
    for mount_path, config_map in mounts.items():  # the mounted ConfigMaps, as files in a folder of ours
        folder = tmp_path / config_map
        folder.mkdir()
        data = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == config_map)["data"]
        for file_name, text in data.items():
            (folder / file_name).write_text(text)
            applied += [doc for doc in yaml.safe_load_all(text) if doc]
        args = [str(folder) + arg[len(mount_path):] if arg == mount_path or arg.startswith(f"{mount_path}/") else arg
                for arg in args]
    as_job = token_kubeconfig(control_plane, k8s, namespace, account, tmp_path / "job-kubeconfig")
    done = subprocess.run([control_plane.kubectl, "--kubeconfig", str(as_job), "--namespace", namespace, *args],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    # Every intent says who asked: the Job's ServiceAccount, as the API server saw it.
    requester = f"system:serviceaccount:{namespace}:{account}"
    assert {doc["kind"] for doc in applied} == {constants.CLUSTER_REQUEST_KIND, constants.ROLE_REQUEST_KIND,
                                                constants.DATABASE_REQUEST_KIND}
    for doc in applied:
        live = intents.get(doc["kind"], namespace, doc["metadata"]["name"])
        assert live is not None
        annotations = live["metadata"]["annotations"]
        assert annotations[constants.REQUESTER_ANNOTATION] == requester
        assert set(annotations[constants.REQUESTER_GROUPS_ANNOTATION].split(",")) == {
            "system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"}
        # ... and so does the audit log: the apply (server-side: a patch that created the object).
        name = doc["metadata"]["name"]

        def by_the_job(event: dict[str, Any], name: str = name) -> bool:
            return event["user"]["username"] == requester and any(
                on(event, resource, namespace, name) for resource in INTENT_RESOURCES)

        [event] = audit_events(control_plane, name, by_the_job)
        assert event["verb"] == "patch" and "impersonatedUser" not in event
        assert event["level"] == "RequestResponse" and event["responseStatus"]["code"] == 201
        assert event["responseObject"]["metadata"]["annotations"][constants.REQUESTER_ANNOTATION] == requester
