"""Issue #8 items 11 and 14 through a real MCP client: privileged attributes need the caller's own
acknowledgement (elicitation where the client supports it, an explicit privileged=true otherwise), and
role/database names with hyphens work end to end."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from mcp import Client
from mcp.client import ClientRequestContext
from mcp.types import ElicitRequestParams, ElicitResult, ErrorData

from cnpg_mcp_api.naming import role_request_name
from devcluster.controlplane import ControlPlane
from devcluster.postgres import PostgresServer
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.gateway_helpers import database_owner, error, gateway_server, ok, secret_password
from tests.integration.test_operator_roles import make_cluster, wait_until

pytestmark = pytest.mark.anyio
ROLE = "PgRoleRequest"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def gateway(control_plane: ControlPlane, operator: OperatorProcess) -> Any:
    return gateway_server(control_plane)


class Answers:
    """An elicitation callback that answers as told and remembers the questions."""

    def __init__(self, action: str, acknowledged: bool = True) -> None:
        self.action, self.acknowledged, self.questions = action, acknowledged, list[str]()

    async def __call__(self, context: ClientRequestContext,
                       params: ElicitRequestParams) -> ElicitResult | ErrorData:
        self.questions.append(params.message)
        if self.action == "decline":
            return ElicitResult(action="decline")
        if self.action == "cancel":
            return ElicitResult(action="cancel")
        return ElicitResult(action="accept", content={"acknowledged": self.acknowledged})


def role_spec(intents: Intents, namespace: str, cluster: str, role: str) -> dict[str, Any] | None:
    request = intents.get(ROLE, namespace, role_request_name(cluster, role))
    return None if request is None else dict(request["spec"])


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_without_elicitation_privileges_need_an_explicit_argument(
        gateway: Any, namespace: str, intents: Intents, mode: str) -> None:
    cluster = make_cluster(intents, namespace)
    role = f"boss_{secrets.token_hex(3)}"
    async with Client(gateway, mode=mode) as mcp:
        message = error(await mcp.call_tool("create_postgres_role", {
            "cluster_name": cluster, "role_name": role, "superuser": True, "namespace": namespace}),
            "PRIVILEGE_ACK_REQUIRED")
        assert "privileged=true" in message and "superuser" in message
        assert role_spec(intents, namespace, cluster, role) is None  # nothing was created

        created = ok(await mcp.call_tool("create_postgres_role", {
            "cluster_name": cluster, "role_name": role, "superuser": True, "privileged": True,
            "namespace": namespace}))
        assert created["created"] is True
        assert (role_spec(intents, namespace, cluster, role) or {})["privileged"] is True
        # acknowledged is not granted: the operator's admin policy still decides
        intents.wait_reason(ROLE, namespace, role_request_name(cluster, role), "PolicyDenied")

        plain = f"plain_{secrets.token_hex(3)}"
        ok(await mcp.call_tool("create_postgres_role", {"cluster_name": cluster, "role_name": plain,
                                                        "namespace": namespace}))
        error(await mcp.call_tool("update_postgres_role", {
            "cluster_name": cluster, "role_name": plain, "createrole": True, "namespace": namespace}),
            "PRIVILEGE_ACK_REQUIRED")
        assert (role_spec(intents, namespace, cluster, plain) or {}).get("createrole") is False
        ok(await mcp.call_tool("update_postgres_role", {
            "cluster_name": cluster, "role_name": plain, "createrole": True, "privileged": True,
            "namespace": namespace}))
        spec = role_spec(intents, namespace, cluster, plain) or {}
        assert spec["createrole"] is True and spec["privileged"] is True


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_elicitation_asks_the_user(gateway: Any, namespace: str, intents: Intents, mode: str) -> None:
    cluster = make_cluster(intents, namespace)
    accepted, declined = f"yes_{secrets.token_hex(3)}", f"no_{secrets.token_hex(3)}"

    answers = Answers("accept")
    async with Client(gateway, mode=mode, elicitation_callback=answers) as mcp:
        ok(await mcp.call_tool("create_postgres_role", {
            "cluster_name": cluster, "role_name": accepted, "replication": True, "namespace": namespace}))
        ok(await mcp.call_tool("create_postgres_role", {
            "cluster_name": cluster, "role_name": f"ordinary_{secrets.token_hex(3)}", "namespace": namespace}))
    assert len(answers.questions) == 1 and "replication" in answers.questions[0]
    assert (role_spec(intents, namespace, cluster, accepted) or {})["privileged"] is True

    for answer in (Answers("decline"), Answers("cancel"), Answers("accept", acknowledged=False)):
        async with Client(gateway, mode=mode, elicitation_callback=answer) as mcp:
            error(await mcp.call_tool("create_postgres_role", {
                "cluster_name": cluster, "role_name": declined, "superuser": True, "namespace": namespace}),
                "REFUSED")
        assert answer.questions
        assert role_spec(intents, namespace, cluster, declined) is None


async def test_names_the_original_server_accepted(
        gateway: Any, k8s: Any, namespace: str, postgres: PostgresServer, intents: Intents) -> None:
    cluster = make_cluster(intents, namespace)
    suffix = secrets.token_hex(3)
    hyphen, underscore, database = f"app-user-{suffix}", f"app_user_{suffix}", f"app-data-{suffix}"
    async with Client(gateway) as mcp:
        first = ok(await mcp.call_tool("create_postgres_role", {
            "cluster_name": cluster, "role_name": hyphen, "namespace": namespace}))
        second = ok(await mcp.call_tool("create_postgres_role", {
            "cluster_name": cluster, "role_name": underscore, "namespace": namespace}))
        assert first["password_secret"] != second["password_secret"]
        assert first["request"] != second["request"]
        ok(await mcp.call_tool("create_postgres_database", {
            "cluster_name": cluster, "database_name": database, "owner": hyphen, "namespace": namespace}))

        for role, created in ((hyphen, first), (underscore, second)):
            intents.wait_ready(ROLE, namespace, role_request_name(cluster, role))
            assert postgres.can_login(role, secret_password(k8s, namespace, created["password_secret"]))
        wait_until(lambda: database_owner(postgres, database) == hyphen, f"{database} owned by {hyphen}")

        too_long = error(await mcp.call_tool("create_postgres_role", {
            "cluster_name": cluster, "role_name": "r" * 64, "namespace": namespace}), "INVALID_ARGUMENT")
        assert "63 bytes" in too_long
        reserved = error(await mcp.call_tool("create_postgres_role", {
            "cluster_name": cluster, "role_name": "pg_mine", "namespace": namespace}), "INVALID_ARGUMENT")
        assert "reserved" in reserved
        reserved_db = error(await mcp.call_tool("create_postgres_database", {
            "cluster_name": cluster, "database_name": "template1", "owner": hyphen, "namespace": namespace}),
            "INVALID_ARGUMENT")
        assert "reserved" in reserved_db
        odd = error(await mcp.call_tool("create_postgres_role", {
            "cluster_name": cluster, "role_name": "bad name", "namespace": namespace}), "INVALID_ARGUMENT")
        assert "letters, digits" in odd
