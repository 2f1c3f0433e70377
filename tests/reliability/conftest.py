"""Fault and load suite: shared scale, result table and secret ledger.

`pytest tests/reliability --reliability-scale=full` (`make reliability`) runs the full scale;
the default, `bounded`, is the subset `make test` runs. Every test records one row (test, load,
faults injected, expected, observed); the table is printed at the end of the run.

The ledger collects everything a user or a log reader could see (tool outputs, intent statuses,
Events, operator and gateway logs) and every password the operator generated (read as admin before
each test namespace goes); test_secrets_never_leak.py, collected last, scans the first for the second.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

HERE = Path(__file__).resolve().parent
LEAK_TEST_FILE = "test_secrets_never_leak.py"
MANAGED_BY = "app.kubernetes.io/managed-by=cnpg-mcp"


@dataclass(frozen=True)
class Scale:
    name: str
    roles: int  # role requests in the crash batch
    databases: int
    clusters: int
    kills: int  # SIGKILLs of the operator during the crash batch
    role_deletions: int
    restart_roles: int  # role requests in flight while the API server / etcd is down
    outages: tuple[str, ...]  # control plane processes stopped and started again
    mcp_writers: int  # concurrent MCP clients on one cluster
    kubectl_writers: int
    replica_roles: int  # role requests in flight when the active replica dies
    fuzz_calls: int  # generated MCP tool calls
    fuzz_intents: int  # generated intents through the API
    settle_s: float  # how long the system may take to converge after the last fault


SCALES = {
    "bounded": Scale("bounded", roles=30, databases=3, clusters=1, kills=3, role_deletions=5, restart_roles=12,
                     outages=("kube-apiserver",), mcp_writers=10, kubectl_writers=3, replica_roles=8,
                     fuzz_calls=500, fuzz_intents=60, settle_s=120),
    "full": Scale("full", roles=200, databases=20, clusters=5, kills=20, role_deletions=30, restart_roles=40,
                  outages=("kube-apiserver", "etcd"), mcp_writers=50, kubectl_writers=10, replica_roles=40,
                  fuzz_calls=10_000, fuzz_intents=2_000, settle_s=300),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--reliability-scale", choices=sorted(SCALES), default=None,
                     help="fault and load suite scale (default bounded; env RELIABILITY_SCALE also works)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the suite, and run the leak scan after every other reliability test."""
    ours = [item for item in items if HERE in Path(str(item.fspath)).parents]
    for item in ours:
        item.add_marker(pytest.mark.reliability)
    last = [item for item in ours if Path(str(item.fspath)).name == LEAK_TEST_FILE]
    for item in last:
        items.remove(item)
    items.extend(last)


def chosen_scale(config: pytest.Config) -> Scale:
    chosen = config.getoption("--reliability-scale", None) or os.environ.get("RELIABILITY_SCALE", "bounded")
    return SCALES[str(chosen)]


@pytest.fixture(scope="session")
def scale(request: pytest.FixtureRequest) -> Scale:
    return chosen_scale(request.config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`outage` is parametrised by the scale: which control plane processes are stopped and started again."""
    if "outage" in metafunc.fixturenames:
        metafunc.parametrize("outage", chosen_scale(metafunc.config).outages)


# --------------------------------------------------------------------------- result table


@dataclass
class Row:
    test: str
    load: str
    faults: str
    expected: str
    observed: str


ROWS: list[Row] = []


@pytest.fixture
def report(request: pytest.FixtureRequest, scale: Scale) -> Iterator[list[Row]]:
    """Append Row(...) to the returned list; the rows are printed in the final table."""
    rows: list[Row] = []
    yield rows
    outcome = getattr(request.node, "rep_call", None)
    verdict = ("" if outcome is None else " (FAILED)" if outcome.failed
               else " (XFAIL: known bug)" if getattr(outcome, "wasxfail", None) is not None else "")
    for row in rows:
        row.test = f"{row.test} [{scale.name}]{verdict}"
        ROWS.append(row)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    outcome = yield
    if call.when == "call":
        item.rep_call = outcome  # type: ignore[attr-defined]
    return outcome


def render_table(rows: list[Row]) -> str:
    header = ("test", "load", "faults injected", "expected", "observed")
    cells = [header, *((r.test, r.load, r.faults, r.expected, r.observed) for r in rows)]
    lines = ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in cells]
    lines.insert(1, "|" + "---|" * len(header))
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if ROWS:
        terminalreporter.write_sep("=", "reliability")
        terminalreporter.write_line(render_table(ROWS))


# --------------------------------------------------------------------------- secret ledger


@dataclass
class Ledger:
    passwords: dict[str, str] = field(default_factory=dict)  # "namespace/secret" → password
    texts: list[tuple[str, str]] = field(default_factory=list)  # (where, text) a user or log reader sees
    log_files: set[Path] = field(default_factory=set)

    def see(self, where: str, text: str) -> None:
        self.texts.append((where, text))

    def harvest(self, k8s: Any, namespace: str) -> None:
        """Passwords of every Secret the operator made, and every status and Event, before the namespace goes."""
        core, custom = client.CoreV1Api(k8s), client.CustomObjectsApi(k8s)
        for secret in core.list_namespaced_secret(namespace, label_selector=MANAGED_BY).items:
            if secret.data and "password" in secret.data:
                password = base64.b64decode(secret.data["password"]).decode()
                self.passwords[f"{namespace}/{secret.metadata.name}"] = password
        for plural in ("pgclusterrequests", "pgrolerequests", "pgdatabaserequests"):
            for obj in custom.list_namespaced_custom_object("cnpg-mcp.io", "v1alpha1", namespace, plural)["items"]:
                self.see(f"status of {plural}/{obj['metadata']['name']}", json.dumps(obj.get("status") or {}))
        for event in core.list_namespaced_event(namespace).items:
            self.see(f"Event {namespace}/{event.metadata.name}", f"{event.reason} {event.message}")


class _Capture(logging.Handler):
    def __init__(self, ledger: Ledger) -> None:
        super().__init__(logging.DEBUG)
        self.ledger = ledger

    def emit(self, record: logging.LogRecord) -> None:
        self.ledger.see(f"gateway log {record.name}", self.format(record))


@pytest.fixture(scope="session")
def ledger() -> Iterator[Ledger]:
    found = Ledger()
    handler = _Capture(found)
    loggers = [logging.getLogger(name) for name in ("mcp_gateway", "mcp", "uvicorn")]
    previous = [logger.level for logger in loggers]
    for logger in loggers:  # INFO: the SDK logs every refused tool call there, with its message
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
    yield found
    for logger, level in zip(loggers, previous, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def namespace(namespace: str, k8s: Any, ledger: Ledger, operator: Any) -> Iterator[str]:
    """The shared per-test namespace, harvested into the ledger before it is deleted."""
    ledger.log_files.add(operator.log_path)
    yield namespace
    ledger.harvest(k8s, namespace)


# --------------------------------------------------------------------------- MCP clients from sync tests


class McpClients:
    """Real in-memory MCP client sessions on one gateway, driven from ordinary (threaded) test code."""

    def __init__(self, portal: Any, server: Any, ledger: Ledger) -> None:
        self.portal, self.server, self.ledger = portal, server, ledger
        self._entered: list[Any] = []

    def open(self) -> Any:
        """A new client session (initialised); closed when the fixture ends."""
        from mcp import Client  # noqa: PLC0415

        manager = self.portal.wrap_async_context_manager(Client(self.server))
        session = manager.__enter__()
        self._entered.append(manager)
        return session

    def call(self, session: Any, tool: str, arguments: dict[str, Any]) -> Any:
        result = self.portal.call(lambda: session.call_tool(tool, arguments))
        text = "\n".join(getattr(c, "text", "") for c in result.content)
        self.ledger.see(f"tool {tool}", text + json.dumps(result.structured_content or {}, default=str))
        return result

    def close(self) -> None:
        for manager in reversed(self._entered):
            manager.__exit__(None, None, None)
        self._entered.clear()


@pytest.fixture
def mcp_clients(control_plane: Any, operator: Any, ledger: Ledger) -> Iterator[McpClients]:
    from anyio.from_thread import start_blocking_portal  # noqa: PLC0415

    from mcp_gateway.config import GatewayConfig  # noqa: PLC0415
    from mcp_gateway.k8s import Kube  # noqa: PLC0415
    from mcp_gateway.server import build_server  # noqa: PLC0415

    config = GatewayConfig(kubeconfig=str(control_plane.kubeconfig), watch_cache=True)
    kube = Kube.connect(config.kubeconfig, watch_cache=True)
    with start_blocking_portal("asyncio") as portal:
        clients = McpClients(portal, build_server(config, kube), ledger)
        try:
            yield clients
        finally:
            clients.close()
            kube.close()  # stops the watch mirrors
