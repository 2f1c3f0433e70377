"""CloudNativePG's real admission webhooks, served by CNPG's own manager next to the local control plane.

The manager (`manager controller`, built from CNPG's Go module by build-binaries.sh) runs out of
cluster with the admin kubeconfig. Two environment variables make that work:

- WEBHOOK_CERT_DIR: the manager serves the certificate we generate and skips its own PKI setup,
  which would otherwise look for its Deployment and exit (`ensurePKI` in
  internal/cmd/manager/controller/controller.go). It then never touches webhook configurations,
  so ours are registered here under our own names, pointing at `https://127.0.0.1:<port>`.
- WATCH_NAMESPACE: a namespace that never exists, so CNPG's controllers have no Cluster to act
  on and never fight the CNPG simulator (the namespaced caches are scoped by pkg/multicache).

The webhook rules and paths come from the same module's config/webhook/manifests.yaml, so they
are CNPG's own. Readiness means: a dry-run Cluster comes back defaulted by the mutating webhook.
"""

from __future__ import annotations

import base64
import copy
import os
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

# Never created: CNPG's namespaced controllers watch it and therefore see nothing.
IDLE_WATCH_NAMESPACE = "cnpg-webhooks-only-never-created"
CONFIGURATION_NAME = "cnpg-mcp-dev-cnpg-webhooks"
PROBE_NAMESPACE = "default"
ADMISSION_TIMEOUT = float(os.environ.get("CNPG_MCP_WEBHOOK_TIMEOUT", "60"))


def manager_environment(kubeconfig: Path, cert_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "WEBHOOK_CERT_DIR": str(cert_dir),
        "WATCH_NAMESPACE": IDLE_WATCH_NAMESPACE,
    }


def manager_arguments(manager: Path, port: int) -> list[str]:
    # --metrics-bind-address=0 turns off the default :8080 listener (parallel sandboxes would clash).
    return [str(manager), "controller", f"--webhook-port={port}", "--metrics-bind-address=0"]


def webhook_configurations(manifests: str, base_url: str, ca_bundle: bytes) -> list[dict[str, Any]]:
    """CNPG's webhook configurations, with each service reference turned into a URL on `base_url`.

    Rules, failure policy and side effects stay as CNPG declares them.
    """
    configurations: list[dict[str, Any]] = []
    encoded_ca = base64.b64encode(ca_bundle).decode()
    for document in yaml.safe_load_all(manifests):
        if not isinstance(document, dict) or not document.get("webhooks"):
            continue
        configuration = copy.deepcopy(document)
        configuration["metadata"] = {"name": CONFIGURATION_NAME}
        for webhook in configuration["webhooks"]:
            path = webhook["clientConfig"]["service"]["path"]
            webhook["clientConfig"] = {"url": f"{base_url}{path}", "caBundle": encoded_ca}
        configurations.append(configuration)
    kinds = sorted(c["kind"] for c in configurations)
    if kinds != ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]:
        raise ValueError(f"expected one mutating and one validating configuration, found {kinds}")
    return configurations


def probe_cluster() -> dict[str, Any]:
    """A minimal valid Cluster; the CRD leaves `imageName` empty, CNPG's defaulter fills it in."""
    return {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": "cnpg-webhooks-readiness-probe", "namespace": PROBE_NAMESPACE},
        "spec": {"instances": 1, "storage": {"size": "1Gi"}},
    }


def register(api_client: Any, configurations: list[dict[str, Any]]) -> None:
    """Create or replace the webhook configurations (a restarted manager listens on a new port)."""
    from kubernetes import client  # noqa: PLC0415
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

    api = client.AdmissionregistrationV1Api(api_client)
    for configuration in configurations:
        mutating = configuration["kind"] == "MutatingWebhookConfiguration"
        create = (api.create_mutating_webhook_configuration if mutating
                  else api.create_validating_webhook_configuration)
        delete = (api.delete_mutating_webhook_configuration if mutating
                  else api.delete_validating_webhook_configuration)
        try:
            delete(CONFIGURATION_NAME)
        except ApiException as exc:
            if exc.status != 404:
                raise
        create(body=configuration)


def unregister(api_client: Any) -> None:
    """Remove the configurations, so writes do not fail while the manager is down (failurePolicy Fail)."""
    from kubernetes import client  # noqa: PLC0415
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

    api = client.AdmissionregistrationV1Api(api_client)
    for delete in (api.delete_mutating_webhook_configuration, api.delete_validating_webhook_configuration):
        try:
            delete(CONFIGURATION_NAME)
        except ApiException as exc:
            if exc.status != 404:
                raise


def admission_is_served(api_client: Any) -> tuple[bool, str]:
    """Dry-run a Cluster create: served when CNPG's defaulter has filled in `spec.imageName`."""
    from kubernetes import client  # noqa: PLC0415
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

    try:
        result = client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            "postgresql.cnpg.io", "v1", PROBE_NAMESPACE, "clusters", probe_cluster(), dry_run="All"
        )
    except ApiException as exc:
        return False, f"dry-run Cluster create failed: {exc.status} {exc.reason}: {exc.body}"
    if result.get("spec", {}).get("imageName"):
        return True, ""
    return False, "dry-run Cluster create was not defaulted (the apiserver has not picked up the webhooks yet)"


def wait_readyz(base_url: str, ca_cert: Path, process: subprocess.Popen[bytes], log_tail: Callable[[], str],
                timeout: float) -> None:
    """Wait for the manager's /readyz on the webhook port; fail at once if the manager exits."""
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    context = ssl.create_default_context(cafile=str(ca_cert))
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise WebhookStartError(
                f"the CloudNativePG manager exited with {process.returncode} during start:\n{log_tail()}"
            )
        try:
            with urllib.request.urlopen(f"{base_url}/readyz", timeout=2, context=context) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise WebhookStartError(
        f"the CloudNativePG webhook server did not answer {base_url}/readyz within {timeout:.0f}s "
        f"({last}):\n{log_tail()}"
    )


def wait_admission(api_client: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    reason = ""
    while time.monotonic() < deadline:
        served, reason = admission_is_served(api_client)
        if served:
            return
        time.sleep(0.2)
    raise WebhookStartError(f"CloudNativePG admission is not served after {timeout:.0f}s: {reason}")


class WebhookStartError(RuntimeError):
    """CNPG's webhook server did not come up; the message says why (with the manager's log tail)."""


def read_manifests(module_dir: Path) -> str:
    path = module_dir / "config" / "webhook" / "manifests.yaml"
    if not path.is_file():
        raise WebhookStartError(f"CloudNativePG's webhook manifests are missing: {path}")
    return path.read_text()
