"""Metrics, audit and tracing wiring, without any server: what each records, and what it never records."""

from __future__ import annotations

import ast
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import kopf
import pytest
from mcp.server.mcpserver.exceptions import ToolError
from opentelemetry import trace
from prometheus_client import REGISTRY

from cnpg_mcp_api import constants
from cnpg_mcp_operator import events
from cnpg_mcp_operator import metrics as operator_metrics
from cnpg_mcp_operator.k8s import ApiError, retry_on_conflict
from mcp_gateway import audit, errors, intents, tracing

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# ------------------------------------------------------------------------------------------- audit
def test_audit_target_keeps_only_the_namespace_and_object_names() -> None:
    arguments = {"cluster_name": "db", "role_name": "app", "password": "s3cret", "login": True, "namespace": None}
    assert audit.target(arguments, "default") == {"namespace": "default", "cluster_name": "db", "role_name": "app"}


def test_audit_verdict_is_ok_or_the_error_code() -> None:
    assert audit.verdict(None) == "ok"
    assert audit.verdict(errors.tool_error(errors.NAMESPACE_NOT_ALLOWED, "no")) == "NAMESPACE_NOT_ALLOWED"
    wrapped = ToolError(f"Error executing tool x: [{errors.FORBIDDEN}] denied")  # as the SDK re-raises it
    assert audit.verdict(wrapped) == "FORBIDDEN"
    assert audit.verdict(ToolError("[NOT_A_CODE] x")) == errors.INTERNAL
    assert audit.verdict(RuntimeError("boom")) == errors.INTERNAL


def test_audit_line_is_one_json_object_on_the_dedicated_logger(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit.configure(path)
    try:
        audit.record(tool="list_postgres_clusters", caller="token:alice", impersonated="token:alice",
                     target={"namespace": "ns"}, verdict="ok", seconds=0.0123)
    finally:
        audit.configure(None)  # back to stderr for the rest of the session
    [line] = path.read_text().splitlines()
    entry = json.loads(line)
    assert entry["event"] == "tool_call" and entry["caller"] == "token:alice"
    assert entry["impersonated"] == "token:alice" and entry["duration_ms"] == 12.3
    assert dt.datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).tzinfo is not None
    assert logging.getLogger(audit.LOGGER_NAME).propagate is False


# -------------------------------------------------------------------------------- requested-by
def test_every_intent_the_gateway_creates_carries_its_requester() -> None:
    """Each builder stamps the annotation, and every builder call in the tools passes gw.requested_by()."""
    cluster = {"metadata": {"name": "db", "namespace": "ns"}, "spec": {"storage": {"size": "1Gi"}}}
    built = [
        intents.cluster_intent("db", "ns", instances=1, storage_size="1Gi", postgres_version="16",
                               storage_class=None, requested_by="who"),
        intents.adoption_intent(cluster, instances=1, requested_by="who"),
        intents.role_intent("db", "app", "ns", {}, "who"),
        intents.database_intent("db", "app", "app", reclaim_policy="retain", namespace="ns", requested_by="who"),
    ]
    assert all(body["metadata"]["annotations"] == {constants.REQUESTED_BY_ANNOTATION: "who"} for body in built)
    calls = 0
    for module in (REPO / "mcp_gateway" / "tools").glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "intents" \
                    and node.func.attr.endswith("_intent"):
                calls += 1
                passed = [ast.unparse(a) for a in [*node.args, *(k.value for k in node.keywords)]]
                assert "gw.requested_by()" in passed, f"{module.name}:{node.lineno} creates an intent without it"
    assert calls >= 4


def test_transition_events_name_the_requester() -> None:
    body = {"metadata": {"annotations": {constants.REQUESTED_BY_ANNOTATION: "oidc:carol"}}}
    assert events.with_requester(body, "Role app is ready") == "Role app is ready (requested by oidc:carol)"
    assert events.with_requester({"metadata": {}}, "ready") == "ready"
    long = events.with_requester(body, "x" * 2000)
    assert len(long) == events.MAX_MESSAGE and long.endswith("(requested by oidc:carol)")


# ------------------------------------------------------------------------------ operator metrics
def test_reconciles_are_counted_by_result_like_controller_runtime() -> None:
    controller = "unittestkind"
    with operator_metrics.reconciling(controller):
        pass
    with pytest.raises(kopf.TemporaryError), operator_metrics.reconciling(controller):
        raise kopf.TemporaryError("later", delay=1)
    with pytest.raises(ValueError, match="bad"), operator_metrics.reconciling(controller):
        raise ValueError("bad")
    for result in ("success", "requeue_after", "error"):
        assert value("controller_runtime_reconcile_total", controller=controller, result=result) == 1
    assert value("controller_runtime_reconcile_errors_total", controller=controller) == 1
    assert value("controller_runtime_reconcile_time_seconds_count", controller=controller) == 3
    assert value("controller_runtime_active_workers", controller=controller) == 0


def test_first_readiness_time_and_policy_denials_are_recorded_once_per_transition() -> None:
    created = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    body: dict[str, Any] = {"kind": "UnitTestRequest",
                            "metadata": {"generation": 1, "creationTimestamp": "2026-01-01T00:00:00Z"}}
    pending, ready = {"status": "False", "reason": "Pending"}, {"status": "True", "reason": "Ready"}
    operator_metrics.ready_transition(body, pending, ready, now=created + dt.timedelta(seconds=7))
    operator_metrics.ready_transition(body, ready, ready, now=created + dt.timedelta(seconds=70))  # no transition
    operator_metrics.ready_transition({**body, "metadata": {**body["metadata"], "generation": 2}}, pending, ready)
    assert value("cnpg_mcp_intent_ready_seconds_count", kind="unittestrequest") == 1
    assert value("cnpg_mcp_intent_ready_seconds_sum", kind="unittestrequest") == 7
    denied = {"status": "False", "reason": "PolicyDenied"}
    operator_metrics.ready_transition(body, None, denied)
    operator_metrics.ready_transition(body, denied, denied)
    assert value("cnpg_mcp_policy_denials_total", kind="unittestrequest") == 1


async def _conflicting_twice(calls: list[int]) -> str:
    calls.append(1)
    if len(calls) <= 2:
        raise ApiError(409, "Conflict", "the object has been modified")
    return "written"


def test_conflict_retries_are_counted() -> None:
    import anyio  # noqa: PLC0415

    before = value("cnpg_mcp_operator_conflict_retries_total")
    calls: list[int] = []

    async def run() -> str:
        return await retry_on_conflict(lambda: _conflicting_twice(calls))

    assert anyio.run(run) == "written"
    assert value("cnpg_mcp_operator_conflict_retries_total") == before + 2


def test_metrics_url_is_parsed_like_the_liveness_url() -> None:
    assert operator_metrics.address("http://0.0.0.0:8081/metrics") == ("0.0.0.0", 8081, "/metrics")
    with pytest.raises(ValueError, match="host and port"):
        operator_metrics.address("0.0.0.0:8081")


# ------------------------------------------------------------------------------------- tracing
def test_tracing_is_a_no_op_without_the_otel_variables() -> None:
    provider = trace.get_tracer_provider()
    assert tracing.configure_from_environment({}) is False
    assert tracing.configure_from_environment({"OTEL_TRACES_EXPORTER": "none",
                                               "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) is False
    assert tracing.configure_from_environment({"OTEL_TRACES_EXPORTER": "zipkin"}) is False
    assert trace.get_tracer_provider() is provider  # nothing installed: the SDK's spans stay no-ops


def test_tracing_is_asked_for_by_the_standard_variables() -> None:
    assert tracing.requested_exporter({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) == "otlp"
    assert tracing.requested_exporter({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}) == "otlp"
    assert tracing.requested_exporter({"OTEL_TRACES_EXPORTER": "console"}) == "console"
    assert tracing.requested_exporter({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}) is None


def test_tracing_with_an_exporter_exports_the_sdks_tool_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415

    installed: list[Any] = []
    monkeypatch.setattr(trace, "set_tracer_provider", installed.append)
    assert tracing.configure_from_environment({"OTEL_TRACES_EXPORTER": "console"}) is True
    [provider] = installed
    assert isinstance(provider, TracerProvider)
    assert provider.resource.attributes["service.name"] == tracing.SERVICE_NAME
    provider.shutdown()


# ---------------------------------------------------------------------------------------- deploy
def test_deploy_manifests_expose_the_metrics_the_processes_serve() -> None:
    import yaml  # noqa: PLC0415

    from cnpg_mcp_operator.config import parse_args  # noqa: PLC0415

    def load(*parts: str) -> list[dict[str, Any]]:
        return [doc for doc in yaml.safe_load_all((REPO / "deploy" / Path(*parts)).read_text()) if doc]

    [operator] = load("operator", "deployment.yaml")
    container = operator["spec"]["template"]["spec"]["containers"][0]
    url = parse_args(container["args"]).metrics
    assert url is not None
    _, port, path = operator_metrics.address(url)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == port
    [service] = load("operator", "service.yaml")
    assert service["spec"]["selector"].items() <= operator["spec"]["template"]["metadata"]["labels"].items()
    assert {"name": "metrics", "port": port, "targetPort": "metrics"} in service["spec"]["ports"]
    assert "service.yaml" in (REPO / "deploy" / "operator" / "kustomization.yaml").read_text()

    [gateway_service] = load("gateway", "service.yaml")
    monitors = {m["metadata"]["name"]: m for m in load("overlays", "servicemonitor", "servicemonitors.yaml")}
    for monitor, target in ((monitors["cnpg-mcp-operator"], service), (monitors["cnpg-mcp-gateway"], gateway_service)):
        assert monitor["spec"]["selector"]["matchLabels"].items() <= target["metadata"]["labels"].items()
        [endpoint] = monitor["spec"]["endpoints"]
        assert endpoint["port"] in {p["name"] for p in target["spec"]["ports"]}
    assert monitors["cnpg-mcp-operator"]["spec"]["endpoints"][0]["path"] == path
    assert monitors["cnpg-mcp-gateway"]["spec"]["endpoints"][0]["path"] == "/metrics"


# ------------------------------------------------------------------------ gateway dispatch hook
class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.entries: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.entries.append(json.loads(record.getMessage()))


def test_every_call_is_counted_and_audited_refused_before_dispatch_included() -> None:
    import anyio  # noqa: PLC0415
    from kubernetes import client  # noqa: PLC0415
    from mcp import Client  # noqa: PLC0415

    from mcp_gateway.config import GatewayConfig  # noqa: PLC0415
    from mcp_gateway.k8s import Kube  # noqa: PLC0415
    from mcp_gateway.server import build_server  # noqa: PLC0415

    # Every call below fails before any API call: nothing is listening behind this client.
    server = build_server(GatewayConfig(namespace_allow=("team-a",)), Kube(client.ApiClient()))
    calls = [("list_postgres_clusters", {"namespace": "team-b"}),                     # refused by the allow-list
             ("create_postgres_cluster", {"name": "db", "instances": "many"}),       # refused by the inputSchema
             ("no_such_tool", {"name": "x"}),                                         # not offered
             ("update_postgres_role", {"cluster_name": "db", "role_name": "app", "password": "pw-LEAK-1",
                                       "namespace": "team-b"})]
    before = {(tool, outcome): value("cnpg_mcp_tool_calls_total", tool=tool, outcome=outcome)
              for tool, outcome in [("list_postgres_clusters", "NAMESPACE_NOT_ALLOWED"),
                                    ("create_postgres_cluster", "INVALID_ARGUMENT"), ("unknown", "NOT_FOUND")]}
    lines = Lines()
    logger = logging.getLogger(audit.LOGGER_NAME)
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)

    async def run() -> None:
        async with Client(server) as mcp:
            for name, arguments in calls:
                assert (await mcp.call_tool(name, arguments)).is_error

    try:
        anyio.run(run)
    finally:
        logger.removeHandler(lines)
    assert [(e["tool"], e["verdict"]) for e in lines.entries] == [
        ("list_postgres_clusters", "NAMESPACE_NOT_ALLOWED"), ("create_postgres_cluster", "INVALID_ARGUMENT"),
        ("unknown", "NOT_FOUND"), ("update_postgres_role", "PASSWORD_NOT_ACCEPTED")]
    assert all(e["caller"].startswith("local:") and e["impersonated"] is None for e in lines.entries)
    assert lines.entries[0]["target"] == {"namespace": "team-b"}
    assert "pw-LEAK-1" not in json.dumps(lines.entries)
    for (tool, outcome), count in before.items():
        assert value("cnpg_mcp_tool_calls_total", tool=tool, outcome=outcome) == count + 1
    assert value("mcp_server_operation_duration_seconds_count", mcp_method_name="tools/call",
                 gen_ai_tool_name="list_postgres_clusters", error_type="NAMESPACE_NOT_ALLOWED") >= 1


def test_an_impersonating_gateway_audits_the_caller_and_the_identity_it_acted_as() -> None:
    from kubernetes import client  # noqa: PLC0415
    from mcp.server.auth.middleware.auth_context import auth_context_var  # noqa: PLC0415
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser  # noqa: PLC0415
    from mcp.server.auth.provider import AccessToken  # noqa: PLC0415

    from mcp_gateway import registry  # noqa: PLC0415
    from mcp_gateway.config import GatewayConfig  # noqa: PLC0415
    from mcp_gateway.gateway import Gateway  # noqa: PLC0415
    from mcp_gateway.k8s import Kube  # noqa: PLC0415
    from mcp_gateway.tools.catalog import TOOLS  # noqa: PLC0415

    spec = next(s for s in TOOLS if s.name == "delete_postgres_role")
    lines = Lines()
    logger = logging.getLogger(audit.LOGGER_NAME)
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    token = AccessToken(token="t", client_id="alice", scopes=[], subject="alice",
                        claims={"username": "oidc:alice", "groups": ["oidc:dba"]})
    reset = auth_context_var.set(AuthenticatedUser(token))
    try:
        for impersonate in (True, False):
            gw = Gateway(config=GatewayConfig(impersonate=impersonate), kube=Kube(client.ApiClient()),
                         default_namespace="team-a")
            registry.observe(spec, gw, {"cluster_name": "db", "role_name": "app", "namespace": None},
                             errors.tool_error(errors.FORBIDDEN, "denied"), 0.5)
    finally:
        auth_context_var.reset(reset)
        logger.removeHandler(lines)
    acting, own = lines.entries
    assert (acting["caller"], acting["impersonated"], acting["verdict"]) == ("oidc:alice", "oidc:alice", "FORBIDDEN")
    assert (own["caller"], own["impersonated"]) == ("oidc:alice", None)
    assert acting["target"] == {"namespace": "team-a", "cluster_name": "db", "role_name": "app"}
    assert acting["duration_ms"] == 500.0


def test_events_name_both_the_recorded_requester_and_a_different_api_user() -> None:
    body = {"metadata": {"annotations": {constants.REQUESTED_BY_ANNOTATION: "oidc:carol",
                                         constants.REQUESTER_ANNOTATION: "system:serviceaccount:cnpg-mcp:gw"}}}
    assert events.with_requester(body, "ready") == \
        "ready (requested by oidc:carol) (API user system:serviceaccount:cnpg-mcp:gw)"
