from __future__ import annotations

import pytest

from cnpg_mcp_api.naming import (
    database_request_name,
    is_rfc1123_label,
    role_request_name,
    role_secret_name,
)


def test_underscores_become_dashes() -> None:
    assert role_request_name("main-db", "app_user") == "main-db-app-user"
    assert role_secret_name("main-db", "app_user") == "cnpg-main-db-user-app-user"
    assert database_request_name("main-db", "app_data") == "main-db-app-data"


@pytest.mark.parametrize("role", ["_leading", "trailing_", "a__b", "x" * 63, "_"])
def test_awkward_names_still_give_valid_unique_names(role: str) -> None:
    for name in (role_request_name("c", role), role_secret_name("c", role), database_request_name("c", role)):
        assert is_rfc1123_label(name), name


def test_names_that_would_collide_after_mapping_stay_distinct() -> None:
    # "a__b" and "a_b" both map to dashes; the double dash takes the hashed form.
    assert role_request_name("c", "a__b") != role_request_name("c", "a_b")
    assert role_request_name("c", "_x") != role_request_name("c", "x")
    assert role_secret_name("c", "x_") != role_secret_name("c", "x")


def test_long_cluster_names_fit_63_characters() -> None:
    cluster = "c" * 50
    name = role_secret_name(cluster, "some_long_role_name_here")
    assert is_rfc1123_label(name)
    assert len(name) <= 63
    assert name != role_secret_name(cluster, "some_long_role_name_herf")


def test_deterministic() -> None:
    assert role_request_name("c", "_odd") == role_request_name("c", "_odd")
