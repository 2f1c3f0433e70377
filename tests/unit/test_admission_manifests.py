"""deploy/admission, deploy/user-roles and deploy/audit name what the code names (no drift between them).

Their behaviour is tested on the real API server (tests/integration/test_requester.py, test_audit.py,
test_standard_rbac.py); these checks keep the names in the YAML in step with cnpg_mcp_api.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cnpg_mcp_api import constants
from cnpg_mcp_api.models import KINDS
from cnpg_mcp_operator import events

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PLURALS = sorted(kind.plural for kind in KINDS)


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_policies_stamp_and_guard_the_annotations_the_code_reads() -> None:
    mutating, _binding = documents(DEPLOY / "admission" / "requester.yaml")
    stamp = mutating["spec"]["mutations"][0]["jsonPatch"]["expression"]
    for key in (constants.REQUESTER_ANNOTATION, constants.REQUESTER_GROUPS_ANNOTATION):
        assert f'"{key}"' in stamp
    assert sorted(mutating["spec"]["matchConstraints"]["resourceRules"][0]["resources"]) == PLURALS
    guard, _binding = documents(DEPLOY / "admission" / "immutable-requester.yaml")
    fixed = " ".join(v["expression"] for v in guard["spec"]["variables"])
    for key in (constants.REQUESTER_ANNOTATION, constants.REQUESTER_GROUPS_ANNOTATION,
                constants.REQUESTED_BY_ANNOTATION):
        assert f"'{key}'" in fixed


def test_status_owner_is_the_operator_service_account_deploy_creates() -> None:
    operator = documents(DEPLOY / "operator" / "kustomization.yaml")[0]
    account = documents(DEPLOY / "operator" / "serviceaccount.yaml")[0]["metadata"]["name"]
    policy, _binding = documents(DEPLOY / "admission" / "status-owner.yaml")
    rule = policy["spec"]["validations"][0]["expression"]
    assert f"'system:serviceaccount:{operator['namespace']}:{account}'" in rule
    assert sorted(policy["spec"]["matchConstraints"]["resourceRules"][0]["resources"]) == \
        sorted(f"{plural}/status" for plural in PLURALS)


def test_user_roles_and_audit_policy_cover_every_intent_kind() -> None:
    for role in documents(DEPLOY / "user-roles" / "clusterroles.yaml"):
        assert [sorted(rule["resources"]) for rule in role["rules"]] == [PLURALS]
    rules = documents(DEPLOY / "audit" / "policy.yaml")[0]["rules"]
    writes = next(rule for rule in rules if rule["level"] == "RequestResponse")
    assert sorted(writes["resources"][0]["resources"]) == PLURALS


def test_transition_events_name_the_requester_stamped_at_admission() -> None:
    body = {"metadata": {"annotations": {constants.REQUESTER_ANNOTATION: "token:alice"}}}
    pending = {"status": "False", "reason": "Pending", "message": "waiting for CNPG"}
    posted = [events.transition_event(body, None, pending),
              events.transition_event(body, pending, {"status": "True", "reason": "Applied", "message": "applied"})]
    assert [(event or {}).get("reason") for event in posted] == ["Pending", "Applied"]
    assert [(event or {}).get("message") for event in posted] == [
        "waiting for CNPG (requested by token:alice)", "applied (requested by token:alice)"]
