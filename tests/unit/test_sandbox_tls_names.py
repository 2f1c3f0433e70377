"""The sandbox's one server certificate stays small enough for a TLS handshake however many Clusters a session
makes (found by the full suite: 'SSL error: excessive message size')."""

from __future__ import annotations

from typing import Any

from devcluster.simulator.tls import MAX_CLUSTERS_NAMED, ServerNames, cluster_server_names


class Server:
    def __init__(self) -> None:
        self.issued: list[list[str]] = []

    def serve_tls_names(self, names: list[str]) -> None:
        self.issued.append(names)


def test_the_certificate_names_only_the_most_recent_clusters() -> None:
    server = Server()
    names = ServerNames(server)  # type: ignore[arg-type]
    for i in range(MAX_CLUSTERS_NAMED * 3):
        names.ensure(f"ns{i}", f"db{i}")
    last: Any = set(server.issued[-1])
    assert len(last) == MAX_CLUSTERS_NAMED * len(cluster_server_names("ns0", "db0"))
    assert cluster_server_names(f"ns{MAX_CLUSTERS_NAMED * 3 - 1}", f"db{MAX_CLUSTERS_NAMED * 3 - 1}") <= last
    assert not cluster_server_names("ns0", "db0") & last


def test_a_known_cluster_is_not_reissued() -> None:
    server = Server()
    names = ServerNames(server)  # type: ignore[arg-type]
    names.ensure("ns", "db")
    names.ensure("ns", "db")
    assert len(server.issued) == 1
