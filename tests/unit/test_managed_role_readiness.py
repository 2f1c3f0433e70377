"""Ready for a managed.roles entry means CNPG applied it, not that a stale status lists it as reconciled."""

from __future__ import annotations

from typing import Any

from cnpg_mcp_operator.readiness import managed_role_verdict

ENTRY = {"name": "shared", "ensure": "present", "login": True, "passwordSecret": {"name": "c-shared"}}


def cluster(managed_roles_status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "db"}, "spec": {"managed": {"roles": [ENTRY]}},
            "status": {"managedRolesStatus": managed_roles_status}}


def test_a_re_added_role_is_pending_while_the_status_still_shows_its_drop() -> None:
    # the role was dropped (ensure: absent → reconciled, password record gone), then re-added
    stale = cluster({"byStatus": {"reconciled": ["shared"]}})
    verdict = managed_role_verdict(stale, "shared", "db", ENTRY)
    assert (verdict.ready, verdict.reason) == (False, "Pending")


def test_applied_once_cnpg_records_the_password() -> None:
    applied = cluster({"byStatus": {"reconciled": ["shared"]},
                       "passwordStatus": {"shared": {"transactionID": 7, "resourceVersion": "42"}}})
    verdict = managed_role_verdict(applied, "shared", "db", ENTRY)
    assert (verdict.ready, verdict.reason) == (True, "Applied")


def test_a_role_without_password_secret_needs_no_password_record() -> None:
    entry = {k: v for k, v in ENTRY.items() if k != "passwordSecret"}
    plain = {"metadata": {"name": "db"}, "spec": {"managed": {"roles": [entry]}},
             "status": {"managedRolesStatus": {"byStatus": {"reconciled": ["shared"]}}}}
    assert managed_role_verdict(plain, "shared", "db", entry).ready
