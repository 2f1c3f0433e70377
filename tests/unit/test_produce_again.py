"""The one rule for requests that produce one CNPG object: when a CNPG event makes them produce again."""

from __future__ import annotations

from typing import Any

from cnpg_mcp_operator.handlers.common import produce_again


def request(generation: int = 2, observed: int = 2, reason: str | None = "Applied",
            deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"generation": generation, **({"deletionTimestamp": "now"} if deleting else {})}
    return {"metadata": meta, "status": {"observedGeneration": observed,
                                         "conditions": [{"type": "Ready", "status": "True", "reason": reason}]}}


def test_converged_request_with_its_object_is_left_alone() -> None:
    assert not produce_again(request(), {"kind": "Pooler"}, ("ClusterNotFound",))


def test_missing_object_new_spec_or_liftable_refusal_produce_again() -> None:
    assert produce_again(request(), None, ())
    assert produce_again(request(generation=3), {"kind": "Pooler"}, ())
    assert produce_again(request(reason="ClusterNotFound"), {"kind": "Pooler"}, ("ClusterNotFound",))
    assert not produce_again(request(reason="Conflict"), {"kind": "Pooler"}, ("ClusterNotFound",))


def test_a_request_being_deleted_never_produces() -> None:
    assert not produce_again(request(deleting=True), None, ("ClusterNotFound",))
