"""Proof that the test substrate is a real Kubernetes API server, not a fake."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from devcluster.controlplane import SERVICE_CLUSTER_IP_RANGE, ControlPlane


def _wait_deleted(read: Callable[[], object], timeout: float = 90.0) -> None:
    """Poll `read` until the API answers 404 (the GC and namespace controller work asynchronously)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            read()
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        time.sleep(0.2)
    raise AssertionError(f"still present after {timeout}s")


def test_watch_sees_an_event(k8s: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    seen: list[tuple[str, str]] = []
    started = threading.Event()

    def run() -> None:
        stream = watch.Watch()
        started.set()
        for event in stream.stream(core.list_namespaced_config_map, namespace, timeout_seconds=20):
            seen.append((event["type"], event["object"].metadata.name))
            if event["object"].metadata.name == "watched":
                stream.stop()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait()
    time.sleep(0.5)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "watched"}, "data": {"k": "v"}})
    thread.join(timeout=25)
    assert ("ADDED", "watched") in seen


def test_stale_resource_version_gets_409(k8s: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    created = core.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}, "data": {"v": "1"}})
    stale_version = created.metadata.resource_version
    core.patch_namespaced_config_map("cm", namespace, {"data": {"v": "2"}})
    with pytest.raises(ApiException) as excinfo:
        core.replace_namespaced_config_map(
            "cm", namespace,
            {"metadata": {"name": "cm", "resourceVersion": stale_version}, "data": {"v": "3"}},
        )
    assert excinfo.value.status == 409
    assert core.read_namespaced_config_map("cm", namespace).data == {"v": "2"}


def test_owned_object_is_garbage_collected(k8s: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    core.create_namespaced_secret(namespace, {
        "metadata": {"name": "owned", "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid,
        }]},
        "stringData": {"k": "v"},
    })
    core.delete_namespaced_config_map("owner", namespace)

    _wait_deleted(lambda: core.read_namespaced_secret("owned", namespace))


def test_owned_custom_resource_is_garbage_collected(k8s: Any, namespace: str) -> None:
    """The GC knows the CNPG kinds too (it started after the CRDs were installed)."""
    core = client.CoreV1Api(k8s)
    custom = client.CustomObjectsApi(k8s)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    custom.create_namespaced_custom_object("postgresql.cnpg.io", "v1", namespace, "databases", {
        "apiVersion": "postgresql.cnpg.io/v1", "kind": "Database",
        "metadata": {"name": "db", "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid,
        }]},
        "spec": {"name": "db", "owner": "app", "cluster": {"name": "c"}},
    })
    core.delete_namespaced_config_map("owner", namespace)

    _wait_deleted(
        lambda: custom.get_namespaced_custom_object("postgresql.cnpg.io", "v1", namespace, "databases", "db")
    )


def test_namespace_finishes_deleting(k8s: Any) -> None:
    core = client.CoreV1Api(k8s)
    core.create_namespace({"metadata": {"name": "doomed"}})
    core.create_namespaced_config_map("doomed", {"metadata": {"name": "inside"}})
    core.delete_namespace("doomed")

    _wait_deleted(lambda: core.read_namespace("doomed"))


def test_cnpg_crd_rejects_an_invalid_cluster(k8s: Any, namespace: str) -> None:
    # Well-typed but out of the schema's bounds: CNPG's mutating webhook (which runs first) decodes
    # it, then the CRD schema refuses it. A wrongly typed value never gets this far (see
    # test_cnpg_webhooks.py).
    custom = client.CustomObjectsApi(k8s)
    with pytest.raises(ApiException) as excinfo:
        custom.create_namespaced_custom_object("postgresql.cnpg.io", "v1", namespace, "clusters", {
            "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
            "metadata": {"name": "bad"},
            "spec": {"instances": 0, "storage": {"size": "1Gi"}},
        })
    assert excinfo.value.status == 422
    assert "spec.instances" in str(excinfo.value.body)


def test_rbac_denies_a_token_without_rights(k8s: Any, namespace: str, control_plane: ControlPlane) -> None:
    core = client.CoreV1Api(k8s)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    token = core.create_namespaced_service_account_token(
        "nobody", namespace, {"spec": {"expirationSeconds": 600}}
    ).status.token
    configuration = client.Configuration()
    configuration.host = control_plane.server
    configuration.ssl_ca_cert = str(control_plane.ca_file)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(configuration) as unprivileged:
        with pytest.raises(ApiException) as excinfo:
            client.CoreV1Api(unprivileged).list_namespaced_secret(namespace)
        assert excinfo.value.status == 403
        assert f"system:serviceaccount:{namespace}:nobody" in str(excinfo.value.body)
        # Authenticated (not 401): the token is real, only the authorization is missing.
        client.VersionApi(unprivileged).get_code()


def test_service_ips_come_from_a_range_for_5000_clusters(k8s: Any, namespace: str) -> None:
    """Every CNPG Cluster has 3 Services (rw, ro, r): 5,000 clusters need 15,000 ClusterIPs."""
    service_range = ipaddress.ip_network(SERVICE_CLUSTER_IP_RANGE)
    assert service_range.num_addresses - 2 >= 5000 * 3
    service = client.CoreV1Api(k8s).create_namespaced_service(namespace, {
        "metadata": {"name": "cluster-rw"},
        "spec": {"ports": [{"port": 5432}], "selector": {"app": "x"}},
    })
    allocated = ipaddress.ip_address(service.spec.cluster_ip)
    assert allocated in service_range
    assert allocated not in ipaddress.ip_network("10.0.0.0/24")  # the former, 254-address range
