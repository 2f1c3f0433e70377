"""Read-only SQL credentials (PgClusterRequest spec.readOnlyQueries): the operator's half, end to end.

A real operator process (with --gateway-namespace), the real API server, the CNPG simulator and the real
PostgreSQL serving TLS with a certificate for every simulated cluster's Service names. What a user
notices: the projected JSON connects with sslmode=verify-full, the role reads pg_stat_activity and
can write nothing; disabling or deleting takes the role and the credentials away; the gateway's
ServiceAccount still cannot read any Secret.

One PostgreSQL plays every simulated cluster, so they share the one role `mcp_readonly`: each test
enables read-only queries on one cluster at a time and waits for the role to be dropped before it ends.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from mcp import Client
from psycopg import errors

from cnpg_mcp_api import constants
from cnpg_mcp_api.readonly_sql import (
    READONLY_ROLE_NAME,
    SQL_CREDENTIALS_MOUNT,
    SQL_CREDENTIALS_SECRET,
    credentials_key,
    readonly_request_name,
)
from devcluster.controlplane import ControlPlane
from devcluster.postgres import PostgresServer
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.gateway_helpers import error, gateway_server, ok
from tests.integration.test_deploy_rbac import NAMESPACE as DEPLOY_NAMESPACE
from tests.integration.test_deploy_rbac import deployed  # noqa: F401 (the fixture: deploy/ applied)

CLUSTER, ROLE = "PgClusterRequest", "PgRoleRequest"
PRIVILEGED_ATTRIBUTES = ("rolsuper", "rolcreatedb", "rolcreaterole", "rolreplication", "rolbypassrls")


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def gateway_namespace(k8s: Any) -> Iterator[str]:
    core = client.CoreV1Api(k8s)
    name = f"t-ro-gateway-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": name, "labels": {"cnpg-mcp.io/test": "true"}}})
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="module")
def readonly_operator(operator: OperatorProcess, control_plane: ControlPlane, gateway_namespace: str,
                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """The operator with --gateway-namespace; the session operator pauses meanwhile."""
    if operator.running():
        operator.stop()
    process = OperatorProcess(control_plane.kubeconfig, tmp_path_factory.mktemp("ro-operator") / "operator.log",
                              ["--all-namespaces", "--gateway-namespace", gateway_namespace])
    process.start()
    yield process
    process.stop()
    operator.start()


# ------------------------------------------------------------------------------------------- helpers


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for: {what}")


def projection(k8s: Any, gateway_namespace: str) -> dict[str, str] | None:
    """The projection Secret's data, decoded; None when it does not exist."""
    try:
        secret = client.CoreV1Api(k8s).read_namespaced_secret(SQL_CREDENTIALS_SECRET, gateway_namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}


def readonly_status(obj: dict[str, Any]) -> dict[str, Any]:
    return dict((obj.get("status") or {}).get("readOnlyQueries") or {})


def pg_role(postgres: PostgresServer) -> dict[str, Any] | None:
    with psycopg.connect(postgres.superuser_dsn()) as conn:
        row = conn.execute(
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, "
            "ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
            "      WHERE m.member = r.oid ORDER BY 1) FROM pg_roles r WHERE rolname = %s",
            (READONLY_ROLE_NAME,)).fetchone()
    if row is None:
        return None
    return {"rolcanlogin": row[0], **dict(zip(PRIVILEGED_ATTRIBUTES, row[1:6], strict=True)), "memberOf": row[6]}


def enable(intents: Intents, namespace: str, **spec: Any) -> tuple[str, dict[str, Any]]:
    """A PgClusterRequest with read-only queries on; returns its name and the object once they are ready."""
    name = f"pg{secrets.token_hex(3)}"
    intents.create(CLUSTER, namespace, name,
                   {"instances": 1, "readOnlyQueries": {"enabled": True, "database": "app"}, **spec})
    ready = intents.wait_for(CLUSTER, namespace, name, lambda o: readonly_status(o).get("ready") is True,
                             "readOnlyQueries ready", timeout=90)
    return name, ready


def connect(document: dict[str, Any], postgres: PostgresServer, ca_file: Path,
            host: str | None = None) -> psycopg.Connection[Any]:
    """Connects as the gateway would, to the sandbox's real address, verifying the certificate for the
    projected Service name (libpq: host for verification, hostaddr/port for the socket)."""
    address, port = postgres.sql_endpoint.rsplit(":", 1)
    ca_file.write_text(document["sslrootcert"])
    return psycopg.connect(host=host or document["host"], hostaddr=address, port=port, user=document["user"],
                           password=document["password"], dbname=document["dbname"],
                           sslmode=document["sslmode"], sslrootcert=str(ca_file), connect_timeout=10)


def wait_role_dropped(postgres: PostgresServer) -> None:
    wait_until(lambda: pg_role(postgres) is None, f"role {READONLY_ROLE_NAME} dropped", timeout=90)


# --------------------------------------------------------------------------------------------- tests


def test_enabled_cluster_gets_a_pg_monitor_login_whose_projected_credentials_verify_tls(
        readonly_operator: OperatorProcess, k8s: Any, postgres: PostgresServer, namespace: str,
        gateway_namespace: str, intents: Intents, tmp_path: Path) -> None:
    name, ready = enable(intents, namespace)
    status = readonly_status(ready)
    key = credentials_key(namespace, name)
    assert status == {"enabled": True, "ready": True, "role": READONLY_ROLE_NAME,
                      "roleRequest": readonly_request_name(name), "host": f"{name}-r.{namespace}.svc",
                      "credentials": f"{gateway_namespace}/{SQL_CREDENTIALS_SECRET}:{key}",
                      "message": f"credentials projected to {gateway_namespace}/{SQL_CREDENTIALS_SECRET}:{key}"}

    # The role: LOGIN, member of pg_monitor only, nothing privileged (and not pg_read_all_data).
    assert pg_role(postgres) == {"rolcanlogin": True, "rolsuper": False, "rolcreatedb": False,
                                 "rolcreaterole": False, "rolreplication": False, "rolbypassrls": False,
                                 "memberOf": ["pg_monitor"]}
    # ... produced by our own role machinery: a PgRoleRequest owned by the PgClusterRequest (by UID).
    role_request = intents.get(ROLE, namespace, readonly_request_name(name))
    assert role_request is not None
    assert [(r["kind"], r["uid"]) for r in role_request["metadata"]["ownerReferences"]] == [
        (CLUSTER, ready["metadata"]["uid"])]

    # The projection: one key per cluster, the documented JSON, the CA certificate and nothing private.
    data = projection(k8s, gateway_namespace)
    assert data is not None and list(data) == [key]
    document = json.loads(data[key])
    assert set(document) == {"host", "port", "dbname", "user", "password", "sslmode", "sslrootcert"}
    assert (document["host"], document["port"], document["dbname"], document["user"], document["sslmode"]) == (
        f"{name}-r.{namespace}.svc", 5432, "app", READONLY_ROLE_NAME, "verify-full")
    ca_secret = client.CoreV1Api(k8s).read_namespaced_secret(f"{name}-ca", namespace)
    assert set(ca_secret.data) == {"ca.crt", "ca.key"}  # CNPG's CA Secret holds the key ...
    assert document["sslrootcert"] == base64.b64decode(ca_secret.data["ca.crt"]).decode()
    assert "PRIVATE KEY" not in data[key] and "ca.key" not in data  # ... the projection never does
    # The password is nowhere in the request's status, its Events or the operator's log.
    assert document["password"] not in json.dumps(intents.get(CLUSTER, namespace, name))
    assert all(document["password"] not in (event.message or "") for event in intents.events_for(namespace, name))
    assert document["password"] not in readonly_operator.log_text()

    # It connects over TLS, verifying the server certificate for the projected Service name.
    with connect(document, postgres, tmp_path / "ca.crt") as conn:
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)
        assert conn.execute("SELECT current_user").fetchone() == (READONLY_ROLE_NAME,)
        # pg_monitor: other sessions' queries are visible (pg_read_all_stats).
        with psycopg.connect(postgres.superuser_dsn("app")) as other:
            other.execute("SELECT 'visible to pg_monitor' AS marker").fetchone()
            conn.commit()  # a transaction keeps its first snapshot of the activity statistics
            rows = conn.execute("SELECT query FROM pg_stat_activity WHERE usename = 'postgres'").fetchall()
            assert any("visible to pg_monitor" in (query or "") for (query,) in rows), rows
    # ... and refuses a certificate that does not name the host it asked for.
    with pytest.raises(psycopg.OperationalError, match="does not match host name"):
        connect(document, postgres, tmp_path / "ca.crt", host=f"{name}-ro.some-other-namespace.svc")

    intents.delete(CLUSTER, namespace, name)
    wait_role_dropped(postgres)


def test_the_role_reads_statistics_but_cannot_write_create_or_raise_itself(
        readonly_operator: OperatorProcess, k8s: Any, postgres: PostgresServer, namespace: str,
        gateway_namespace: str, intents: Intents, tmp_path: Path) -> None:
    name, _ = enable(intents, namespace)
    data = projection(k8s, gateway_namespace) or {}
    document = json.loads(data[credentials_key(namespace, name)])
    table = f"probe_{secrets.token_hex(3)}"
    with psycopg.connect(postgres.superuser_dsn("app"), autocommit=True) as admin:
        admin.execute(f"CREATE TABLE public.{table} (v int)")
        admin.execute(f"INSERT INTO public.{table} VALUES (1)")
    try:
        with connect(document, postgres, tmp_path / "ca.crt") as conn:
            conn.autocommit = True
            assert conn.execute("SELECT count(*) >= 1 FROM pg_stat_activity").fetchone() == (True,)
            refused = [
                f"INSERT INTO public.{table} VALUES (2)",   # write a table
                f"SELECT * FROM public.{table}",            # read one nobody granted (no pg_read_all_data)
                "CREATE TABLE public.mine (v int)",          # create
                f"CREATE DATABASE db_{table}",
                f"ALTER ROLE {READONLY_ROLE_NAME} CREATEDB",  # raise itself
                f"ALTER ROLE {READONLY_ROLE_NAME} SUPERUSER",
                f"GRANT pg_read_all_data TO {READONLY_ROLE_NAME}",
            ]
            for statement in refused:
                with pytest.raises(errors.InsufficientPrivilege):
                    conn.execute(statement)
        with psycopg.connect(postgres.superuser_dsn("app")) as admin:
            assert admin.execute(f"SELECT v FROM public.{table}").fetchall() == [(1,)]
        assert pg_role(postgres) == {"rolcanlogin": True, "rolsuper": False, "rolcreatedb": False,
                                     "rolcreaterole": False, "rolreplication": False, "rolbypassrls": False,
                                     "memberOf": ["pg_monitor"]}
    finally:
        with psycopg.connect(postgres.superuser_dsn("app"), autocommit=True) as admin:
            admin.execute(f"DROP TABLE IF EXISTS public.{table}")
        intents.delete(CLUSTER, namespace, name)
        wait_role_dropped(postgres)


def test_disabling_removes_the_role_and_the_key(
        readonly_operator: OperatorProcess, k8s: Any, postgres: PostgresServer, namespace: str,
        gateway_namespace: str, intents: Intents, tmp_path: Path) -> None:
    name, _ = enable(intents, namespace)
    key = credentials_key(namespace, name)
    document = json.loads((projection(k8s, gateway_namespace) or {})[key])

    intents.patch_spec(CLUSTER, namespace, name, {"readOnlyQueries": {"enabled": False}})
    disabled = intents.wait_for(CLUSTER, namespace, name, lambda o: readonly_status(o).get("enabled") is False,
                                "readOnlyQueries disabled")
    assert readonly_status(disabled) == {"enabled": False, "ready": False, "message": "read-only queries disabled"}
    assert key not in (projection(k8s, gateway_namespace) or {})
    intents.wait_gone(ROLE, namespace, readonly_request_name(name))
    wait_role_dropped(postgres)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(document, postgres, tmp_path / "ca.crt")
    # The Cluster itself is untouched.
    assert (intents.ready(intents.get(CLUSTER, namespace, name)) or {}).get("status") == "True"

    # Enabled again: a new role and a new password.
    intents.patch_spec(CLUSTER, namespace, name, {"readOnlyQueries": {"enabled": True}})
    intents.wait_for(CLUSTER, namespace, name, lambda o: readonly_status(o).get("ready") is True,
                     "readOnlyQueries ready again", timeout=90)
    again = json.loads((projection(k8s, gateway_namespace) or {})[key])
    assert again["password"] != document["password"]
    with connect(again, postgres, tmp_path / "ca.crt") as conn:
        assert conn.execute("SELECT current_user").fetchone() == (READONLY_ROLE_NAME,)
    intents.delete(CLUSTER, namespace, name)
    wait_role_dropped(postgres)


def test_deleting_the_request_cleans_up_and_keeps_other_keys(
        readonly_operator: OperatorProcess, k8s: Any, postgres: PostgresServer, namespace: str,
        gateway_namespace: str, intents: Intents) -> None:
    # Another cluster's key (written as the operator would) must survive this cluster's cleanup.
    other_key = credentials_key("elsewhere", "kept")
    core = client.CoreV1Api(k8s)
    if projection(k8s, gateway_namespace) is None:
        core.create_namespaced_secret(gateway_namespace, {"metadata": {"name": SQL_CREDENTIALS_SECRET},
                                                          "stringData": {other_key: "{}"}})
    else:
        core.patch_namespaced_secret(SQL_CREDENTIALS_SECRET, gateway_namespace, {"stringData": {other_key: "{}"}})
    name, _ = enable(intents, namespace)
    key = credentials_key(namespace, name)
    assert set(projection(k8s, gateway_namespace) or {}) == {other_key, key}

    intents.delete(CLUSTER, namespace, name)
    intents.wait_gone(CLUSTER, namespace, name, timeout=90)
    assert projection(k8s, gateway_namespace) == {other_key: "{}"}
    intents.wait_gone(ROLE, namespace, readonly_request_name(name), timeout=90)
    wait_role_dropped(postgres)


def test_a_look_alike_role_request_gets_no_pg_monitor(
        readonly_operator: OperatorProcess, postgres: PostgresServer, namespace: str, intents: Intents) -> None:
    """The policy exemption is for the request the operator made for an enabled cluster, nothing else."""
    name = f"pg{secrets.token_hex(3)}"
    intents.create(CLUSTER, namespace, name, {"instances": 1})
    intents.wait_ready(CLUSTER, namespace, name)
    intents.create(ROLE, namespace, readonly_request_name(name), {
        "cluster": name, "roleName": READONLY_ROLE_NAME, "inRoles": ["pg_monitor"], "privileged": True,
        "connectionLimit": 10, "comment": "cnpg-mcp: read-only SQL of the MCP gateway (pg_monitor only)"})
    denied = intents.wait_reason(ROLE, namespace, readonly_request_name(name), "PolicyDenied")
    assert "pg_monitor" in (intents.ready(denied) or {}).get("message", "")
    assert pg_role(postgres) is None


def test_gateway_mounts_the_projection_but_its_service_account_cannot_read_secrets(
        deployed: str, k8s: Any) -> None:  # noqa: F811 (the imported fixture)
    deployment = client.AppsV1Api(k8s).read_namespaced_deployment("cnpg-mcp-gateway", DEPLOY_NAMESPACE)
    pod = deployment.spec.template.spec
    volume = next(v for v in pod.volumes if v.secret is not None and v.secret.secret_name == SQL_CREDENTIALS_SECRET)
    assert volume.secret.optional is True
    mounts = {m.name: m for m in pod.containers[0].volume_mounts}
    assert mounts[volume.name].mount_path == SQL_CREDENTIALS_MOUNT and mounts[volume.name].read_only

    def allowed(user: str, verb: str, name: str | None = None, namespace: str = DEPLOY_NAMESPACE,
                resource: str = "secrets", group: str = "", subresource: str | None = None) -> bool:
        review = client.AuthorizationV1Api(k8s).create_subject_access_review({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": user, "groups": ["system:serviceaccounts", f"system:serviceaccounts:{DEPLOY_NAMESPACE}"],
                     "resourceAttributes": {"namespace": namespace, "verb": verb, "resource": resource,
                                            "group": group, "name": name or "", "subresource": subresource or ""}}})
        return bool(review.status.allowed)

    gateway = f"system:serviceaccount:{DEPLOY_NAMESPACE}:cnpg-mcp-gateway"
    operator = f"system:serviceaccount:{DEPLOY_NAMESPACE}:cnpg-mcp-operator"
    for verb in ("get", "list", "watch"):
        assert not allowed(gateway, verb, SQL_CREDENTIALS_SECRET), verb
        assert not allowed(gateway, verb), verb
        assert not allowed(gateway, verb, "any-cluster-ca", namespace="default"), verb
    # The operator writes the projection and the read-only role's request it owns.
    for verb in ("get", "create", "patch"):
        assert allowed(operator, verb, SQL_CREDENTIALS_SECRET), verb
    assert allowed(operator, "create", resource=constants.ROLE_REQUEST_PLURAL, group=constants.GROUP,
                   namespace="default")
    assert allowed(operator, "update", "any", resource=constants.CLUSTER_REQUEST_PLURAL, group=constants.GROUP,
                   namespace="default", subresource="finalizers")


def test_a_cnpg_prefixed_role_name_is_refused_by_the_api_server(k8s: Any, namespace: str) -> None:
    """Why the role is not called cnpg_*: CNPG's DatabaseRole CRD refuses that prefix, so the intent does too
    (before, such a PgRoleRequest was accepted and then retried forever against CNPG's 422)."""
    with pytest.raises(ApiException) as refused:
        client.CustomObjectsApi(k8s).create_namespaced_custom_object(
            constants.GROUP, constants.VERSION, namespace, constants.ROLE_REQUEST_PLURAL,
            {"apiVersion": constants.API_VERSION, "kind": ROLE, "metadata": {"name": "r"},
             "spec": {"cluster": "main-db", "roleName": "cnpg_evil"}})
    assert refused.value.status == 422 and "roleName is reserved" in str(refused.value.body)


def test_a_missing_gateway_namespace_is_reported_and_never_blocks_the_cluster(
        readonly_operator: OperatorProcess, control_plane: ControlPlane, postgres: PostgresServer,
        namespace: str, intents: Intents, tmp_path: Path) -> None:
    missing = f"t-no-gateway-{secrets.token_hex(3)}"
    readonly_operator.stop()
    elsewhere = OperatorProcess(control_plane.kubeconfig, tmp_path / "operator.log",
                                ["--all-namespaces", "--gateway-namespace", missing])
    try:
        elsewhere.start()
        name = f"pg{secrets.token_hex(3)}"
        intents.create(CLUSTER, namespace, name, {"instances": 1, "readOnlyQueries": {"enabled": True}})
        # The report can come with the first status, before CNPG has the Cluster up (a quick operator writes
        # both at once): wait for the Cluster to be Ready while the report stands, which is the claim.
        stuck = intents.wait_for(CLUSTER, namespace, name,
                                 lambda o: "cannot write" in str(readonly_status(o).get("message"))
                                 and (intents.ready(o) or {}).get("status") == "True",
                                 "the Cluster Ready while readOnlyQueries reports the missing namespace", timeout=90)
        assert readonly_status(stuck)["ready"] is False and missing in readonly_status(stuck)["message"]
        intents.delete(CLUSTER, namespace, name)  # the deletion is not blocked by the missing namespace
        intents.wait_gone(CLUSTER, namespace, name)
        wait_role_dropped(postgres)
    finally:
        elsewhere.stop()
        readonly_operator.start()


# ------------------------------------------------------------------- both halves: the tool over TLS


@pytest.mark.anyio
async def test_run_readonly_query_uses_the_projected_credentials_over_verified_tls(
        readonly_operator: OperatorProcess, control_plane: ControlPlane, k8s: Any, postgres: PostgresServer,
        namespace: str, gateway_namespace: str, intents: Intents, tmp_path: Path) -> None:
    """The operator's projection, mounted as the kubelet would (one file per key), read by the gateway's
    `run_readonly_query`: the session is TLS with the certificate verified, and a write is still refused."""
    name, _ = enable(intents, namespace)
    mounted = tmp_path / "sql"
    mounted.mkdir()
    for key, value in (projection(k8s, gateway_namespace) or {}).items():
        (mounted / key).write_text(value)
    server = gateway_server(control_plane, toolsets=("sql", "diagnostics"), sql_credentials_dir=mounted,
                            sql_endpoint_override=postgres.sql_endpoint)
    try:
        async with Client(server) as mcp:
            answer = ok(await mcp.call_tool("run_readonly_query", {
                "cluster_name": name, "namespace": namespace,
                "sql": "SELECT ssl, current_user FROM pg_stat_ssl WHERE pid = pg_backend_pid()"}))
            assert answer["rows"] == [[True, READONLY_ROLE_NAME]]
            error(await mcp.call_tool("run_readonly_query", {
                "cluster_name": name, "namespace": namespace, "sql": "CREATE TABLE t_nope (i int)"}),
                "QUERY_REFUSED")
            states = ok(await mcp.call_tool("run_diagnostic_query", {
                "cluster_name": name, "namespace": namespace, "check": "connections_by_state"}))
            assert states["row_count"] >= 1
    finally:
        intents.delete(CLUSTER, namespace, name)
        wait_role_dropped(postgres)
