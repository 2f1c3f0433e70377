"""CloudNativePG reserves role names starting with `cnpg_` (its DatabaseRole CRD refuses them); a
PgRoleRequest asking for one must be refused up front, not retried forever against CNPG's 422."""

from __future__ import annotations

import pytest

from cnpg_mcp_api import policy


@pytest.mark.parametrize("name", ["cnpg_x", "cnpg_mcp_readonly"])
def test_cnpg_prefixed_role_names_are_reserved(name: str) -> None:
    assert policy.is_reserved_role(name)
    assert policy.role_request_violations({"roleName": name}, allow_privileged=True, bootstrap_owner=None)


@pytest.mark.parametrize("name", ["cnpgx", "CNPG_x", "my_cnpg_role"])
def test_only_cnpgs_exact_prefix_is_reserved(name: str) -> None:
    # CNPG's rule is `!self.name.startsWith('cnpg_')`: case-sensitive, at the start only.
    assert not policy.is_reserved_role(name)
