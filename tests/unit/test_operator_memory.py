"""The operator's memory at scale (docs/performance.md, pass 3): what its indexes keep and how the
process sets up its allocator; without Kopf running or an API server."""

from __future__ import annotations

import asyncio
import ctypes.util
import inspect
import json
import platform
from typing import Any

import kopf
import pytest

from cnpg_mcp_operator import __main__ as entrypoint
from cnpg_mcp_operator.handlers import cnpg_observers
from cnpg_mcp_operator.handlers.intents import INTENT_KINDS
from cnpg_mcp_operator.handlers.kinds import register_intent_kind
from cnpg_mcp_operator.registry import REGISTRY
from cnpg_mcp_operator.views import project


def _intent(kind: str, resource_version: str) -> kopf.Body:
    raw: Any = {"apiVersion": "cnpg-mcp.io/v1alpha1", "kind": kind, "metadata": {
        "name": "x", "namespace": "ns", "uid": "u", "resourceVersion": resource_version, "managedFields": [{}]},
        "spec": {"cluster": "pg", "roleName": "x"}, "status": {"conditions": [{"type": "Ready"}]}}
    return kopf.Body(raw)


def _index_entries(registry: kopf.OperatorRegistry, body: kopf.Body) -> dict[str, Any]:
    entries = {}
    for handler in registry._indexing.get_all_handlers():
        fn: Any = handler.fn
        ((_, value),) = asyncio.run(fn(body=body, namespace="ns", name="x", spec=body["spec"])).items()
        entries[str(handler.id)] = value
    return entries


def test_every_index_function_runs_on_the_event_loop() -> None:
    # Kopf sends a plain function to its thread pool: one thread hop per object and index at start-up,
    # and the projection allocated in that thread's malloc arena.
    handlers = list(REGISTRY._indexing.get_all_handlers())
    assert {h.id for h in handlers} >= {index for _, index, _, _ in cnpg_observers.CNPG_INDEXES}
    assert all(inspect.iscoroutinefunction(h.fn) for h in handlers)


@pytest.mark.parametrize("kind", [k for k in INTENT_KINDS if k.by_cluster], ids=lambda k: k.name)
def test_both_indexes_of_a_kind_hold_one_projection_per_version(kind: Any) -> None:
    registry = kopf.OperatorRegistry()
    register_intent_kind(kind, registry)
    first = _index_entries(registry, _intent(kind.resource.kind, "1"))
    by_name, by_cluster = first[kind.index], first[kind.cluster_index]
    assert by_name is by_cluster and "managedFields" not in by_name["metadata"]
    newer = _index_entries(registry, _intent(kind.resource.kind, "2"))
    assert newer[kind.index] is not by_name and newer[kind.index]["metadata"]["resourceVersion"] == "2"
    assert by_name["metadata"]["resourceVersion"] == "1"  # the older entry is left as it was


def test_projections_share_their_keys() -> None:
    # Two documents decoded apart have distinct key strings; their projections keep one copy.
    bodies: list[dict[str, Any]] = [json.loads(json.dumps(
        {"metadata": {"name": n, "namespace": "ns"}, "spec": {"instances": 1}})) for n in ("a", "b")]
    assert next(iter(bodies[0]["spec"])) is not next(iter(bodies[1]["spec"]))
    slim = [project(b) for b in bodies]
    assert next(iter(slim[0]["spec"])) is next(iter(slim[1]["spec"]))


class FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[int, ...]]] = []

    def mallopt(self, *args: int) -> int:
        self.calls.append(("mallopt", args))
        return 1

    def malloc_trim(self, *args: int) -> int:
        self.calls.append(("malloc_trim", args))
        return 1


def test_the_arena_cap_is_mallopt_arena_max_unless_the_environment_sets_it(monkeypatch: Any) -> None:
    libc = FakeLibc()
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert entrypoint.cap_malloc_arenas(libc)  # type: ignore[arg-type]
    assert libc.calls == [("mallopt", (-8, 2))]  # M_ARENA_MAX in glibc's malloc.h
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert not entrypoint.cap_malloc_arenas(libc)  # type: ignore[arg-type]
    assert not entrypoint.cap_malloc_arenas(None)
    assert len(libc.calls) == 1


def test_the_c_library_is_found_here() -> None:
    libc = entrypoint._glibc()
    if ctypes.util.find_library("c") and platform.libc_ver()[0] == "glibc":
        assert libc is not None
