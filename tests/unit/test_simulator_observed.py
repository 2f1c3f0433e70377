"""The simulator keeps what its watches show (Kube.observe): a DatabaseRole, its Cluster and its Secret are
read from there instead of three GETs per reconcile (issue #14); an older event never replaces a newer
object, a deleted one is forgotten, a miss asks the API."""

from __future__ import annotations

import threading
from typing import Any

from devcluster.simulator.kube import Kube

Json = dict[str, Any]


def kube_without_api() -> tuple[Kube, list[tuple[str, str, str]]]:
    kube = Kube.__new__(Kube)  # no API client: get() is replaced below
    kube._own_writes, kube._own_lock = {}, threading.Lock()
    kube._seen, kube._seen_lock = {}, threading.Lock()
    asked: list[tuple[str, str, str]] = []

    def get(plural: str, namespace: str, name: str) -> Json | None:
        asked.append((plural, namespace, name))
        return None

    kube.get = get  # type: ignore[method-assign]
    return kube, asked


def role(version: str, applied: bool = False) -> Json:
    return {"metadata": {"namespace": "t", "name": "r", "resourceVersion": version}, "status": {"applied": applied}}


def test_the_newest_object_wins_and_a_miss_asks_the_api() -> None:
    kube, asked = kube_without_api()
    kube.observe("databaseroles", "ADDED", role("5"))
    kube.observe("databaseroles", "MODIFIED", role("7", applied=True))
    kube.observe("databaseroles", "MODIFIED", role("6"))  # late: older than what is kept
    assert (kube.get_observed("databaseroles", "t", "r") or {})["status"] == {"applied": True}
    assert asked == []
    kube.observe("databaseroles", "DELETED", role("8"))
    assert kube.get_observed("databaseroles", "t", "r") is None
    assert asked == [("databaseroles", "t", "r")]


def test_the_simulators_own_patch_updates_the_kept_object_in_place() -> None:
    kube, _ = kube_without_api()
    kube.observe("databaseroles", "ADDED", role("5"))
    kept = kube.get_observed("databaseroles", "t", "r") or {}
    kept["metadata"] = {**kept["metadata"], "resourceVersion": "9"}  # what patch_status does with the answer
    kube.observe("databaseroles", "MODIFIED", role("6"))  # the watch catching up
    assert (kube.get_observed("databaseroles", "t", "r") or {})["metadata"]["resourceVersion"] == "9"
