"""CloudNativePG's real admission webhooks serve the local control plane (issue #10, item 1).

Every CNPG object written in the integration tier goes through CNPG's own defaulting and
validation, served by CNPG's manager built from the same module version as the CRDs.
"""

from __future__ import annotations

import json
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devcluster import cnpg_webhooks
from devcluster.controlplane import (
    CNPG_MANAGER,
    ControlPlane,
    ControlPlaneError,
    cnpg_module_dir,
    start_cnpg_admission,
)

CNPG = ("postgresql.cnpg.io", "v1")


def _cluster(name: str, namespace: str, parameters: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"instances": 1, "storage": {"size": "1Gi"}}
    if parameters:
        spec["postgresql"] = {"parameters": parameters}
    return {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def _create(k8s: Any, namespace: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        *CNPG, namespace, plural, body)
    return result


def test_a_fixed_parameter_is_rejected_with_cnpgs_message(k8s: Any, namespace: str) -> None:
    with pytest.raises(ApiException) as excinfo:
        _create(k8s, namespace, "clusters", _cluster("fixed-port", namespace, {"port": "5433"}))
    assert excinfo.value.status in (400, 422)
    assert "Can't set fixed configuration parameter" in excinfo.value.body
    assert "port" in excinfo.value.body
    with pytest.raises(ApiException):  # nothing was stored
        client.CustomObjectsApi(k8s).get_namespaced_custom_object(*CNPG, namespace, "clusters", "fixed-port")


def test_the_defaulter_enforces_archive_mode_and_fills_fields_the_crd_leaves_empty(
    k8s: Any, namespace: str
) -> None:
    crd = client.ApiextensionsV1Api(k8s).read_custom_resource_definition("clusters.postgresql.cnpg.io")
    schema = crd.spec.versions[0].schema.open_apiv3_schema.properties["spec"].properties
    assert schema["imageName"].default is None, "the CRD alone must not default imageName"

    _create(k8s, namespace, "clusters", _cluster("defaulted", namespace, {"archive_mode": "off"}))
    stored = client.CustomObjectsApi(k8s).get_namespaced_custom_object(
        *CNPG, namespace, "clusters", "defaulted")
    spec = stored["spec"]
    assert spec["imageName"].startswith("ghcr.io/cloudnative-pg/postgresql:")
    assert spec["bootstrap"]["initdb"]["database"] == "app"
    assert spec["bootstrap"]["initdb"]["owner"] == "app"
    # archive_mode is fixed by CNPG: the defaulter rewrites "off" to "on".
    assert spec["postgresql"]["parameters"]["archive_mode"] == "on"


def test_a_wrongly_typed_field_is_refused_by_cnpgs_mutating_webhook(k8s: Any, namespace: str) -> None:
    """Mutating admission runs before the CRD schema: CNPG cannot decode the object and says so."""
    body = _cluster("wrong-type", namespace)
    body["spec"]["instances"] = "three"
    with pytest.raises(ApiException) as excinfo:
        _create(k8s, namespace, "clusters", body)
    assert excinfo.value.status == 400
    message = json.loads(excinfo.value.body)["message"]
    assert 'admission webhook "mcluster.cnpg.io" denied the request' in message
    assert "spec.instances" in message


def test_other_cnpg_kinds_are_validated_too(k8s: Any, namespace: str) -> None:
    scheduled_backup = {
        "apiVersion": "postgresql.cnpg.io/v1", "kind": "ScheduledBackup",
        "metadata": {"name": "bad-cron", "namespace": namespace},
        "spec": {"schedule": "not a cron", "cluster": {"name": "any"}},
    }
    with pytest.raises(ApiException) as excinfo:
        _create(k8s, namespace, "scheduledbackups", scheduled_backup)
    assert excinfo.value.status in (400, 422)
    assert "schedule" in excinfo.value.body


def test_the_registered_webhooks_are_cnpgs_own_rules_on_loopback(k8s: Any) -> None:
    api = client.AdmissionregistrationV1Api(k8s)
    mutating = api.read_mutating_webhook_configuration(cnpg_webhooks.CONFIGURATION_NAME)
    validating = api.read_validating_webhook_configuration(cnpg_webhooks.CONFIGURATION_NAME)

    def resources(configuration: Any) -> set[str]:
        return {r for w in configuration.webhooks for rule in w.rules for r in rule.resources}

    assert resources(mutating) == {"backups", "clusters", "databases", "scheduledbackups"}
    assert resources(validating) == {"backups", "clusters", "databases", "poolers", "scheduledbackups"}
    for webhook in [*mutating.webhooks, *validating.webhooks]:
        assert webhook.client_config.url.startswith("https://127.0.0.1:")
        assert webhook.client_config.service is None
        assert webhook.failure_policy == "Fail"


def test_configurations_are_built_from_the_modules_manifests() -> None:
    manifests = cnpg_webhooks.read_manifests(cnpg_module_dir())
    built = cnpg_webhooks.webhook_configurations(manifests, "https://127.0.0.1:1234", b"CA")
    paths = {w["clientConfig"]["url"] for c in built for w in c["webhooks"]}
    assert "https://127.0.0.1:1234/mutate-postgresql-cnpg-io-v1-cluster" in paths
    assert "https://127.0.0.1:1234/validate-postgresql-cnpg-io-v1-cluster" in paths
    assert all(w["clientConfig"]["caBundle"] == "Q0E=" for c in built for w in c["webhooks"])


def test_cnpgs_controllers_idle(control_plane: ControlPlane, k8s: Any, namespace: str) -> None:
    """The manager watches a namespace that never exists: it never reconciles a Cluster elsewhere.

    (The CNPG simulator may be running and set the Cluster's status; CNPG's controller would
    create the initdb Job and the PVC, which the simulator never does.)
    """
    core = client.CoreV1Api(k8s)
    with pytest.raises(ApiException) as excinfo:
        core.read_namespace(cnpg_webhooks.IDLE_WATCH_NAMESPACE)
    assert excinfo.value.status == 404
    _create(k8s, namespace, "clusters", _cluster("untouched", namespace))
    time.sleep(3)
    assert client.BatchV1Api(k8s).list_namespaced_job(namespace).items == []
    assert core.list_namespaced_persistent_volume_claim(namespace).items == []
    log = (control_plane.state_dir / f"{CNPG_MANAGER}.log").read_text(errors="replace")
    mentions = [line for line in log.splitlines() if namespace in line]
    assert mentions, "the webhook never saw the Cluster"
    # Only the admission side (logger cluster-resource) saw it; no controller reconciled it.
    assert all('"logger":"cluster-resource"' in line for line in mentions), mentions


def _fake_manager(tmp_path: Path, script: str) -> Path:
    path = tmp_path / "manager"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_start_fails_with_the_managers_log_when_it_exits(
    control_plane: ControlPlane, k8s: Any, tmp_path: Path
) -> None:
    manager = _fake_manager(tmp_path, 'echo "unable to setup PKI infrastructure" >&2; exit 3')
    with pytest.raises(ControlPlaneError) as excinfo:
        start_cnpg_admission(control_plane, manager, detach=False, timeout=10)
    message = str(excinfo.value)
    assert "CloudNativePG manager exited with 3" in message
    assert "unable to setup PKI infrastructure" in message
    # The session's real webhooks are untouched.
    client.AdmissionregistrationV1Api(k8s).read_mutating_webhook_configuration(cnpg_webhooks.CONFIGURATION_NAME)


def test_start_fails_when_the_webhook_server_never_answers(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    manager = _fake_manager(tmp_path, "exec sleep 61.5")
    started = time.monotonic()
    with pytest.raises(ControlPlaneError) as excinfo:
        start_cnpg_admission(control_plane, manager, detach=False, timeout=2)
    assert "did not answer" in str(excinfo.value) and "/readyz" in str(excinfo.value)
    assert time.monotonic() - started < 15
    still_running = subprocess.run(["pgrep", "-f", "sleep 61.5"], capture_output=True, check=False)
    assert still_running.returncode == 1, "the manager that never answered was not stopped"
