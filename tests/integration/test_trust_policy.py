"""Issue #8 items 9 and 14 on the real control plane: privilege escalation through role requests is
refused (by the API server where CEL can judge, by the operator otherwise), and names with hyphens or
uppercase work end to end without sharing Kubernetes objects."""

from __future__ import annotations

import secrets
from typing import Any

import psycopg
import pytest
from kubernetes.client.exceptions import ApiException

from cnpg_mcp_api.naming import database_request_name, role_request_name
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.gateway_helpers import database_owner, secret_password
from tests.integration.test_operator_roles import make_cluster, pg_role, wait_until

ROLE, DB = "PgRoleRequest", "PgDatabaseRequest"


def member_of(postgres: Any, role: str) -> set[str]:
    with psycopg.connect(postgres.superuser_dsn()) as conn:
        rows = conn.execute("SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
                            "JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s", (role,)).fetchall()
    return {str(row[0]) for row in rows}


def request_role(intents: Intents, namespace: str, cluster: str, role: str, **spec: Any) -> str:
    name = role_request_name(cluster, role)
    intents.create(ROLE, namespace, name, {"cluster": cluster, "roleName": role, **spec})
    return name


def test_createrole_is_refused_by_the_api_server_without_the_acknowledgement(
        k8s: Any, namespace: str, intents: Intents) -> None:
    with pytest.raises(ApiException) as refused:
        request_role(intents, namespace, "main-db", "maker", createrole=True)
    assert refused.value.status == 422
    assert "createrole" in str(refused.value.body) and "privileged: true" in str(refused.value.body)


def test_memberships_outside_the_namespace_s_own_roles_are_policy_denied(
        operator: OperatorProcess, cnpg_simulator: Any, postgres: Any, namespace: str, intents: Intents) -> None:
    cluster = make_cluster(intents, namespace)
    suffix = secrets.token_hex(3)

    # the bootstrap owner ("app") owns the application database: joining it is taking it over
    owner_joiner = request_role(intents, namespace, cluster, f"joiner_{suffix}", inRoles=["app"])
    denied = intents.wait_reason(ROLE, namespace, owner_joiner, "PolicyDenied")
    assert "bootstrap owner" in denied["status"]["message"]
    assert pg_role(postgres, f"joiner_{suffix}") is None

    # a role no request of this namespace produced (another team's, created by hand)
    outsider = f"team_b_{suffix}"
    with psycopg.connect(postgres.superuser_dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{outsider}"')
    foreign_joiner = request_role(intents, namespace, cluster, f"sneaky_{suffix}", inRoles=[outsider])
    denied = intents.wait_reason(ROLE, namespace, foreign_joiner, "PolicyDenied")
    assert outsider in denied["status"]["message"]
    assert pg_role(postgres, f"sneaky_{suffix}") is None

    # createrole, even acknowledged, needs the admin policy
    maker = request_role(intents, namespace, cluster, f"maker_{suffix}", createrole=True, privileged=True)
    denied = intents.wait_reason(ROLE, namespace, maker, "PolicyDenied")
    assert "createrole" in denied["status"]["message"]
    assert pg_role(postgres, f"maker_{suffix}") is None


def test_a_role_may_join_roles_its_namespace_requested(
        operator: OperatorProcess, cnpg_simulator: Any, postgres: Any, namespace: str, intents: Intents) -> None:
    cluster = make_cluster(intents, namespace)
    suffix = secrets.token_hex(3)
    readers, alice = f"readers_{suffix}", f"alice_{suffix}"
    # applied together (kubectl apply -f dir/): alice waits for readers' request to be Ready
    alice_request = request_role(intents, namespace, cluster, alice, inRoles=[readers])
    request_role(intents, namespace, cluster, readers, login=False)
    intents.wait_ready(ROLE, namespace, alice_request, timeout=90)
    assert member_of(postgres, alice) == {readers}


def test_hyphenated_and_uppercase_names_end_to_end(
        operator: OperatorProcess, cnpg_simulator: Any, k8s: Any, postgres: Any, namespace: str,
        intents: Intents) -> None:
    cluster = make_cluster(intents, namespace)
    suffix = secrets.token_hex(3)
    hyphen, underscore, upper = f"app-user-{suffix}", f"app_user_{suffix}", f"App_User_{suffix}"
    requests = {role: request_role(intents, namespace, cluster, role) for role in (hyphen, underscore, upper)}
    assert len(set(requests.values())) == 3
    secrets_by_role = {}
    for role, name in requests.items():
        status = intents.wait_ready(ROLE, namespace, name)["status"]
        secrets_by_role[role] = status["secretName"]
        password = secret_password(k8s, namespace, status["secretName"])
        assert postgres.can_login(role, password), role
    assert len(set(secrets_by_role.values())) == 3  # no Secret shared between app-user and app_user

    database = f"app-data-{suffix}"
    name = database_request_name(cluster, database)
    intents.create(DB, namespace, name, {"cluster": cluster, "name": database, "owner": hyphen})
    intents.wait_ready(DB, namespace, name)
    wait_until(lambda: database_owner(postgres, database) == hyphen, f"database {database} owned by {hyphen}")
    assert postgres.can_login(hyphen, secret_password(k8s, namespace, secrets_by_role[hyphen]), dbname=database)
