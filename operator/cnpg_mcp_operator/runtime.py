"""What every handler shares for the lifetime of the operator process (kept in Kopf's memo)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cnpg_mcp_operator.backend import RoleBackend, detect_role_backend
from cnpg_mcp_operator.config import OperatorConfig
from cnpg_mcp_operator.k8s import Api
from cnpg_mcp_operator.managed_roles import ManagedRolesWriter
from cnpg_mcp_operator.status_writer import StatusWriter
from cnpg_mcp_operator.wakeups import KeyedLocks, Wakeups


@dataclass
class Runtime:
    config: OperatorConfig
    api: Api
    role_backend: RoleBackend
    status: StatusWriter
    managed_roles: ManagedRolesWriter
    wakeups: Wakeups = field(default_factory=Wakeups)
    locks: KeyedLocks = field(default_factory=KeyedLocks)

    @classmethod
    async def start(cls, config: OperatorConfig) -> Runtime:
        api = await Api.connect(config.kubeconfig)
        backend = await detect_role_backend(api, config.role_backend)
        return cls(config=config, api=api, role_backend=backend, status=StatusWriter(api),
                   managed_roles=ManagedRolesWriter(api))

    def privileged_allowed(self, namespace: str) -> bool:
        return namespace in self.config.allowed_privileged_namespaces


def runtime_of(memo: Any) -> Runtime:
    """The Runtime the startup handler put into Kopf's memo."""
    runtime = memo.get("runtime")
    if not isinstance(runtime, Runtime):
        raise RuntimeError("the operator runtime is not initialised (startup handler did not run)")
    return runtime
