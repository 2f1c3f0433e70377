"""Namespace inference, as in the original server: service account → kube context → "default"."""

from __future__ import annotations

import os
from pathlib import Path

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def infer_default_namespace(kubeconfig: str | None = None) -> str:
    try:
        namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        if namespace:
            return namespace
    except OSError:
        pass
    try:
        from kubernetes import config  # noqa: PLC0415

        _, active = config.list_kube_config_contexts(config_file=kubeconfig or os.environ.get("KUBECONFIG"))
        namespace = str((active or {}).get("context", {}).get("namespace") or "")
    except Exception:  # no kubeconfig or no current context: use the default
        namespace = ""
    return namespace or "default"
