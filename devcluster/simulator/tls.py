"""TLS of the simulated Clusters: what CNPG's certificate machinery provides, on the one real server.

CNPG gives every Cluster a CA Secret `<cluster>-ca` (`ca.crt`, `ca.key`) and serves a certificate
for the cluster's Service names (`<cluster>-rw/-ro/-r`, with `.<namespace>`, `.svc` and
`.svc.cluster.local`). Here one PostgreSQL plays every cluster, so one sandbox CA signs its one
certificate, whose names grow as Clusters appear (re-issued, then pg_reload_conf); each Cluster's
`<cluster>-ca` Secret holds that CA, like CNPG's (including the private key, which is exactly why
nothing of cnpg-mcp may ever copy that Secret whole).
"""

from __future__ import annotations

import base64
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from devcluster.simulator.common import CLUSTER_DOMAIN, CLUSTER_LABEL, Json, owner_reference

if TYPE_CHECKING:
    from devcluster.postgres import PostgresServer

log = logging.getLogger("cnpg-simulator")
CA_SECRET_SUFFIX = "-ca"
SERVICE_SUFFIXES = ("rw", "ro", "r")


def cluster_server_names(namespace: str, name: str) -> set[str]:
    """The names CNPG's server certificate carries for the cluster's Services."""
    names: set[str] = set()
    for suffix in SERVICE_SUFFIXES:
        service = f"{name}-{suffix}"
        names |= {service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
                  f"{service}.{namespace}.svc.{CLUSTER_DOMAIN}"}
    return names


def ca_secret_body(cluster: Mapping[str, Any], ca_cert: bytes, ca_key: bytes) -> Json:
    name, namespace = cluster["metadata"]["name"], cluster["metadata"]["namespace"]
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": f"{name}{CA_SECRET_SUFFIX}", "namespace": namespace,
                     "labels": {CLUSTER_LABEL: name}, "ownerReferences": [owner_reference(cluster)]},
        "data": {"ca.crt": base64.b64encode(ca_cert).decode(), "ca.key": base64.b64encode(ca_key).decode()},
    }


# A TLS handshake carries the whole certificate: with the names of every Cluster a long test session ever
# made, it outgrew what a client accepts ("SSL error: excessive message size", found by the full suite). The
# certificate covers the most recently seen Clusters only; a test's own Clusters are always among them.
MAX_CLUSTERS_NAMED = 32


class ServerNames:
    """The names the shared server's certificate covers; re-issued only when a Cluster adds new ones."""

    def __init__(self, server: PostgresServer) -> None:
        self._server = server
        self._clusters: OrderedDict[tuple[str, str], set[str]] = OrderedDict()
        self._lock = threading.Lock()

    def ensure(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        with self._lock:
            if key in self._clusters:
                self._clusters.move_to_end(key)
                return
            self._clusters[key] = cluster_server_names(namespace, name)
            while len(self._clusters) > MAX_CLUSTERS_NAMED:
                self._clusters.popitem(last=False)
            self._server.serve_tls_names(sorted(set().union(*self._clusters.values())))
        log.info("server certificate re-issued for Cluster %s/%s's Service names", namespace, name)

    def ca_secret(self, cluster: Mapping[str, Any]) -> Json:
        tls = self._server.tls
        return ca_secret_body(cluster, tls.ca_cert.read_bytes(), tls.ca_key.read_bytes())
