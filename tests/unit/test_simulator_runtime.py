"""Pure parts of the CNPG simulator's runtime: the work queue (backoff, failure isolation), log lines,
kubelet log requests, instance Pods and the registry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devcluster.simulator import kubelet, logs, pods, registry, workqueue

CLUSTER = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
           "metadata": {"name": "pg", "namespace": "team", "uid": "u-1"}, "spec": {"instances": 2}}


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------ work queue


def test_backoff_is_exponential_and_capped() -> None:
    delays = [workqueue.retry_delay(n) for n in range(1, 12)]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(delays) == workqueue.RETRY_MAX_S == delays[-1]


def test_fresh_work_is_served_before_any_due_retry() -> None:
    clock = FakeClock()
    queue: workqueue.WorkQueue[str] = workqueue.WorkQueue(clock)
    for index in range(300):  # a few hundred broken clusters...
        queue.failed(f"broken-{index}")
    clock.now += 60  # ...all due for a retry
    queue.add("new-healthy")
    assert queue.pop_ready() == "new-healthy"
    assert queue.pop_ready() == "broken-0"


def test_a_failing_key_waits_longer_each_time_and_alone() -> None:
    clock = FakeClock()
    queue: workqueue.WorkQueue[str] = workqueue.WorkQueue(clock)
    assert [queue.failed("broken") for _ in range(3)] == [0.5, 1.0, 2.0]
    assert queue.failures("broken") == 3
    assert queue.pop_ready() is None  # the earliest retry (0.5 s) is not due yet
    clock.now += 0.5
    assert queue.pop_ready() == "broken"
    assert queue.pop_ready() is None  # one pending retry per key, not one per failure


def test_success_forgets_failures_and_the_pending_retry() -> None:
    clock = FakeClock()
    queue: workqueue.WorkQueue[str] = workqueue.WorkQueue(clock)
    queue.failed("k")
    queue.failed("k")
    queue.succeeded("k")
    clock.now += 60
    assert queue.pop_ready() is None and queue.failures("k") == 0
    assert queue.failed("k") == 0.5


def test_fresh_keys_are_deduplicated_and_get_waits_for_a_retry() -> None:
    queue: workqueue.WorkQueue[str] = workqueue.WorkQueue(base=0.01)
    queue.add("a")
    queue.add("a")
    assert len(queue) == 1 and queue.get(timeout=0.1) == "a"
    queue.failed("b")
    assert queue.get(timeout=1.0) == "b"
    assert queue.get(timeout=0.01) is None


# ---------------------------------------------------------------------------------- logs


AT = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def test_instance_and_postgres_lines_have_cnpgs_shape() -> None:
    line = json.loads(logs.instance_line(AT, "pg-1", "hello", cluster="pg").line)
    assert list(line)[:5] == ["level", "ts", "logger", "msg", "logging_pod"]
    assert line == {"level": "info", "ts": "2026-01-02T03:04:05.678000Z", "logger": "instance-manager",
                    "msg": "hello", "logging_pod": "pg-1", "cluster": "pg"}
    record = json.loads(logs.postgres_record_line(AT, "pg-1", {"message": "m"}).line)
    assert (record["logger"], record["msg"], record["record"]) == ("postgres", "record", {"message": "m"})


def test_real_server_lines_become_records() -> None:
    parsed = logs.parse_server_line(
        '2026-01-02 03:04:05.678 UTC [4242] FATAL:  password authentication failed for user "x"')
    assert parsed is not None
    at, record, level = parsed
    assert at == AT and level == "error"
    assert record == {"log_time": "2026-01-02 03:04:05.678 UTC", "process_id": "4242",
                      "error_severity": "FATAL", "message": 'password authentication failed for user "x"'}
    assert logs.parse_server_line("\tcontinuation of a statement") is None
    entries = logs.server_entries(["2026-01-02 03:04:04.000 UTC [1] LOG:  before",
                                   "2026-01-02 03:04:06.000 UTC [1] LOG:  after"], "pg-1", AT)
    assert [json.loads(e.line)["record"]["message"] for e in entries] == ["after"]


def test_select_applies_the_kubelet_options() -> None:
    entries = [logs.instance_line(AT + timedelta(seconds=i), "pg-1", f"m{i}") for i in range(5)]
    assert logs.select(entries).decode().count("\n") == 5
    assert [json.loads(x)["msg"] for x in logs.select(entries, tail_lines=2).decode().splitlines()] == ["m3", "m4"]
    assert logs.select(entries, tail_lines=0) == b""
    since = logs.select(entries, since=AT + timedelta(seconds=3)).decode().splitlines()
    assert [json.loads(x)["msg"] for x in since] == ["m3", "m4"]
    stamped = logs.select(entries, tail_lines=1, timestamps=True).decode()
    assert stamped.startswith("2026-01-02T03:04:09.678000Z {")
    assert logs.select(entries, limit_bytes=10) == logs.select(entries)[:10]


def test_log_store_serves_known_pods_and_the_primarys_server_lines(tmp_path: Path) -> None:
    server_log = tmp_path / "postgres.log"
    future = datetime.now(UTC) + timedelta(seconds=5)
    server_log.write_text(f"{future:%Y-%m-%d %H:%M:%S}.000 UTC [7] LOG:  checkpoint starting: time\n")
    store = logs.LogStore(server_log)
    assert store.entries("team", "pg-1") is None
    store.started("team", "pg-1", "pg", primary=True)
    store.started("team", "pg-2", "pg", primary=False)
    primary = [json.loads(e.line) for e in store.entries("team", "pg-1") or []]
    replica = [json.loads(e.line) for e in store.entries("team", "pg-2") or []]
    assert primary[-1]["record"]["message"] == "checkpoint starting: time"
    assert not any("checkpoint" in json.dumps(x) for x in replica)
    store.set_primary("team", "pg-2", True)
    assert json.loads((store.entries("team", "pg-2") or [])[-1].line)["record"]["process_id"] == "7"
    store.forget("team", "pg-2")
    assert store.entries("team", "pg-2") is None


# ------------------------------------------------------------------------------- kubelet


def test_log_requests_are_parsed_like_the_kubelets() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    namespace, pod, container, options = kubelet.parse_log_request(
        "/containerLogs/team/pg-1/postgres?tailLines=10&sinceSeconds=60&timestamps=true&follow=false", now)
    assert (namespace, pod, container) == ("team", "pg-1", "postgres")
    assert options == {"timestamps": True, "tail_lines": 10, "since": now - timedelta(seconds=60)}
    with pytest.raises(kubelet.LogRequestError) as previous:
        kubelet.parse_log_request("/containerLogs/team/pg-1/postgres?previous=true", now)
    assert previous.value.status == 400
    with pytest.raises(kubelet.LogRequestError) as bad:
        kubelet.parse_log_request("/containerLogs/team/pg-1/postgres?tailLines=x", now)
    assert bad.value.status == 400
    with pytest.raises(kubelet.LogRequestError) as unknown:
        kubelet.parse_log_request("/exec/team/pg-1/postgres", now)
    assert unknown.value.status == 404


def test_node_status_publishes_the_kubelet_endpoint() -> None:
    status = kubelet.node_status("cnpg-simulator", 10250, "2026-01-01T00:00:00Z")
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
    assert status["conditions"][0]["type"] == "Ready" and status["conditions"][0]["status"] == "True"


# ---------------------------------------------------------------------------------- pods


def test_instance_pods_carry_cnpgs_labels_and_owner() -> None:
    body = pods.instance_pod_body(CLUSTER, "pg-1", True, "node-a")
    assert body["metadata"]["labels"] == {
        "cnpg.io/cluster": "pg", "cnpg.io/instanceName": "pg-1", "cnpg.io/podRole": "instance",
        "cnpg.io/instanceRole": "primary", "role": "primary"}
    assert body["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert body["spec"]["nodeName"] == "node-a"
    assert body["spec"]["containers"][0]["name"] == "postgres"
    assert pods.instance_labels("pg", "pg-2", False)["cnpg.io/instanceRole"] == "replica"


def test_running_status_is_what_a_kubelet_reports() -> None:
    pod = pods.instance_pod_body(CLUSTER, "pg-1", True, "node-a")
    status = pods.running_pod_status(pod, "2026-01-01T00:00:00Z")
    assert status["phase"] == "Running" and pods.is_running({"status": status})
    assert {c["type"] for c in status["conditions"]} >= {"Ready", "ContainersReady", "PodScheduled"}
    assert status["containerStatuses"][0]["ready"] is True


# ------------------------------------------------------------------------------ registry


def test_registry_has_one_handler_per_kind() -> None:
    kinds = [handler.kind for handler in registry.HANDLER_TYPES]  # type: ignore[attr-defined]
    assert sorted(kinds) == ["backup", "cluster", "database", "databaserole", "pod", "pooler", "scheduledbackup",
                            "secret", "walarchiving"]


# ------------------------------------------------------------------------- SQL identifiers


def test_hyphenated_role_and_database_names_are_quoted() -> None:
    from psycopg import sql  # noqa: PLC0415

    from devcluster.simulator import databases, roles  # noqa: PLC0415

    def render(statement: sql.Composed) -> str:
        return " ".join(statement.as_string(None).split())

    desired = roles.desired_role({"name": "app-user", "login": True, "inRoles": ["read-only"]})
    planned = [render(s) for s in roles.plan_role(desired, None, roles.KEEP_PASSWORD)]
    assert planned[0].startswith('CREATE ROLE "app-user" WITH') and planned[1] == 'GRANT "read-only" TO "app-user"'
    assert render(databases.create_database_sql({"name": "app-data", "owner": "app-user"})) == (
        'CREATE DATABASE "app-data" WITH OWNER "app-user"')
    assert render(roles.drop_role_sql("app-user")) == 'DROP ROLE IF EXISTS "app-user"'
