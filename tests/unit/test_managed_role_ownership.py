"""Ownership of managed.roles entries by request UID (the record on the Cluster), without I/O."""

from __future__ import annotations

import json

import kopf
from kopf._cogs.structs.references import Resource

from cnpg_mcp_operator.handlers.cnpg_observers import select_our_secrets
from cnpg_mcp_operator.handlers.role_requests import _mark_absent, _remove, _upsert
from cnpg_mcp_operator.managed_roles import (
    OWNERS_ANNOTATION,
    ManagedRoles,
    managed_roles_of,
    owners_annotation_value,
    role_owners,
)

FIRST, SECOND = "uid-first", "uid-second"
SECRET = "cnpg-pg-user-shared"


def entry(role: str = "shared", **extra: object) -> dict[str, object]:
    return {"name": role, "ensure": "present", "passwordSecret": {"name": SECRET}, **extra}


def test_the_owner_record_round_trips_through_the_annotation() -> None:
    value = owners_annotation_value({"b": SECOND, "a": FIRST})
    assert value is not None
    cluster = {"metadata": {"annotations": {OWNERS_ANNOTATION: value}},
               "spec": {"managed": {"roles": [entry()]}}}
    assert role_owners(cluster) == {"a": FIRST, "b": SECOND}
    assert managed_roles_of(cluster) == ManagedRoles([entry()], {"a": FIRST, "b": SECOND})
    assert owners_annotation_value({}) is None  # nothing owned: the annotation goes away


def test_an_unreadable_record_owns_nothing() -> None:
    for raw in ("{not json", json.dumps(["shared"]), ""):
        assert role_owners({"metadata": {"annotations": {OWNERS_ANNOTATION: raw}}}) == {}


def test_a_duplicate_request_cannot_take_over_mark_or_remove_another_requests_entry() -> None:
    state, outcome = _upsert(entry(), FIRST, SECRET)(ManagedRoles([], {}))
    assert outcome == "written" and state.owners == {"shared": FIRST}

    same_secret_name = entry(login=False)  # a duplicate derives the same Secret name: names prove nothing
    assert _upsert(same_secret_name, SECOND, SECRET)(state) == (state, "conflict")
    assert _mark_absent("shared", SECOND)(state) == (state, "not-ours")
    assert _remove("shared", SECOND)(state) == (state, "not-ours")

    marked, outcome = _mark_absent("shared", FIRST)(state)
    assert outcome == "marked" and marked.entry("shared") == {**entry(), "ensure": "absent"}
    removed, outcome = _remove("shared", FIRST)(marked)
    assert outcome == "removed" and removed == ManagedRoles([], {})


def test_an_entry_from_before_ownership_records_is_adopted_only_with_its_secret() -> None:
    legacy = ManagedRoles([entry()], {})
    adopted, outcome = _upsert(entry(), FIRST, SECRET)(legacy)
    assert outcome == "written" and adopted.owners == {"shared": FIRST}  # the record is the write
    foreign = ManagedRoles([entry(passwordSecret={"name": "someone-elses"})], {})
    assert _upsert(entry(), FIRST, SECRET)(foreign) == (foreign, "conflict")


def test_the_secret_watch_asks_the_api_server_for_our_secrets_only() -> None:
    settings = kopf.OperatorSettings()
    select_our_secrets(settings)
    secrets = Resource(group="", version="v1", plural="secrets", kind="Secret", namespaced=True)
    others = Resource(group="", version="v1", plural="configmaps", kind="ConfigMap", namespaced=True)
    assert settings.watching.label_selectors.collect(secrets) == [
        "app.kubernetes.io/managed-by=cnpg-mcp,cnpg-mcp.io/request"]
    assert settings.watching.label_selectors.collect(others) == []
