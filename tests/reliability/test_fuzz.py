"""Generated input (hypothesis): valid, boundary and hostile tool calls through a real MCP client, and
generated intents through the Kubernetes API. Nothing crashes, every refusal is coded or a readable 422,
and every intent that was accepted reaches a terminal Ready condition (never wedged)."""

from __future__ import annotations

import itertools
import json
import re
import secrets
import time
from collections import Counter
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.integration.conftest import PLURALS, Intents, OperatorProcess
from tests.reliability.conftest import McpClients, Row, Scale
from tests.reliability.helpers import CLUSTER, DB, ROLE, is_terminal, ready_condition, tool_error_code, wait_all

FUZZ_SETTINGS = {"deadline": None, "database": None, "phases": [Phase.generate],
                 "suppress_health_check": list(HealthCheck)}

HOSTILE_TEXT = [
    "", " ", "x" * 100_000, "ß" * 64, "名前", "\u202eevil", "a\x00b", "line\nbreak", "tab\there", "🐘" * 40,
    "x'; DROP ROLE postgres; --", "\"; SELECT pg_sleep(10); --", "' OR '1'='1", "$$ LANGUAGE plpgsql $$",
    "{{ .Values }}", "${HOME}", "&anchor *alias", "!!python/object/apply:os.system ['id']", "key: value",
    "- item", "---\nkind: Secret", "../../etc/passwd", "postgres", "streaming_replica", "pg_monitor", "app",
    "default", "kube-system", "UPPER", "-leading-dash", "trailing-", "a" * 63, "a" * 64, "1starts_with_digit",
]
WRONG_TYPES = st.one_of(st.none(), st.floats(allow_nan=True), st.lists(st.integers(), max_size=3),
                        st.dictionaries(st.text(max_size=5), st.integers(), max_size=2), st.booleans(),
                        st.integers(min_value=-(2**70), max_value=2**70))
IDENTIFIERS = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
DNS_NAMES = st.from_regex(r"[a-z]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)


def mostly(valid: st.SearchStrategy[Any], other: st.SearchStrategy[Any], percent: int = 80) -> st.SearchStrategy[Any]:
    """`valid` about `percent`% of the time (hypothesis alone favours exploring every branch equally)."""
    return st.integers(0, 99).flatmap(lambda roll: valid if roll < percent else other)


def strings(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the valid shape; else hostile text, arbitrary unicode, or (rarely) the wrong type."""
    return mostly(valid, st.one_of(st.sampled_from(HOSTILE_TEXT), st.sampled_from(HOSTILE_TEXT),
                                   st.text(max_size=300), WRONG_TYPES))


def for_schema(name: str, schema: dict[str, Any], namespace: str, cluster: str) -> st.SearchStrategy[Any]:
    """Values for one tool parameter: mostly plausible, often boundary or hostile, sometimes the wrong type."""
    if name == "namespace":
        return mostly(st.just(namespace), strings(DNS_NAMES), 90)
    if name in ("cluster_name", "name"):
        return mostly(st.just(cluster), strings(DNS_NAMES), 70)
    kinds = {schema.get("type")} | {option.get("type") for option in schema.get("anyOf") or []}
    if "integer" in kinds:
        return mostly(st.integers(1, 10), st.one_of(st.integers(-2, 12), WRONG_TYPES,
                                                    st.sampled_from([0, 11, 29, 30, 600, 601, -1, 2**63])))
    if "boolean" in kinds:
        return mostly(st.booleans(), st.one_of(WRONG_TYPES, st.sampled_from(["true", "yes", 1])), 90)
    if "enum" in schema:
        return mostly(st.sampled_from(schema["enum"]), strings(st.just("x")))
    return strings(IDENTIFIERS)


def _as_call(writes: bool, drawn: tuple[str, dict[str, Any], dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    tool, arguments, extras = drawn
    return tool, {**extras, **arguments, **({"dry_run": True} if writes else {})}


def call_strategy(tools: list[Any], namespace: str, cluster: str) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    options = []
    for tool in tools:
        properties = dict(tool.input_schema.get("properties") or {})
        writes = "dry_run" in properties
        properties.pop("dry_run", None)  # never fuzzed: every write is a preview ("false" would coerce)
        fields = {key: for_schema(key, value, namespace, cluster) for key, value in properties.items()}
        required = {key: fields.pop(key) for key in tool.input_schema.get("required") or [] if key in fields}
        complete = st.fixed_dictionaries(required, optional=fields)
        arguments = mostly(complete, st.fixed_dictionaries({}, optional=required), 90)
        extras = st.dictionaries(st.text(max_size=12), WRONG_TYPES, max_size=2)
        pairs = st.tuples(st.just(tool.name), arguments, mostly(st.just({}), extras, 90))
        options.append(pairs.map(partial(_as_call, writes)))
    return st.one_of(options)


SCHEMA_REFUSAL = re.compile(r"^Error executing tool [a-z_]+: \d+ validation errors? for \w+Arguments\n")


def test_fuzzed_tool_calls(operator: OperatorProcess, cnpg_simulator: Any, namespace: str, intents: Intents,
                           scale: Scale, report: list[Row], mcp_clients: McpClients) -> None:
    cluster = "fuzz-target"
    intents.create(CLUSTER, namespace, cluster, {"instances": 1})
    intents.wait_ready(CLUSTER, namespace, cluster)
    session = mcp_clients.open()
    tools = mcp_clients.portal.call(session.list_tools).tools
    outcomes: Counter[str] = Counter()
    uncoded: list[str] = []
    crashes: list[str] = []
    schema_errors: Counter[tuple[str, str]] = Counter()
    before = {kind: len(intents.list_all(kind, namespace)) for kind in (CLUSTER, ROLE, DB)}
    started = time.monotonic()

    @settings(max_examples=scale.fuzz_calls, **FUZZ_SETTINGS)  # type: ignore[arg-type]
    @given(call=call_strategy(tools, namespace, cluster))
    def run(call: tuple[str, dict[str, Any]]) -> None:
        tool, arguments = call
        try:
            result = mcp_clients.call(session, tool, arguments)
        except Exception as exc:  # a protocol-level failure: the client got no tool result at all
            crashes.append(f"{tool}: {type(exc).__name__}: {exc}"[:300])
            return
        if not result.is_error:
            outcomes["ok"] += 1
            return
        text = "\n".join(getattr(c, "text", "") for c in result.content)
        code = tool_error_code(text)
        if code is not None:
            outcomes[code] += 1
        elif SCHEMA_REFUSAL.match(text):
            outcomes["schema refusal (SDK, uncoded)"] += 1  # see test_schema_refusals_are_coded
            schema_errors.update(re.findall(r"^(\w+)\n  .*\[type=(\w+)", text, re.MULTILINE))
        else:
            (crashes if text.strip() == f"Error executing tool {tool}" else uncoded).append(
                f"{tool} {json.dumps(arguments, default=str)[:150]} → {text[:200]}")
            outcomes["UNCODED"] += 1

    run()
    elapsed = time.monotonic() - started
    after = {kind: len(intents.list_all(kind, namespace)) for kind in (CLUSTER, ROLE, DB)}
    calls = sum(outcomes.values()) + len(crashes)
    uncoded_kinds = Counter(line.split(" ", 1)[0] for line in uncoded)

    report.append(Row(
        "fuzzed MCP tool calls", f"{calls} generated calls (12 tools, writes as dry_run) in {elapsed:.0f}s",
        "unicode, 100 kB strings, SQL/YAML metacharacters, wrong types, unknown keys",
        "0 crashes; every gateway refusal [CODE]; nothing written",
        f"{len(crashes)} crashes; outcomes {dict(outcomes.most_common())}; uncoded refusals by tool "
        f"{dict(uncoded_kinds) or 'none'}; intents written: {sum(after.values()) - sum(before.values())}; "
        f"top schema refusals: {schema_errors.most_common(4)}",
    ))
    assert calls >= scale.fuzz_calls
    assert not crashes, f"{len(crashes)} crashes, e.g. {crashes[:3]}"
    assert after == before, f"a dry-run call wrote an intent: {before} → {after}"
    assert not uncoded, f"{len(uncoded)} refusals without a [CODE], e.g. {uncoded[:3]}"


# --------------------------------------------------------------------------- intents through the API


def _flag() -> st.SearchStrategy[Any]:
    return st.one_of(st.booleans(), st.booleans(), st.booleans(), WRONG_TYPES)


def intent_strategy(cluster: str) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    cluster_ref = st.one_of(st.just(cluster), st.just(cluster), st.just(cluster), strings(DNS_NAMES))
    role_name = st.one_of(IDENTIFIERS, IDENTIFIERS, st.sampled_from(HOSTILE_TEXT), WRONG_TYPES)
    role = st.fixed_dictionaries({"cluster": cluster_ref, "roleName": role_name}, optional={
        "login": _flag(), "superuser": _flag(), "createdb": _flag(), "inherit": _flag(), "bypassrls": _flag(),
        "connectionLimit": st.one_of(st.integers(-3, 10**12), WRONG_TYPES),
        "validUntil": strings(st.just("2030-01-01T00:00:00Z")),
        "inRoles": st.one_of(st.lists(st.one_of(IDENTIFIERS, st.sampled_from(HOSTILE_TEXT)), max_size=3), WRONG_TYPES),
        "comment": strings(st.text(max_size=50)), "privileged": _flag(),
        "password": st.one_of(st.fixed_dictionaries({"rotation": strings(st.just("2026-01-01"))}), WRONG_TYPES),
        "reclaimPolicy": st.one_of(st.sampled_from(["delete", "retain"]), strings(st.just("keep"))),
        "unknownField": WRONG_TYPES,
    })
    database = st.fixed_dictionaries({"cluster": cluster_ref, "name": role_name, "owner": role_name}, optional={
        "databaseReclaimPolicy": st.one_of(st.sampled_from(["delete", "retain"]), strings(st.just("x"))),
        "encoding": strings(st.just("UTF8")), "locale": strings(st.just("C")),
        "extensions": st.one_of(st.lists(st.fixed_dictionaries({"name": strings(IDENTIFIERS)}), max_size=2),
                                WRONG_TYPES),
        "schemas": st.one_of(st.lists(st.fixed_dictionaries({"name": role_name}), max_size=2), WRONG_TYPES),
    })
    pg_cluster = st.fixed_dictionaries({}, optional={
        "instances": st.one_of(st.integers(-1, 12), WRONG_TYPES),
        "storage": st.one_of(st.fixed_dictionaries({"size": strings(st.sampled_from(["1Gi", "10Gi", "0", "1e3"]))}),
                             WRONG_TYPES),
        "postgresVersion": strings(st.sampled_from(["16", "17", "9", "99"])),
        "parameters": st.one_of(st.dictionaries(st.one_of(IDENTIFIERS, st.sampled_from(HOSTILE_TEXT)),
                                                strings(IDENTIFIERS), max_size=3), WRONG_TYPES),
        "deletionPolicy": st.one_of(st.sampled_from(["Retain", "Delete"]), strings(st.just("x"))),
        "adoptExisting": _flag(),
    })
    return st.one_of(st.tuples(st.just(ROLE), role), st.tuples(st.just(ROLE), role),
                     st.tuples(st.just(DB), database), st.tuples(st.just(CLUSTER), pg_cluster))


def test_fuzzed_intents_never_wedge(operator: OperatorProcess, cnpg_simulator: Any, k8s: Any, namespace: str,
                                    intents: Intents, scale: Scale, report: list[Row]) -> None:
    cluster = "fuzz-intents"
    intents.create(CLUSTER, namespace, cluster, {"instances": 1})
    intents.wait_ready(CLUSTER, namespace, cluster)
    custom = client.CustomObjectsApi(k8s)
    counter = itertools.count()
    token = secrets.token_hex(2)
    accepted: list[tuple[str, str]] = []
    refusals: Counter[int] = Counter()
    unreadable: list[str] = []

    @settings(max_examples=scale.fuzz_intents, **FUZZ_SETTINGS)  # type: ignore[arg-type]
    @given(intent=intent_strategy(cluster), hostile_name=st.one_of(st.none(), st.none(), st.none(),
                                                                   st.sampled_from(HOSTILE_TEXT)))
    def run(intent: tuple[str, dict[str, Any]], hostile_name: str | None) -> None:
        kind, spec = intent
        if isinstance(spec.get("roleName"), str) and kind == ROLE:
            spec = {**spec, "roleName": spec["roleName"][:40] + f"_{token}"}  # one PostgreSQL server for all
        name = hostile_name if hostile_name is not None else f"f{next(counter):05d}-{token}"
        body = {"apiVersion": "cnpg-mcp.io/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}
        try:
            custom.create_namespaced_custom_object("cnpg-mcp.io", "v1alpha1", namespace, PLURALS[kind], body)
        except ApiException as exc:
            refusals[exc.status] += 1
            try:
                message = str(json.loads(exc.body).get("message") or "")
            except (ValueError, TypeError):
                message = ""
            if exc.status not in (400, 409, 422) or not message:
                unreadable.append(f"{exc.status} {str(exc.body)[:200]}")
            return
        accepted.append((kind, name))

    started = time.monotonic()
    run()
    generated = len(accepted) + sum(refusals.values())
    try:
        settled = wait_all(intents, namespace, (CLUSTER, ROLE, DB), is_terminal, scale.settle_s, "terminal")
        wedged: list[str] = []
    except AssertionError as exc:
        settled, wedged = float("nan"), [str(exc)[:600]]
    reasons: Counter[str] = Counter()
    for kind in (CLUSTER, ROLE, DB):
        for obj in intents.list_all(kind, namespace):
            reasons[f"{kind[2:-7]}:{(ready_condition(obj) or {}).get('reason')}"] += 1

    report.append(Row(
        "fuzzed intents via the API", f"{generated} generated intents ({len(accepted)} accepted) in "
        f"{time.monotonic() - started:.0f}s", "hostile names/specs, wrong types, unknown fields",
        "refusals are readable 4xx; every accepted intent terminal",
        f"refusals {dict(refusals)}, {len(unreadable)} unreadable; terminal after {settled:.0f}s; "
        f"Ready reasons {dict(reasons.most_common())}; wedged: {len(wedged)}",
    ))
    assert generated >= scale.fuzz_intents
    assert not unreadable, f"refusals without a readable reason: {unreadable[:3]}"
    assert not wedged, wedged[0]


# Wrongly typed fields the fuzzer found refused with a 403 from the requester MutatingAdmissionPolicy
# ("error applying patch: failed to convert original object") instead of the schema's 422: the policy's
# patch runs before the schema validates the object, and must not need a well-typed object.
WRONGLY_TYPED_INTENTS: list[tuple[str, dict[str, Any], str]] = [
    (ROLE, {"cluster": "x", "roleName": "y", "login": "maybe"}, "spec.login"),
    (ROLE, {"cluster": "x", "roleName": "y", "connectionLimit": [1, 2]}, "spec.connectionLimit"),
    (ROLE, {"cluster": "x", "roleName": 7}, "spec.roleName"),
    (DB, {"cluster": "x", "name": "d", "owner": "o", "extensions": {"a": 1}}, "spec.extensions"),
    (CLUSTER, {"instances": "three"}, "spec.instances"),
    (CLUSTER, {"storage": "10Gi"}, "spec.storage"),
]


def test_wrongly_typed_intents_get_the_schemas_422(k8s: Any, namespace: str) -> None:
    custom = client.CustomObjectsApi(k8s)
    answers: dict[str, str] = {}
    for number, (kind, spec, field) in enumerate(WRONGLY_TYPED_INTENTS):
        body = {"apiVersion": "cnpg-mcp.io/v1alpha1", "kind": kind, "metadata": {"name": f"typed{number}"},
                "spec": spec}
        with pytest.raises(ApiException) as refused:
            custom.create_namespaced_custom_object("cnpg-mcp.io", "v1alpha1", namespace, PLURALS[kind], body)
        message = str(json.loads(refused.value.body).get("message") or "")
        if refused.value.status != 422 or field not in message:
            answers[field] = f"{refused.value.status} {message[:200]}"
    assert not answers, f"wrongly typed fields not refused by the schema with a 422 naming the field: {answers}"


def test_cluster_refused_by_cnpg_is_reported_not_retried_silently(
        operator: OperatorProcess, cnpg_simulator: Any, k8s: Any, namespace: str, intents: Intents) -> None:
    """Found by the fuzzer at full scale: a parameter name our schema lets through but CloudNativePG's
    webhook refuses left the request without any status while the operator retried every 5 s."""
    hostile = "{{ .Values }}"
    intents.create(CLUSTER, namespace, "refused", {"instances": 1, "parameters": {hostile: "on"}})
    refused = intents.wait_for(CLUSTER, namespace, "refused", is_terminal, "a terminal Ready condition", 30)
    condition = ready_condition(refused) or {}
    assert (condition.get("status"), condition.get("reason")) == ("False", "Invalid"), condition
    assert hostile in str(condition.get("message")), condition
    # Fixing the spec is all it takes.
    client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
        "cnpg-mcp.io", "v1alpha1", namespace, PLURALS[CLUSTER], "refused", {"spec": {"parameters": {hostile: None}}})
    intents.wait_ready(CLUSTER, namespace, "refused")


# --------------------------------------------------------------------------- known gap


SCHEMA_INVALID_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("list_postgres_roles", {}),  # a required argument missing
    ("scale_postgres_cluster", {"name": "x", "instances": 0, "dry_run": True}),  # below the minimum
    ("create_postgres_role", {"cluster_name": "x", "role_name": "y", "login": "maybe", "dry_run": True}),  # type
    ("get_cluster_status", {"name": ["a", "list"]}),
]


def test_schema_refusals_are_coded(operator: OperatorProcess, mcp_clients: McpClients) -> None:
    session = mcp_clients.open()
    answers = {tool: "\n".join(getattr(c, "text", "") for c in mcp_clients.call(session, tool, args).content)
               for tool, args in SCHEMA_INVALID_CALLS}
    uncoded = {tool: text[:160] for tool, text in answers.items() if tool_error_code(text) != "INVALID_ARGUMENT"}
    assert not uncoded, f"schema refusals without [INVALID_ARGUMENT]: {uncoded}"
